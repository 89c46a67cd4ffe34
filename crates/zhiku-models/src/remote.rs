//! Remote providers: any OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp's server,
//! another zhiku, a gateway) for chat and embeddings — the path past one machine's CPU.
//!
//! Chat streams (`stream: true`, server-sent events), so answers start as soon as the server
//! sends; embeddings go in batches. Connection failures, 429 and 5xx are retried with
//! exponential backoff — for chat only before the first token arrives, since text already
//! shown cannot be taken back. The API key is sent as a bearer token and never logged.
//!
//! A [`RemotePool`] spreads requests over several servers of one model (vLLM replicas behind
//! no load balancer of their own): each request goes to the healthy server with the fewest
//! requests in flight; a server that fails is taken out for a cool-down that doubles while it
//! keeps failing, the request fails over to the next one, and a server coming back must first
//! answer a health check (`GET /models`).

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
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

    /// `GET /models` answers 200: the server is up and serving.
    fn health_check(&self) -> Result<()> {
        let url = self.url("models");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout.min(Duration::from_secs(5))))
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(&url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        match request.call() {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Error::Remote { url, reason: format!("health check: HTTP {}", r.status()) }),
            Err(e) => Err(Error::Remote { url, reason: format!("health check: {e}") }),
        }
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

/// Servers of one model, balanced and failed over (see the module documentation).
pub struct RemotePool {
    members: Vec<Member>,
    /// Breaks ties between equally loaded servers in turn.
    turn: AtomicUsize,
}

struct Member {
    endpoint: RemoteEndpoint,
    in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Consecutive failures; 0 when healthy.
    failures: u32,
    /// Out of rotation until then.
    resting_until: Option<Instant>,
}

/// The first cool-down of a failed server; each further failure doubles it, up to a minute.
const FIRST_REST: Duration = Duration::from_secs(2);
const LONGEST_REST: Duration = Duration::from_secs(60);

/// What one server in a pool currently looks like (for status pages and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub base_url: String,
    pub healthy: bool,
    pub in_flight: usize,
    pub failures: u32,
}

/// The same servers with a fresh record of their health (for another component's own pool).
impl Clone for RemotePool {
    fn clone(&self) -> Self {
        Self::new(self.members.iter().map(|m| m.endpoint.clone()).collect())
    }
}

impl RemotePool {
    /// A pool of at least one server.
    pub fn new(endpoints: Vec<RemoteEndpoint>) -> Self {
        assert!(!endpoints.is_empty(), "a remote pool needs a server");
        let members = endpoints
            .into_iter()
            .map(|endpoint| Member { endpoint, in_flight: AtomicUsize::new(0), health: Mutex::new(Health::default()) })
            .collect();
        // Processes that start together (workers, short CLI runs) begin at different servers.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        Self { members, turn: AtomicUsize::new(nanos as usize) }
    }

    /// The model name the servers know (the first one's).
    pub fn model(&self) -> &str {
        &self.members[0].endpoint.model
    }

    pub fn status(&self) -> Vec<MemberStatus> {
        let now = Instant::now();
        self.members
            .iter()
            .map(|m| {
                let health = m.health.lock().unwrap_or_else(|p| p.into_inner());
                MemberStatus {
                    base_url: m.endpoint.base_url.clone(),
                    healthy: health.resting_until.is_none_or(|t| t <= now),
                    in_flight: m.in_flight.load(Ordering::Relaxed),
                    failures: health.failures,
                }
            })
            .collect()
    }

