//! OpenTelemetry trace export: every span zhiku opens (request, ingest, retrieve, answer,
//! generate, graph) becomes an OTLP span sent as JSON over HTTP to a collector (OpenTelemetry
//! Collector, Jaeger, Tempo, ...), configured with OpenTelemetry's own environment variables.
//! A request carrying a W3C `traceparent` header continues the caller's trace. Exporting
//! never blocks the work it traces: spans wait in a bounded queue, and when the collector
//! falls behind the excess is dropped (and counted in a warning), never piled up in memory.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Where and how spans go, from `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    pub delay: Duration,
    pub batch: usize,
    pub queue: usize,
}

impl ExportSettings {
    /// `None` when no endpoint is set (or `OTEL_SDK_DISABLED=true`): nothing is exported.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")) {
            return None;
        }
        let endpoint = match (var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(traces), _) => traces,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return None,
        };
        let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|list| {
                list.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
                    .filter(|(k, _)| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let number = |name: &str, default: u64| var(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
        Some(Self {
            endpoint,
            headers,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "zhiku".to_string()),
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000).max(10)),
            batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize,
            queue: number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize,
        })
    }
}

/// `%2C` and friends in header values (the variable's format is W3C baggage-like).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A W3C trace context: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
pub fn parse_traceparent(header: &str) -> Option<([u8; 16], [u8; 8])> {
    let parts: Vec<&str> = header.trim().split('-').collect();
    if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" || parts[3].len() != 2 {
        return None;
    }
    let mut trace = [0u8; 16];
    let mut parent = [0u8; 8];
    hex_into(parts[1], &mut trace)?;
    hex_into(parts[2], &mut parent)?;
    // All-zero ids are invalid by the specification.
    (trace != [0; 16] && parent != [0; 8]).then_some((trace, parent))
}

fn hex_into(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

thread_local! {
    static IDS: RefCell<Option<zhiku_core::random::SplitMix64>> = const { RefCell::new(None) };
}

fn random_u64() -> u64 {
    IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        let rng = ids.get_or_insert_with(|| {
            let mut seed = [0u8; 8];
            if getrandom::fill(&mut seed).is_err() {
                // Unique enough to tell traces apart, which is all an id has to do.
                let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64;
                seed = (nanos ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
            }
            zhiku_core::random::SplitMix64::new(u64::from_le_bytes(seed))
        });
        loop {
            let v = rng.next_u64();
            if v != 0 {
                return v;
            }
        }
    })
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A span on its way to the collector.
#[derive(Debug, Clone)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &'static str,
    server: bool,
    start: u64,
    end: u64,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

impl SpanData {
    fn to_otlp(&self) -> Value {
        let mut span = json!({
            "traceId": hex(&self.trace_id),
            "spanId": hex(&self.span_id),
            "name": self.name,
            // SPAN_KIND_SERVER for an HTTP request, SPAN_KIND_INTERNAL for the work inside.
            "kind": if self.server { 2 } else { 1 },
            "startTimeUnixNano": self.start.to_string(),
            "endTimeUnixNano": self.end.to_string(),
            "attributes": self.attributes.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
        });
        if let Some(parent) = &self.parent {
            span["parentSpanId"] = json!(hex(parent));
        }
        if let Some(message) = &self.error {
            span["status"] = json!({ "code": 2, "message": message });
        }
        span
    }
}

/// Span fields as OTLP attribute values; `traceparent` is taken apart, not exported.
#[derive(Default)]
struct Fields {
    attributes: Vec<(&'static str, Value)>,
    traceparent: Option<String>,
    message: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "traceparent" => self.traceparent = value.get("stringValue").and_then(Value::as_str).map(str::to_string),
            "message" => self.message = value.get("stringValue").and_then(Value::as_str).map(str::to_string),
            name => {
                self.attributes.retain(|(k, _)| *k != name);
                self.attributes.push((name, value));
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, json!({ "stringValue": format!("{value:?}") }));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json!({ "stringValue": value }));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        // OTLP JSON carries 64-bit integers as strings.
        self.put(field, json!({ "intValue": value.to_string() }));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!({ "intValue": value.min(i64::MAX as u64).to_string() }));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!({ "boolValue": value }));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!({ "doubleValue": value }));
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Send what is queued and answer on the channel.
    Flush(SyncSender<()>),
}

