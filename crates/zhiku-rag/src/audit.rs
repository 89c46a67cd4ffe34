//! What the audit log records of questions and searches, the same from the CLI and the server:
//! who asked which knowledge base, what was retrieved (sources and chunk ids), and a hash of the
//! answer. The question's text only where the knowledge base's policy keeps it.

use serde_json::json;
use sha2::{Digest, Sha256};
use zhiku_store::{AuditEvent, Store};

use crate::{FileOutcome, IngestReport, Result, SearchHit};

/// Where audit entries go: the embedded store's chain, or the shared database's (every replica
/// and worker of a deployment appending to one chain).
pub trait AuditLog: Send + Sync {
    /// Appends an entry, durable when this returns; its sequence number.
    fn append(&self, event: &AuditEvent<'_>) -> Result<i64>;

    /// Whether questions asked of `kb` are kept as text (else only their hash).
    fn keeps_question_text(&self, kb: &str) -> Result<bool>;
}

impl<T: AuditLog + ?Sized> AuditLog for std::sync::Arc<T> {
    fn append(&self, event: &AuditEvent<'_>) -> Result<i64> {
        (**self).append(event)
    }

    fn keeps_question_text(&self, kb: &str) -> Result<bool> {
        (**self).keeps_question_text(kb)
    }
}

impl AuditLog for Store {
    fn append(&self, event: &AuditEvent<'_>) -> Result<i64> {
        Ok(self.audit(event)?)
    }

    fn keeps_question_text(&self, kb: &str) -> Result<bool> {
        match self.kb_logs_questions(kb) {
            Err(zhiku_store::Error::UnknownKb(_)) => Ok(false),
            other => Ok(other?),
        }
    }
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One question (`action` `ask`) or search (`search`) and what it retrieved.
pub fn record_question(
    log: &dyn AuditLog,
    actor: &str,
    action: &str,
    kb: &str,
    question: &str,
    retrieved: &[(&str, &str)],
    answer: Option<&str>,
) -> Result<()> {
    let keep_text = log.keeps_question_text(kb)?;
    let retrieved: Vec<_> = retrieved.iter().map(|(source, chunk)| json!({ "source": source, "chunk_id": chunk })).collect();
    let detail = json!({
        "question": if keep_text { Some(question) } else { None },
        "question_sha256": sha256_hex(question),
        "retrieved": retrieved,
        "answer_sha256": answer.map(sha256_hex),
    });
    log.append(&AuditEvent { actor, action, kb: Some(kb), detail })?;
    Ok(())
}

/// The (source, chunk id) pairs of search hits, for [`record_question`].
pub fn hit_refs(hits: &[SearchHit]) -> Vec<(&str, &str)> {
    hits.iter().map(|h| (h.source.as_str(), h.chunk_id.as_str())).collect()
}

/// Sources listed per outcome in an ingestion's audit entry; beyond that only counts.
const LISTED_SOURCES: usize = 1000;

/// The audit detail of an ingestion: counts, and which sources were written or removed.
pub fn ingest_detail(report: &IngestReport) -> serde_json::Value {
    let sources = |pred: fn(&FileOutcome) -> bool| -> Vec<&str> {
        report.files.iter().filter(|f| pred(&f.outcome)).map(|f| f.source.as_str()).take(LISTED_SOURCES).collect()
    };
    json!({
        "ingested": report.ingested(),
        "unchanged": report.unchanged(),
        "duplicates": report.duplicates(),
        "removed": report.removed(),
        "failed": report.failed(),
        "injection": report.injection(),
        "written": sources(|o| matches!(o, FileOutcome::Ingested { .. } | FileOutcome::Replaced { .. })),
        "deleted": sources(|o| matches!(o, FileOutcome::Removed)),
    })
}
