//! The OpenAI-compatible endpoints. A knowledge base is the model `kb/<name>`: the last user
//! message is the question, the answer cites its sources as `[n]`, and the response carries
//! them as `citations` (in the final chunk when streaming). The local chat model is also
//! served under its own id for plain chat, and the embedding model for `/v1/embeddings`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use zhiku_models::{ChatMessage, ChatModel, GenerationOptions};

use crate::auth::Authenticated;
use crate::error::ApiJson;
use crate::error::ErrorBody;
use crate::{blocking, computing, ApiError, AppState};

const KB_PREFIX: &str = "kb/";
/// Most tokens one request may ask for.
const MAX_TOKENS_LIMIT: u32 = 8192;
/// Most inputs in one embeddings request (OpenAI's own limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn completion_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("chatcmpl-{nanos:x}")
}

fn model_entry(id: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "zhiku" })
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "A list of models: each knowledge base as kb/<name>, the default chat model, every registered model, the embedding model", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody)))]
pub async fn models(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    let kbs: Vec<String> = match &state.cluster {
        Some(cluster) => {
            let cluster = cluster.clone();
            blocking(move || cluster.kb_names()).await?
        }
        None => {
            let store = state.store.clone();
            blocking(move || crate::native::visible_kbs(&store, &who)).await?.into_iter().map(|(kb, _)| kb).collect()
        }
    };
    let mut data: Vec<Value> = kbs.iter().map(|kb| model_entry(&format!("{KB_PREFIX}{kb}"))).collect();
    let default = state.models.default_model().map(|d| d.id.clone());
    if let Some(id) = &default {
        data.push(model_entry(id));
    }
    let store = state.store.clone();
    let registered = blocking(move || Ok::<_, ApiError>(store.models()?)).await?;
    data.extend(registered.iter().filter(|m| Some(&m.name) != default.as_ref()).map(|m| model_entry(&m.name)));
    data.push(model_entry(&state.embedding_model));
    Ok(Json(json!({ "object": "list", "data": data })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    model: String,
    messages: Vec<MessageIn>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    seed: Option<u32>,
    /// Keep the exchange in the caller's history (OpenAI's parameter), where it can be rated
    /// (`POST /api/feedback` with the completion's id).
    store: Option<bool>,
    /// zhiku's extension: the conversation a stored exchange belongs to (letters, digits, `-`,
    /// `_`; at most 64); a new one, named after the completion, when absent.
    conversation: Option<String>,
    /// zhiku's extension: `hybrid` or `graph` retrieval for a knowledge-base model (default:
    /// `retrieval.mode` of the configuration).
    #[schema(value_type = Option<String>)]
    retrieval: Option<zhiku_rag::RetrievalMode>,
    /// zhiku's extension: a registered LoRA adapter to answer with (`name` or `name@version`;
    /// `none` for the plain model). Default: the knowledge base's adapter, if it has one.
    adapter: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct MessageIn {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// What a chat request asks for, checked.
enum Target {
    Kb {
        kb: String,
        question: String,
        mode: zhiku_rag::RetrievalMode,
    },
    /// Plain chat with a model by name (the default's id or a registered one).
    Chat {
        messages: Vec<ChatMessage>,
        model: String,
    },
}

fn message_text(index: usize, message: &MessageIn) -> Result<String, ApiError> {
    match &message.content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid(
                            format!("content part of type '{kind}' is not supported; send text"),
                            Some(&format!("messages[{index}].content")),
                        ))
                    }
                }
            }
            Ok(text)
        }
    }
}