    /// Servers in the order to try them: the rested healthy ones by load (ties in turn), then
    /// the resting ones, soonest back first — a request fails only when every server did.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let n = self.members.len();
        let mut ready: Vec<(usize, usize)> = Vec::new();
        let mut resting: Vec<(Instant, usize)> = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let member = &self.members[i];
            match member.health.lock().unwrap_or_else(|p| p.into_inner()).resting_until {
                Some(until) if until > now => resting.push((until, i)),
                _ => ready.push((member.in_flight.load(Ordering::Relaxed), i)),
            }
        }
        // Stable: equal loads keep the rotation's order.
        ready.sort_by_key(|r| r.0);
        resting.sort_by_key(|r| r.0);
        ready.into_iter().map(|r| r.1).chain(resting.into_iter().map(|r| r.1)).collect()
    }

    /// Runs `request` on one server after another until one succeeds; the last error otherwise.
    /// A server that failed before must pass a health check before it is trusted again.
    fn run<T>(&self, mut request: impl FnMut(&RemoteEndpoint) -> Result<T>) -> Result<T> {
        let mut last = None;
        for i in self.order() {
            let member = &self.members[i];
            let was_failing = member.health.lock().unwrap_or_else(|p| p.into_inner()).failures > 0;
            if was_failing && self.members.len() > 1 {
                if let Err(e) = member.endpoint.health_check() {
                    self.failed(member, &e);
                    last = Some(e);
                    continue;
                }
            }
            member.in_flight.fetch_add(1, Ordering::Relaxed);
            let outcome = request(&member.endpoint);
            member.in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(value) => {
                    *member.health.lock().unwrap_or_else(|p| p.into_inner()) = Health::default();
                    return Ok(value);
                }
                // A refusal of this request (400, 401, 404...) would be the same everywhere.
                Err(e @ Error::Remote { .. }) if self.members.len() > 1 && is_server_fault(&e) => {
                    self.failed(member, &e);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Remote { url: String::new(), reason: "no server in the pool".into() }))
    }

    fn failed(&self, member: &Member, error: &Error) {
        let mut health = member.health.lock().unwrap_or_else(|p| p.into_inner());
        health.failures += 1;
        let rest = FIRST_REST.saturating_mul(1 << (health.failures - 1).min(5)).min(LONGEST_REST);
        health.resting_until = Some(Instant::now() + rest);
        tracing::warn!(url = %member.endpoint.base_url, failures = health.failures, ?rest, %error, "remote server taken out of rotation");
    }
}

/// Whether a failed request says the server is unwell (unreachable, overloaded, erroring) rather
/// than that the request itself was wrong.
fn is_server_fault(error: &Error) -> bool {
    match error {
        Error::Remote { reason, .. } => !reason.starts_with("HTTP 4") || reason.starts_with("HTTP 429") || reason.starts_with("HTTP 408"),
        _ => false,
    }
}

/// A chat model served elsewhere.
pub struct RemoteChat {
    pool: RemotePool,
    counter: ApproxTokenCounter,
}

impl RemoteChat {
    pub fn new(pool: RemotePool) -> Self {
        Self { pool, counter: ApproxTokenCounter }
    }

    pub fn pool(&self) -> &RemotePool {
        &self.pool
    }
}

impl ChatModel for RemoteChat {
    fn generate(&self, messages: &[ChatMessage], options: &GenerationOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        let started = Instant::now();
        let mut body = json!({
            "model": self.pool.model(),
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
        // Failing over is possible until the response starts; a stream that breaks later is an
        // error, since its text has been shown.
        let (response, url) = self.pool.run(|endpoint| {
            let mut body = body.clone();
            body["model"] = json!(endpoint.model);
            let response = endpoint.post(&endpoint.agent(), "chat/completions", &body)?;
            Ok((response, endpoint.url("chat/completions")))
        })?;
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
    pool: RemotePool,
    dimension: usize,
    counter: ApproxTokenCounter,
}

/// Texts per request.
const EMBED_BATCH: usize = 64;

impl RemoteEmbedder {
    /// Connects and learns the model's dimension from one embedding.
    pub fn connect(pool: RemotePool) -> Result<Self> {
        let mut this = Self { pool, dimension: 0, counter: ApproxTokenCounter };
        let probe = this.embed_batch(&["dimension probe"])?;
        this.dimension = probe.first().map(Vec::len).unwrap_or(0);
        if this.dimension == 0 {
            let url = this.pool.members[0].endpoint.url("embeddings");
            return Err(Error::Remote { url, reason: "the server returned an empty embedding".into() });
        }
        Ok(this)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.pool.run(|endpoint| Self::embed_at(endpoint, texts))
    }

    fn embed_at(endpoint: &RemoteEndpoint, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let url = endpoint.url("embeddings");
        let body = json!({"model": endpoint.model, "input": texts});
        let mut response = endpoint.post(&endpoint.agent(), "embeddings", &body)?;
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
