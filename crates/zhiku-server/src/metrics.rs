//! Prometheus metrics at `GET /metrics` (text exposition format), kept in memory: requests and
//! latency per route template (never a concrete path, so no knowledge base or document name
//! shows), retrieval and answer latency, generated tokens, the generation queue, ingested files
//! by outcome, and at scrape time the store's sizes and the process's memory. The sizes count
//! every knowledge base, so the page wants an administrator's key unless `server.metrics_public`
//! opens it (Prometheus sends the key with `authorization: {credentials: zk_...}`).
//! `GET /readyz` says whether the server can serve (the store answers).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument;

use crate::{blocking, AppState};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.total += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.total);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.total);
    }
}

/// Everything counted since the server started.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    request_latency: Mutex<BTreeMap<String, Histogram>>,
    retrieval: Mutex<Histogram>,
    answers: Mutex<Histogram>,
    generated_tokens: AtomicU64,
    generation_micros: AtomicU64,
    /// Requests waiting for a generation slot.
    pub generation_queue: AtomicI64,
    /// Answers served from a knowledge base's answer cache.
    pub answer_cache_hits: AtomicU64,
    ingested_files: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn retrieval_took(&self, took: Duration) {
        self.retrieval.lock().unwrap_or_else(|p| p.into_inner()).observe(took.as_secs_f64());
    }

    /// One answer generated: its whole time and how many tokens it produced.
    pub fn answered(&self, took: Duration, tokens: usize) {
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).observe(took.as_secs_f64());
        self.generated_tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        self.generation_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn file_ingested(&self, outcome: &str) {
        *self.ingested_files.lock().unwrap_or_else(|p| p.into_inner()).entry(outcome.to_string()).or_default() += 1;
    }

    fn render(&self, sizes: (u64, u64, u64, u64), resident_bytes: Option<u64>, models: zhiku_models::pool::PoolStats) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut out, "zhiku_http_requests_total", "counter", "HTTP requests by method, route template and status.");
        for ((method, route, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "zhiku_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
        }
        family(&mut out, "zhiku_http_request_duration_seconds", "histogram", "Time to the response's head, by route template.");
        for (route, h) in self.request_latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            h.render(&mut out, "zhiku_http_request_duration_seconds", &format!("route=\"{route}\""));
        }
        family(&mut out, "zhiku_retrieval_duration_seconds", "histogram", "Hybrid search time (embedding, both indexes, fusion).");
        self.retrieval.lock().unwrap_or_else(|p| p.into_inner()).render(&mut out, "zhiku_retrieval_duration_seconds", "");
        family(&mut out, "zhiku_answer_duration_seconds", "histogram", "Time to a whole answer (retrieval and generation).");
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).render(&mut out, "zhiku_answer_duration_seconds", "");
        family(
            &mut out,
            "zhiku_generated_tokens_total",
            "counter",
            "Tokens generated; its rate over zhiku_generation_seconds_total is tokens/s.",
        );
        let _ = writeln!(out, "zhiku_generated_tokens_total {}", self.generated_tokens.load(Ordering::Relaxed));
        family(&mut out, "zhiku_generation_seconds_total", "counter", "Time spent answering.");
        let _ = writeln!(out, "zhiku_generation_seconds_total {}", self.generation_micros.load(Ordering::Relaxed) as f64 / 1e6);
        family(&mut out, "zhiku_answer_cache_hits_total", "counter", "Answers reused from a knowledge base's answer cache.");
        let _ = writeln!(out, "zhiku_answer_cache_hits_total {}", self.answer_cache_hits.load(Ordering::Relaxed));
        family(&mut out, "zhiku_generation_queue_depth", "gauge", "Requests waiting for a generation slot.");
        let _ = writeln!(out, "zhiku_generation_queue_depth {}", self.generation_queue.load(Ordering::Relaxed).max(0));
        family(&mut out, "zhiku_ingested_files_total", "counter", "Files ingested by the server's jobs, by outcome.");
        for (outcome, n) in self.ingested_files.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "zhiku_ingested_files_total{{outcome=\"{outcome}\"}} {n}");
        }
        let (kbs, documents, chunks, audit) = sizes;
        for (name, value, help) in [
            ("zhiku_knowledge_bases", kbs, "Knowledge bases."),
            ("zhiku_documents", documents, "Documents in all knowledge bases."),
            ("zhiku_chunks", chunks, "Chunks in all knowledge bases."),
            ("zhiku_audit_entries", audit, "Entries in the audit log."),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, kind, value, help) in [
            ("zhiku_models_loaded", "gauge", models.loaded as u64, "Language models loaded (the default, registered ones, adapters)."),
            ("zhiku_model_memory_bytes", "gauge", models.resident_bytes, "Memory of the loaded language models (their files' sizes)."),
            ("zhiku_model_memory_budget_bytes", "gauge", models.budget_bytes, "The models memory budget (0: none)."),
            ("zhiku_model_loads_total", "counter", models.loads, "Language models loaded on demand."),
            ("zhiku_model_evictions_total", "counter", models.evictions, "Language models unloaded to stay within the memory budget."),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(bytes) = resident_bytes {
            family(&mut out, "zhiku_process_resident_memory_bytes", "gauge", "Resident memory of the server, models included.");
            let _ = writeln!(out, "zhiku_process_resident_memory_bytes {bytes}");
        }
        out
    }
}