fn check(request: &ChatRequest, state: &AppState) -> Result<(Target, GenerationOptions), ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty", Some("messages")));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" | "assistant" => m.role.as_str(),
            other => {
                return Err(ApiError::invalid(
                    format!("role '{other}' is not supported (system, developer, user or assistant)"),
                    Some(&format!("messages[{i}].role")),
                ))
            }
        };
        messages.push(ChatMessage::new(role, message_text(i, m)?));
    }
    let mut options = state.engine.config().generation.clone();
    if let Some(t) = request.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid(format!("temperature {t} is outside 0..2"), Some("temperature")));
        }
        options.temperature = t;
    }
    if let Some(n) = request.max_completion_tokens.or(request.max_tokens) {
        if n == 0 || n > MAX_TOKENS_LIMIT {
            return Err(ApiError::invalid(format!("max_tokens {n} is outside 1..={MAX_TOKENS_LIMIT}"), Some("max_tokens")));
        }
        options.max_tokens = n as usize;
    }
    if let Some(seed) = request.seed {
        options.seed = seed;
    }
    let target = if let Some(kb) = request.model.strip_prefix(KB_PREFIX) {
        let question = messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.trim().to_string()).unwrap_or_default();
        if question.is_empty() {
            return Err(ApiError::invalid("a knowledge-base model needs a user message with the question", Some("messages")));
        }
        Target::Kb { kb: kb.to_string(), question, mode: request.retrieval.unwrap_or(state.engine.config().retrieval.mode) }
    } else {
        Target::Chat { messages, model: request.model.clone() }
    };
    Ok((target, options))
}

/// The generated text and what goes with it.
struct Reply {
    citations: Vec<zhiku_rag::Citation>,
    /// Text to append when the engine replaced the streamed text (unsupported by the sources).
    correction: Option<String>,
    text: String,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Served from the knowledge base's answer cache.
    cached: bool,
}

/// What a stored exchange (`store: true`) records once answered.
struct History {
    completion_id: String,
    conversation: String,
    user: String,
    kb: Option<String>,
    model: String,
    question: String,
}

impl History {
    /// Records the exchange (in the shared database on a replica); a failure is logged, not
    /// returned, as the answer has been given.
    fn record(&self, state: &AppState, reply: &Reply) {
        let citations = serde_json::to_string(&reply.citations).unwrap_or_else(|_| "[]".into());
        let exchange = zhiku_store::NewExchange {
            completion_id: &self.completion_id,
            conversation_id: &self.conversation,
            user: &self.user,
            kb: self.kb.as_deref(),
            model: &self.model,
            question: &self.question,
            answer: reply.text.trim(),
            citations: &citations,
        };
        if let Err(e) = state.history().record_exchange(&exchange) {
            tracing::error!(error = %e, "could not store the exchange");
        }
    }
}

/// The model a request answers with (the one it names, or its knowledge base's) with the
/// adapter it (or its knowledge base) asks for, each loaded on first use; its id for the audit.
fn chosen_model(state: &AppState, target: &Target, requested: Option<&str>) -> Result<(String, Arc<dyn ChatModel>), ApiError> {
    use zhiku_rag::finetune::{chosen_adapter, resolve_adapter, AdapterProblem};
    // Knowledge bases of a shared database name no model and no adapter.
    let kb = match target {
        Target::Kb { kb, .. } if state.cluster.is_none() => Some(kb.as_str()),
        _ => None,
    };
    let chosen = match (target, kb) {
        (Target::Chat { model, .. }, _) => state.models.named(&state.store, model)?.ok_or_else(|| {
            ApiError::not_found(
                format!("the model '{model}' does not exist; GET /v1/models lists the knowledge bases (kb/<name>) and models"),
                "model_not_found",
                Some("model"),
            )
        })?,
        (Target::Kb { .. }, Some(kb)) => state.models.for_kb(&state.store, kb)?,
        (Target::Kb { .. }, None) => {
            let d = state.models.default_model().ok_or_else(crate::chat_models::no_model)?;
            crate::chat_models::Chosen { id: d.id.clone(), model: d.model.clone(), path: d.path.clone() }
        }
    };
    let Some(which) = chosen_adapter(&state.store, requested, kb)?.map_err(|e| ApiError::invalid(e, Some("adapter")))? else {
        return Ok((chosen.id, chosen.model));
    };
    let Some(base) = &chosen.path else {
        return Err(ApiError::invalid(format!("adapters apply to a local model, and {} is not one", chosen.id), Some("adapter")));
    };
    let adapter = match resolve_adapter(&state.store, &which, base)? {
        Ok(adapter) => adapter,
        Err(problem @ AdapterProblem::Unknown(_)) => {
            return Err(ApiError::not_found(problem.to_string(), "adapter_not_found", Some("adapter")))
        }
        Err(problem) => return Err(ApiError::invalid(problem.to_string(), Some("adapter"))),
    };
    let model = state.models.with_adapter(base, Path::new(&adapter.path))?;
    Ok((chosen.id, model))
}

