//! The fine-tuning review queue: question/answer pairs a model wrote from chunks, each pending
//! until someone accepts (perhaps after editing) or rejects it.
//!
//! A pair belongs to its chunk — replacing or deleting the document removes it — and is read
//! back with the chunk's source and ACL, so that only people who may read the passage see the
//! pair made from it. Which chunks a generator has already read is recorded with the outcome,
//! so a second run only reads what is new. The text is sealed like document text.

use crate::CachedRow;
use std::collections::HashSet;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use zhiku_core::Principal;

use crate::{acl_from_json, now, Result, Store};

pub(crate) const FINETUNE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS finetune_attempt (
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    generator TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (chunk_id, generator)
);
CREATE TABLE IF NOT EXISTS finetune_pair (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    generator TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    edited INTEGER NOT NULL DEFAULT 0,
    reviewer TEXT,
    reviewed_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS finetune_pair_chunk ON finetune_pair(chunk_id);
"#;

/// Where a pair stands in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairStatus {
    Pending,
    Accepted,
    Rejected,
}

impl PairStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => Self::Pending,
        }
    }
}

impl std::str::FromStr for PairStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pending" | "accepted" | "rejected" => Ok(Self::parse(s)),
            other => Err(format!("unknown review status '{other}': use pending, accepted or rejected")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredPair {
    pub id: i64,
    pub chunk_id: u64,
    pub source: String,
    #[serde(skip)]
    pub acl: Vec<Principal>,
    pub generator: String,
    pub question: String,
    pub answer: String,
    pub status: PairStatus,
    /// A reviewer changed the question or the answer.
    pub edited: bool,
    pub reviewer: Option<String>,
    pub reviewed_at: Option<i64>,
}

impl Store {
    /// The chunks of the knowledge base that `generator` has already read.
    pub fn finetune_attempted(&self, kb: &str, generator: &str) -> Result<HashSet<u64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT a.chunk_id FROM finetune_attempt a JOIN chunk c ON c.id = a.chunk_id JOIN document d ON d.id = c.doc_id
             WHERE d.kb = ?1 AND a.generator = ?2",
        )?;
        let ids = stmt.query_map(params![kb, generator], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids.into_iter().map(|id| id as u64).collect())
    }

    /// Records that `generator` read the chunk, with the outcome (`kept` or why not) and the
    /// pair it kept, in one transaction; `None` when the chunk is gone meanwhile.
    pub fn record_finetune_attempt(
        &self,
        chunk_id: u64,
        generator: &str,
        outcome: &str,
        pair: Option<(&str, &str)>,
    ) -> Result<Option<Option<i64>>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx.cached_row("SELECT 1 FROM chunk WHERE id = ?1", params![chunk_id as i64], |_| Ok(())).optional()?.is_some();
        if !exists {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO finetune_attempt (chunk_id, generator, outcome) VALUES (?1, ?2, ?3)
             ON CONFLICT (chunk_id, generator) DO UPDATE SET outcome = excluded.outcome",
            params![chunk_id as i64, generator, outcome],
        )?;
        let id = match pair {
            Some((question, answer)) => {
                tx.execute(
                    "INSERT INTO finetune_pair (chunk_id, generator, question, answer, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![chunk_id as i64, generator, self.seal(question)?, self.seal(answer)?, now()],
                )?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        tx.commit()?;
        Ok(Some(id))
    }

    /// Every pair of the knowledge base, oldest first, with its chunk's source and ACL.
    pub fn finetune_pairs(&self, kb: &str) -> Result<Vec<StoredPair>> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT p.id, p.chunk_id, d.source, d.acl, p.generator, p.question, p.answer, p.status, p.edited, p.reviewer, p.reviewed_at
                 FROM finetune_pair p JOIN chunk c ON c.id = p.chunk_id JOIN document d ON d.id = c.doc_id
                 WHERE d.kb = ?1 ORDER BY p.id",
            )?;
            let rows = stmt
                .query_map(params![kb], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, bool>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, Option<i64>>(10)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        rows.into_iter()
            .map(|(id, chunk_id, source, acl, generator, question, answer, status, edited, reviewer, reviewed_at)| {
                Ok(StoredPair {
                    id,
                    chunk_id: chunk_id as u64,
                    source,
                    acl: acl_from_json(&acl)?,
                    generator,
                    question: self.unseal(question)?,
                    answer: self.unseal(answer)?,
                    status: PairStatus::parse(&status),
                    edited,
                    reviewer,
                    reviewed_at,
                })
            })
            .collect()
    }

    /// Sets a pair's review status, replacing its question and/or answer when given; false
    /// when the knowledge base has no such pair.
    pub fn review_finetune_pair(
        &self,
        kb: &str,
        id: i64,
        status: PairStatus,
        question: Option<&str>,
        answer: Option<&str>,
        reviewer: &str,
    ) -> Result<bool> {
        let question = question.map(|q| self.seal(q)).transpose()?;
        let answer = answer.map(|a| self.seal(a)).transpose()?;
        let edited = question.is_some() || answer.is_some();
        let n = self.conn().execute(
            "UPDATE finetune_pair SET status = ?3, question = coalesce(?4, question), answer = coalesce(?5, answer),
                    edited = edited OR ?6, reviewer = ?7, reviewed_at = ?8
             WHERE id = ?2 AND chunk_id IN (SELECT c.id FROM chunk c JOIN document d ON d.id = c.doc_id WHERE d.kb = ?1)",
            params![kb, id, status.as_str(), question, answer, edited, reviewer, now()],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewDocument;
    use zhiku_core::Chunk;

    fn store_with_document(kb: &str, source: &str, texts: &[&str]) -> (Store, Vec<u64>) {
        let store = Store::open_in_memory().unwrap();
        let chunks: Vec<(Chunk, Vec<f32>)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let chunk =
                    Chunk { ordinal: i as u32, heading_path: vec![], text: t.to_string(), char_start: 0, char_end: t.len(), page: None };
                (chunk, vec![1.0, 0.0])
            })
            .collect();
        let acl = [Principal::parse("group:staff").unwrap()];
        let doc = NewDocument {
            source,
            content_hash: "h",
            title: None,
            format: "text",
            language: "en",
            minhash: None,
            acl: &acl,
            own_acl: true,
            chunks: &chunks,
            partial: false,
        };
        store.ensure_kb(kb, &[]).unwrap();
        store.upsert_document(kb, &doc).unwrap();
        let ids = store.chunks(kb).unwrap().into_iter().map(|c| c.id).collect();
        (store, ids)
    }

    #[test]
    fn pairs_follow_their_chunk_and_record_each_review() {
        let (store, chunk_ids) = store_with_document("hr", "leave.md", &["Leave carries over for five days."]);
        let chunk = chunk_ids[0];
        let id = store
            .record_finetune_attempt(chunk, "smollm2", "kept", Some(("How much leave carries over?", "Five days.")))
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(store.record_finetune_attempt(chunk, "other", "ungrounded", None).unwrap(), Some(None));
        assert_eq!(store.finetune_attempted("hr", "smollm2").unwrap(), HashSet::from([chunk]));
        assert!(store.finetune_attempted("hr", "third").unwrap().is_empty());

        let pairs = store.finetune_pairs("hr").unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].source.as_str(), pairs[0].status), ("leave.md", PairStatus::Pending));

        assert!(store.review_finetune_pair("hr", id, PairStatus::Accepted, None, Some("Five working days."), "ann").unwrap());
        assert!(
            !store.review_finetune_pair("other-kb", id, PairStatus::Rejected, None, None, "bob").unwrap(),
            "another knowledge base's pair"
        );
        let pair = &store.finetune_pairs("hr").unwrap()[0];
        assert_eq!((pair.status, pair.edited, pair.answer.as_str()), (PairStatus::Accepted, true, "Five working days."));
        assert_eq!(pair.question, "How much leave carries over?");
        assert_eq!(pair.reviewer.as_deref(), Some("ann"));

        store.delete_document("hr", "leave.md").unwrap();
        assert!(store.finetune_pairs("hr").unwrap().is_empty());
        assert_eq!(store.record_finetune_attempt(chunk, "smollm2", "kept", Some(("q?", "a"))).unwrap(), None, "the chunk is gone");
    }
}