/// The `tracing` layer that turns spans into OTLP spans.
pub struct OtlpLayer {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let continued = fields.traceparent.as_deref().and_then(parse_traceparent);
        let parent = span.parent().and_then(|p| p.extensions().get::<SpanData>().map(|d| (d.trace_id, d.span_id)));
        let (trace_id, parent) = match (continued, parent) {
            (Some((trace, remote_parent)), _) => (trace, Some(remote_parent)),
            (None, Some((trace, parent))) => (trace, Some(parent)),
            (None, None) => {
                let mut trace = [0u8; 16];
                trace[..8].copy_from_slice(&random_u64().to_be_bytes());
                trace[8..].copy_from_slice(&random_u64().to_be_bytes());
                (trace, None)
            }
        };
        let data = SpanData {
            trace_id,
            span_id: random_u64().to_be_bytes(),
            parent,
            name: attrs.metadata().name(),
            server: attrs.metadata().name() == "request",
            start: unix_nanos(),
            end: 0,
            attributes: fields.attributes,
            error: None,
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<SpanData>() {
            let mut fields = Fields { attributes: std::mem::take(&mut data.attributes), ..Default::default() };
            values.record(&mut fields);
            data.attributes = fields.attributes;
        }
    }

    /// An error logged inside a span marks the span as failed, with the message.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<SpanData>() {
            data.error = Some(fields.message.unwrap_or_else(|| "error".to_string()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else { return };
        data.end = unix_nanos();
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Message::Span(Box::new(data))) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends the queued spans when dropped (at the end of `main`), so short commands export too.
pub struct ExportGuard {
    queue: SyncSender<Message>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            // A collector that does not answer must not hold the command's exit for long.
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
        drop(self.worker.take());
    }
}

/// The layer and its exporting thread.
pub fn layer(settings: ExportSettings) -> std::io::Result<(OtlpLayer, ExportGuard)> {
    let (queue, spans) = std::sync::mpsc::sync_channel(settings.queue);
    let dropped = Arc::new(AtomicU64::new(0));
    let worker = {
        let dropped = dropped.clone();
        std::thread::Builder::new().name("zhiku-otlp".into()).spawn(move || export_loop(settings, spans, dropped))?
    };
    Ok((OtlpLayer { queue: queue.clone(), dropped }, ExportGuard { queue, worker: Some(worker) }))
}

fn export_loop(settings: ExportSettings, spans: Receiver<Message>, dropped: Arc<AtomicU64>) {
    let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).http_status_as_error(false).build().new_agent();
    let resource = json!({ "attributes": [
        { "key": "service.name", "value": { "stringValue": settings.service_name } },
        { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
        { "key": "telemetry.sdk.name", "value": { "stringValue": "zhiku" } },
        { "key": "telemetry.sdk.language", "value": { "stringValue": "rust" } },
    ]});
    let mut batch: Vec<SpanData> = Vec::new();
    let mut failing = false;
    let mut send = |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        let body = json!({ "resourceSpans": [{
            "resource": resource,
            "scopeSpans": [{ "scope": { "name": "zhiku", "version": env!("CARGO_PKG_VERSION") },
                             "spans": batch.iter().map(SpanData::to_otlp).collect::<Vec<_>>() }],
        }]});
        let mut request = agent.post(&settings.endpoint).header("Content-Type", "application/json");
        for (k, v) in &settings.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let outcome = match request.send(body.to_string()) {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => failing = false,
            // Once per outage, not once per batch.
            Err(reason) if !failing => {
                failing = true;
                tracing::warn!(endpoint = %settings.endpoint, %reason, spans = batch.len(), "cannot export trace spans; dropping them until the collector answers");
            }
            Err(_) => {}
        }
        batch.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(spans = lost, "trace spans dropped: the export queue was full (raise OTEL_BSP_MAX_QUEUE_SIZE)");
        }
    };
    let mut deadline = Instant::now() + settings.delay;
    loop {
        match spans.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= settings.batch {
                    send(&mut batch);
                }
            }
            Ok(Message::Flush(done)) => {
                send(&mut batch);
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                send(&mut batch);
                deadline = Instant::now() + settings.delay;
            }
            Err(RecvTimeoutError::Disconnected) => {
                send(&mut batch);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_opentelemetry_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(ExportSettings::from_env(env(&[])), None);
        let base = ExportSettings::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])).unwrap();
        assert_eq!((base.endpoint.as_str(), base.service_name.as_str()), ("http://collector:4318/v1/traces", "zhiku"));
        let full = ExportSettings::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://tempo:443/otlp/v1/traces"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc, x-org = ops"),
            ("OTEL_SERVICE_NAME", "kb-prod"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ]))
        .unwrap();
        assert_eq!(full.endpoint, "https://tempo:443/otlp/v1/traces");
        assert_eq!(full.headers, [("authorization".to_string(), "Bearer abc".to_string()), ("x-org".to_string(), "ops".to_string())]);
        assert_eq!((full.service_name.as_str(), full.delay), ("kb-prod", Duration::from_millis(250)));
        let off = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(ExportSettings::from_env(off), None);
    }

    #[test]
    fn trace_contexts_are_read_as_w3c_specifies() {
        let (trace, parent) = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!((hex(&trace), hex(&parent)), ("4bf92f3577b34da6a3ce929d0e0e4736".to_string(), "00f067aa0ba902b7".to_string()));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