/// Runs the request on a blocking thread, each piece of text going to `on_text` as it comes;
/// `on_text` returning false (nobody listens any more) stops the generation.
fn run(
    state: &AppState,
    target: Target,
    (model_id, model): (&str, &dyn ChatModel),
    options: &GenerationOptions,
    who: &Authenticated,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Reply, ApiError> {
    let counter = model.token_counter();
    let started = std::time::Instant::now();
    match target {
        Target::Kb { kb, question, mode } => {
            let mut streamed = String::new();
            let answer = state.answering().ask_with(&kb, &question, &who.caller, model, options, mode, &mut |piece| {
                streamed.push_str(piece);
                on_text(piece)
            })?;
            let cited: Vec<(&str, &str)> = answer.citations.iter().map(|c| (c.source.as_str(), c.chunk_id.as_str())).collect();
            zhiku_rag::audit::record_question(&state.audit_log(), &who.actor(), "ask", &kb, &question, &cited, Some(&answer.answer))?;
            let correction = (!answer.generated && !answer.abstained && answer.answer != streamed)
                .then(|| format!("\n\n(The generated text is not supported by the sources; quoting them instead.)\n\n{}", answer.answer));
            let completion_tokens = counter.count_tokens(&answer.answer);
            if answer.cached {
                state.metrics.answer_cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                state.metrics.answered(started.elapsed(), completion_tokens);
            }
            Ok(Reply {
                cached: answer.cached,
                prompt_tokens: counter.count_tokens(&question),
                completion_tokens,
                text: answer.answer,
                citations: answer.citations,
                correction,
            })
        }
        Target::Chat { messages, .. } => {
            let generation = model.generate(&messages, options, &mut |piece| on_text(piece)).map_err(ApiError::internal)?;
            let question = messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.as_str()).unwrap_or("");
            let detail = json!({
                "model": model_id, "question_sha256": zhiku_rag::audit::sha256_hex(question),
                "answer_sha256": zhiku_rag::audit::sha256_hex(&generation.text),
            });
            who.audit(&state.audit_log(), "chat", None, detail)?;
            state.metrics.answered(started.elapsed(), generation.generated_tokens);
            Ok(Reply {
                cached: false,
                citations: Vec::new(),
                correction: None,
                prompt_tokens: generation.prompt_tokens,
                completion_tokens: generation.generated_tokens,
                text: generation.text,
            })
        }
    }
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatRequest,
    responses(
        (status = 200, description = "A chat.completion object with `citations` ([{n, source, chunk_id}]); with `stream: true`, an SSE stream of chat.completion.chunk objects whose final chunk carries `citations` and `usage`, then `data: [DONE]`", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody),
        (status = 503, description = "No language model installed", body = ErrorBody)))]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let (target, options) = check(&request, &state)?;
    if let Some(c) = &request.conversation {
        if c.is_empty() || c.len() > 64 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(ApiError::invalid("conversation must be 1 to 64 letters, digits, '-' or '_'", Some("conversation")));
        }
    }
    // An unknown knowledge base (or one without a role of the caller's) is a 404 before any
    // stream starts.
    if let Target::Kb { kb, .. } = &target {
        crate::auth::check_role(&state, &who, kb, zhiku_core::Role::Viewer).await.map_err(|e| {
            if e.status == axum::http::StatusCode::NOT_FOUND {
                ApiError::not_found(
                    format!("knowledge base '{kb}' does not exist (or you have no role on it)"),
                    "model_not_found",
                    Some("model"),
                )
            } else {
                e
            }
        })?;
    }
    let (target, (model_id, chat_model)) = {
        let (worker, requested) = (state.clone(), request.adapter.clone());
        blocking(move || {
            let chosen = chosen_model(&worker, &target, requested.as_deref())?;
            Ok::<_, ApiError>((target, chosen))
        })
        .await?
    };
    state.metrics.generation_queue.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let permit = state.generation_slots.clone().acquire_owned().await;
    state.metrics.generation_queue.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let permit = permit.map_err(ApiError::internal)?;
    let (id, created, model) = (completion_id(), now(), request.model.clone());
    let history = (request.store == Some(true)).then(|| History {
        completion_id: id.clone(),
        conversation: request.conversation.clone().unwrap_or_else(|| id.clone()),
        user: who.user.clone(),
        kb: match &target {
            Target::Kb { kb, .. } => Some(kb.clone()),
            Target::Chat { .. } => None,
        },
        model: model.clone(),
        question: match &target {
            Target::Kb { question, .. } => question.clone(),
            Target::Chat { messages, .. } => {
                messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default()
            }
        },
    });
    let conversation = history.as_ref().map(|h| h.conversation.clone());
    if !request.stream {
        let worker = state.clone();
        let reply = blocking(move || {
            let _permit = permit;
            let reply = run(&worker, target, (&model_id, chat_model.as_ref()), &options, &who, &mut |_| true)?;
            if let Some(h) = &history {
                h.record(&worker, &reply);
            }
            Ok::<_, ApiError>(reply)
        })
        .await?;
        let text = reply.text.trim();
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                       "total_tokens": reply.prompt_tokens + reply.completion_tokens },
            "citations": reply.citations,
            "conversation": conversation,
            "cached": reply.cached,
        }))
        .into_response());
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    let chunk = {
        let (id, model) = (id.clone(), model.clone());
        move |delta: Value, finish: Option<&str>| {
            json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        }
    };
    let event = |value: Value| Event::default().data(value.to_string());
    let _ = tx.send(event(chunk(json!({ "role": "assistant", "content": "" }), None))).await;
    let (worker, span) = (state.clone(), tracing::Span::current());
    tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        let _permit = permit;
        let result = run(&worker, target, (&model_id, chat_model.as_ref()), &options, &who, &mut |piece| {
            // A client that went away has dropped the stream: stop generating for it.
            tx.blocking_send(event(chunk(json!({ "content": piece }), None))).is_ok()
        });
        match result {
            Ok(reply) => {
                if let Some(h) = &history {
                    h.record(&worker, &reply);
                }
                if let Some(correction) = &reply.correction {
                    let _ = tx.blocking_send(event(chunk(json!({ "content": correction }), None)));
                }
                let mut last = chunk(json!({}), Some("stop"));
                last["citations"] = json!(reply.citations);
                last["conversation"] = json!(conversation);
                last["cached"] = json!(reply.cached);
                last["usage"] = json!({ "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                                        "total_tokens": reply.prompt_tokens + reply.completion_tokens });
                let _ = tx.blocking_send(event(last));
            }
            Err(e) => {
                let _ = tx.blocking_send(event(json!(e.body())));
            }
        }
        let _ = tx.blocking_send(Event::default().data("[DONE]"));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(stream).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingsRequest {
    model: String,
    /// A string or an array of strings.
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest,
    responses((status = 200, description = "A list of embedding objects (float arrays, or base64 of little-endian f32 with encoding_format=base64)", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn embeddings(State(state): State<Arc<AppState>>, ApiJson(request): ApiJson<EmbeddingsRequest>) -> Result<Json<Value>, ApiError> {
    if request.model != state.embedding_model {
        return Err(ApiError::not_found(
            format!("the embedding model '{}' does not exist; this server embeds with '{}'", request.model, state.embedding_model),
            "model_not_found",
            Some("model"),
        ));
    }
    let texts: Vec<String> = match &request.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Array(_) => {
            return Err(ApiError::invalid("input must be a string or an array of strings (token arrays are not supported)", Some("input")))
        }
        _ => return Err(ApiError::invalid("input must be a string or an array of strings", Some("input"))),
    };
    if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(format!("input must hold 1 to {MAX_EMBEDDING_INPUTS} strings, got {}", texts.len()), Some("input")));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::invalid(format!("input[{i}] is empty"), Some("input")));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("encoding_format '{other}' is not supported (float or base64)"), Some("encoding_format")))
        }
    };
    let dim = state.embedder.dimension();
    if let Some(d) = request.dimensions.filter(|d| *d != dim) {
        return Err(ApiError::invalid(format!("this model has {dim} dimensions and cannot give {d}"), Some("dimensions")));
    }
    let embedder = state.embedder.clone();
    let (vectors, tokens) = computing(&state, move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = refs.iter().map(|t| embedder.count_tokens(t)).sum();
        embedder.embed(&refs).map(|v| (v, tokens)).map_err(ApiError::internal)
    })
    .await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": state.embedding_model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}
