//! Remote providers: any OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp's server,
//! another zhiku, a gateway) for chat and embeddings — the path past one machine's CPU.
//!
//! Chat streams (`stream: true`, server-sent events), so answers start as soon as the server
//! sends; embeddings go in batches. Connection failures, 429 and 5xx are retried with
//! exponential backoff — for chat only before the first token arrives, since text already
//! shown cannot be taken back. The API key is sent as a bearer token and never logged.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zhiku_core::{ApproxTokenCounter, Embedder, TokenCounter};

use crate::{ChatMessage, ChatModel, Error, Generation, GenerationOptions, Result};

/// Where a remote model lives and how patiently to talk to it.
#[derive(Clone)]
pub struct RemoteEndpoint {
    /// Up to and including `/v1` (e.g. `http://gpu-1:8000/v1`).
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model name the server knows.
    pub model: String,
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

impl std::fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs and error messages.
        f.debug_struct("RemoteEndpoint").field("base_url", &self.base_url).field("model", &self.model).finish_non_exhaustive()
    }
}

impl RemoteEndpoint {
    fn agent(&self) -> ureq::Agent {
        // The system's certificate store: a company's own CA is trusted where its servers are.
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).tls_config(tls).build().into()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url.trim_end_matches('/'))
    }

    /// POSTs `body`, retrying what may pass on a second try; the response of the last attempt.
    fn post(&self, agent: &ureq::Agent, path: &str, body: &Value) -> Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            let mut request = agent.post(&url).header("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                request = request.header("Authorization", format!("Bearer {key}"));
            }
            let outcome = request.send(body.to_string());
            let retryable = match &outcome {
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(_) => true,
            };
            if !retryable || attempt >= self.retries {
                return match outcome {
                    Ok(r) if r.status().is_success() => Ok(r),
                    Ok(mut r) => {
                        let status = r.status();
                        let detail = r.body_mut().read_to_string().unwrap_or_default();
                        let message = serde_json::from_str::<Value>(&detail)
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| detail.chars().take(300).collect());
                        Err(Error::Remote { url, reason: format!("HTTP {status}: {message}") })
                    }
                    Err(e) => Err(Error::Remote { url, reason: e.to_string() }),
                };
            }
            let wait = Duration::from_millis(250 << attempt.min(6));
            tracing::warn!(url = %url, attempt = attempt + 1, "remote model unavailable; retrying in {wait:?}");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }
}

/// A chat model served elsewhere.
pub struct RemoteChat {
    endpoint: RemoteEndpoint,
    counter: ApproxTokenCounter,
}

impl RemoteChat {
    pub fn new(endpoint: RemoteEndpoint) -> Self {
        Self { endpoint, counter: ApproxTokenCounter }
    }

    pub fn endpoint(&self) -> &RemoteEndpoint {
        &self.endpoint
    }
}

impl ChatModel for RemoteChat {
    fn generate(&self, messages: &[ChatMessage], options: &GenerationOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        let started = Instant::now();
        let mut body = json!({
            "model": self.endpoint.model,
            "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
            "stream": true,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "seed": options.seed,
        });
        if options.repeat_penalty != 1.0 {
            // OpenAI's nearest knob; servers that know llama.cpp's take it as is.
            body["repeat_penalty"] = json!(options.repeat_penalty);
        }
        let agent = self.endpoint.agent();
        let response = self.endpoint.post(&agent, "chat/completions", &body)?;
        let url = self.endpoint.url("chat/completions");
        let mut text = String::new();
        let mut first_token: Option<Instant> = None;
        let mut usage: Option<(usize, usize)> = None;
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| Error::Remote { url: url.clone(), reason: format!("the stream broke: {e}") })?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                break;
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| Error::Remote { url: url.clone(), reason: format!("not a chat.completion.chunk: {e}") })?;
            if let Some(message) = event["error"]["message"].as_str() {
                return Err(Error::Remote { url, reason: message.to_string() });
            }
            if let (Some(p), Some(c)) = (event["usage"]["prompt_tokens"].as_u64(), event["usage"]["completion_tokens"].as_u64()) {
                usage = Some((p as usize, c as usize));
            }
            let Some(piece) = event["choices"][0]["delta"]["content"].as_str() else { continue };
            if piece.is_empty() {
                continue;
            }
            first_token.get_or_insert_with(Instant::now);
            text.push_str(piece);
            if !on_text(piece) {
                break;
            }
        }
        let decode_from = first_token.unwrap_or_else(Instant::now);
        let (prompt_tokens, generated_tokens) = usage.unwrap_or_else(|| {
            let prompt: usize = messages.iter().map(|m| self.counter.count_tokens(&m.content)).sum();
            (prompt, self.counter.count_tokens(&text))
        });
        Ok(Generation {
            text,
            prompt_tokens,
            generated_tokens,
            prompt_seconds: decode_from.duration_since(started).as_secs_f64(),
            decode_seconds: decode_from.elapsed().as_secs_f64(),
        })
    }

    fn token_counter(&self) -> &dyn TokenCounter {
        &self.counter
    }
}

/// An embedding model served elsewhere (`POST /embeddings`).
pub struct RemoteEmbedder {
    endpoint: RemoteEndpoint,
    dimension: usize,
    counter: ApproxTokenCounter,
}

/// Texts per request.
const EMBED_BATCH: usize = 64;

impl RemoteEmbedder {
    /// Connects and learns the model's dimension from one embedding.
    pub fn connect(endpoint: RemoteEndpoint) -> Result<Self> {
        let mut this = Self { endpoint, dimension: 0, counter: ApproxTokenCounter };
        let probe = this.embed_batch(&["dimension probe"])?;
        this.dimension = probe.first().map(Vec::len).unwrap_or(0);
        if this.dimension == 0 {
            return Err(Error::Remote { url: this.endpoint.url("embeddings"), reason: "the server returned an empty embedding".into() });
        }
        Ok(this)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let url = self.endpoint.url("embeddings");
        let body = json!({"model": self.endpoint.model, "input": texts});
        let mut response = self.endpoint.post(&self.endpoint.agent(), "embeddings", &body)?;
        let value: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| Error::Remote { url: url.clone(), reason: format!("not an embeddings response: {e}") })?;
        let mut rows: Vec<(usize, Vec<f32>)> = value["data"]
            .as_array()
            .ok_or_else(|| Error::Remote { url: url.clone(), reason: "no data in the embeddings response".into() })?
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let index = row["index"].as_u64().map(|n| n as usize).unwrap_or(i);
                let vector =
                    row["embedding"].as_array().map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32).collect()).unwrap_or_default();
                (index, vector)
            })
            .collect();
        if rows.len() != texts.len() {
            return Err(Error::Remote { url, reason: format!("{} embeddings for {} texts", rows.len(), texts.len()) });
        }
        rows.sort_by_key(|r| r.0);
        Ok(rows.into_iter().map(|r| r.1).collect())
    }
}

impl TokenCounter for RemoteEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.counter.count_tokens(text)
    }
}

impl Embedder for RemoteEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let vectors = self.embed_batch(batch).map_err(|e| zhiku_core::Error::Embedding(e.to_string()))?;
            if let Some(bad) = vectors.iter().find(|v| v.len() != self.dimension) {
                return Err(zhiku_core::Error::Embedding(format!(
                    "the remote model returned {} dimensions, not {}",
                    bad.len(),
                    self.dimension
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}