/// Counts each routed request and its latency under its route template.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    // A caller's W3C trace context: the trace exporter continues its trace.
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let span = tracing::info_span!("request", %method, route = %route, status = tracing::field::Empty, traceparent = %traceparent);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    let took = started.elapsed().as_secs_f64();
    let metrics = &state.metrics;
    *metrics.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((method, route.clone(), response.status().as_u16())).or_default() +=
        1;
    metrics.request_latency.lock().unwrap_or_else(|p| p.into_inner()).entry(route).or_default().observe(took);
    response
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[utoipa::path(get, path = "/metrics", tag = "zhiku",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, description = "Needs an administrator's key unless server.metrics_public", body = crate::error::ErrorBody)))]
pub async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if !state.security.metrics_public {
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let key = presented.unwrap_or("").trim().to_string();
        let store = state.store.clone();
        let admin = blocking(move || store.verify_api_key(&key)).await.ok().flatten().is_some_and(|k| k.admin);
        if !admin {
            return crate::ApiError::unauthorized("/metrics needs an administrator's key (or server.metrics_public = true)")
                .into_response();
        }
    }
    let store = state.store.clone();
    let sizes = blocking(move || store.counts()).await.unwrap_or_default();
    let body = state.metrics.render(sizes, resident_bytes(), state.models.stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "zhiku", security(()),
    responses((status = 200, description = "{ready: true, chat_model}", body = serde_json::Value),
        (status = 503, description = "{ready: false, reason}: the store does not answer", body = serde_json::Value)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (store, cluster) = (state.store.clone(), state.cluster.clone());
    let answers = blocking(move || -> Result<(), crate::ApiError> {
        store.counts()?;
        if let Some(cluster) = cluster {
            cluster.ping()?;
        }
        Ok(())
    });
    match answers.await {
        Ok(_) => axum::Json(json!({ "ready": true, "chat_model": state.models.default_model().is_some() })).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "ready": false, "reason": e.message }))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_format_is_prometheus() {
        let m = Metrics::default();
        m.retrieval_took(Duration::from_millis(3));
        m.retrieval_took(Duration::from_millis(30));
        m.answered(Duration::from_secs(2), 40);
        m.file_ingested("ingested");
        let models = zhiku_models::pool::PoolStats { loaded: 2, resident_bytes: 3 << 20, budget_bytes: 4 << 20, loads: 5, evictions: 1 };
        let text = m.render((1, 2, 3, 4), Some(1 << 20), models);
        assert!(text.contains("zhiku_retrieval_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("zhiku_retrieval_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("zhiku_retrieval_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("zhiku_retrieval_duration_seconds_count 2"));
        assert!(text.contains("zhiku_generated_tokens_total 40") && text.contains("zhiku_generation_seconds_total 2"));
        assert!(text.contains("zhiku_ingested_files_total{outcome=\"ingested\"} 1") && text.contains("zhiku_chunks 3"));
        assert!(text.contains("# TYPE zhiku_http_requests_total counter"));
        assert!(text.contains("zhiku_model_memory_bytes 3145728") && text.contains("zhiku_model_evictions_total 1"), "{text}");
        assert!(text.contains("# TYPE zhiku_model_loads_total counter") && text.contains("zhiku_models_loaded 2"));
    }
}
