//! What the audit log records of questions and searches, the same from the CLI and the server:
//! who asked which knowledge base, what was retrieved (sources and chunk ids), and a hash of the
//! answer. The question's text only where the knowledge base's policy keeps it.

use serde_json::json;
use sha2::{Digest, Sha256};
use zhiku_store::{AuditEvent, Store};

use crate::{FileOutcome, IngestReport, Result, SearchHit};

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One question (`action` `ask`) or search (`search`) and what it retrieved.
pub fn record_question(
    store: &Store,
    actor: &str,
    action: &str,
    kb: &str,
    question: &str,
    retrieved: &[(&str, &str)],
    answer: Option<&str>,
) -> Result<()> {
    // A shared database's knowledge base has no such setting here: only hashes are kept.
    let keep_text = match store.kb_logs_questions(kb) {
        Err(zhiku_store::Error::UnknownKb(_)) => false,
        other => other?,
    };
    let retrieved: Vec<_> = retrieved.iter().map(|(source, chunk)| json!({ "source": source, "chunk_id": chunk })).collect();
    let detail = json!({
        "question": if keep_text { Some(question) } else { None },
        "question_sha256": sha256_hex(question),
        "retrieved": retrieved,
        "answer_sha256": answer.map(sha256_hex),
    });
    store.audit(&AuditEvent { actor, action, kb: Some(kb), detail })?;
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
