//! The audit log: who did what, when, in which knowledge base. Append-only (triggers refuse
//! updates and deletes) and hash-chained: each entry's hash covers its fields and the previous
//! entry's hash, so changing, removing or reordering an entry — even with the triggers dropped —
//! breaks the chain at that entry, which [`Store::verify_audit`] reports. Keeping the latest
//! hash somewhere else (it is printed by `zhiku audit verify`) also detects a cut-off tail.

use crate::CachedRow;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::{Error, Result, Store};

use zhiku_core::audit::{entry_hash, hex, verify_chain, PendingEntry, StoredEntry, GENESIS};
pub use zhiku_core::audit::{AuditEvent, AuditFilter, AuditRecord, ChainBreak};

fn stored_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    Ok(StoredEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        kb: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Appends an entry; returns its sequence number. Durable when it returns. Entries
    /// appended at the same moment from several threads (every search writes one) share one
    /// transaction: whoever finds no write in progress commits everything queued so far, its
    /// own entry among them, and the others wait for that commit. One commit per entry made
    /// the audit log a fifth of a busy server's search time.
    pub fn audit(&self, event: &AuditEvent<'_>) -> Result<i64> {
        self.audit_queue
            .append(PendingEntry::from_event(event), |batch| self.append_audit(batch).map_err(|e| e.to_string()))
            .map_err(Error::Shared)
    }

    /// Appends `batch` in one transaction; returns the first one's sequence number.
    fn append_audit(&self, batch: &[PendingEntry]) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> =
            tx.cached_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let (mut seq, mut prev) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_vec()),
        };
        let first = seq;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (seq, at, actor, action, kb, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for entry in batch {
                let at = now_ms();
                let hash = entry_hash(&prev, seq, at, &entry.actor, &entry.action, entry.kb.as_deref(), &entry.detail);
                insert.execute(params![seq, at, entry.actor, entry.action, entry.kb, entry.detail, prev, hash.as_slice()])?;
                prev = hash.to_vec();
                seq += 1;
            }
        }
        tx.commit()?;
        Ok(first)
    }

    /// Entries matching the filter, oldest first.
    pub fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, at, actor, action, kb, detail, hash FROM audit
             WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at <= ?2)
               AND (?3 IS NULL OR actor = ?3 OR actor = 'user:' || ?3 OR actor LIKE '% user:' || ?3)
             ORDER BY seq DESC LIMIT ?4",
        )?;
        let limit = filter.latest.map_or(-1, |n| n as i64);
        let rows = stmt.query_map(params![filter.since_ms, filter.until_ms, filter.user, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?, r.get::<_, Vec<u8>>(6)?))
        })?;
        let mut records = rows
            .map(|row| {
                let (seq, at, actor, action, kb, detail, hash) = row?;
                let detail = serde_json::from_str(&detail).map_err(|e| Error::Corrupt(format!("audit entry {seq}: {e}")))?;
                Ok(AuditRecord { seq, at, actor, action, kb, detail, hash: hex(&hash) })
            })
            .collect::<Result<Vec<_>>>()?;
        records.reverse();
        Ok(records)
    }

    /// Walks the whole chain. `Ok` with the number of entries and the latest hash (hex; empty
    /// when the log is empty), or the first entry where it breaks.
    pub fn verify_audit(&self) -> Result<std::result::Result<(i64, String), ChainBreak>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT seq, at, actor, action, kb, detail, prev_hash, hash FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], stored_entry)?;
        Ok(verify_chain(rows)?)
    }

    /// Every entry as stored, oldest first, for moving the chain to another backend.
    pub fn audit_entries(&self) -> Result<Vec<StoredEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT seq, at, actor, action, kb, detail, prev_hash, hash FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], stored_entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(actor: &'a str, action: &'a str) -> AuditEvent<'a> {
        AuditEvent { actor, action, kb: Some("kb"), detail: serde_json::json!({"documents": [1, 2]}) }
    }

    /// Entries from many threads at once (committed together) each get their own sequence
    /// number, pointing at their own entry, and the chain holds.
    #[test]
    fn concurrent_entries_are_each_recorded_once_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("zhiku.db")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let actor = format!("user:t{t}");
                            let seq = store
                                .audit(&AuditEvent { actor: &actor, action: "search", kb: None, detail: serde_json::json!({ "i": i }) })
                                .unwrap();
                            (seq, actor, i)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let written: Vec<(i64, String, i64)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let records = store.audit_records(&AuditFilter::default()).unwrap();
        assert_eq!(records.len(), 400);
        for (seq, actor, i) in written {
            let record = records.iter().find(|r| r.seq == seq).unwrap();
            assert_eq!((record.actor.as_str(), record.detail["i"].as_i64()), (actor.as_str(), Some(i)));
        }
        assert_eq!(store.verify_audit().unwrap().map(|(n, _)| n).ok(), Some(400));
    }

    #[test]
    fn the_chain_verifies_and_refuses_edits() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.verify_audit().unwrap(), Ok((0, String::new())));
        for i in 0..5 {
            assert_eq!(s.audit(&event("user:alice", if i % 2 == 0 { "ask" } else { "search" })).unwrap(), i + 1);
        }
        s.audit(&event("key:abc user:bob", "document.delete")).unwrap();
        let (n, head) = s.verify_audit().unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(head, s.audit_records(&AuditFilter::default()).unwrap()[5].hash);
        let bob = s.audit_records(&AuditFilter { user: Some("bob".into()), ..Default::default() }).unwrap();
        assert_eq!(bob.iter().map(|r| r.seq).collect::<Vec<_>>(), [6]);
        let alice = s.audit_records(&AuditFilter { user: Some("alice".into()), ..Default::default() }).unwrap();
        assert_eq!(alice.len(), 5);
        let latest = s.audit_records(&AuditFilter { latest: Some(2), ..Default::default() }).unwrap();
        assert_eq!(latest.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6]);
        let future = s.audit_records(&AuditFilter { since_ms: Some(now_ms() + 60_000), ..Default::default() }).unwrap();
        assert!(future.is_empty());

        let conn = s.conn();
        assert!(conn.execute("UPDATE audit SET actor = 'user:mallory' WHERE seq = 3", []).is_err());
        assert!(conn.execute("DELETE FROM audit WHERE seq = 6", []).is_err());
        drop(conn);
        assert!(s.verify_audit().unwrap().is_ok());
    }

    #[test]
    fn tampering_without_the_triggers_is_found_at_the_entry() {
        for (tamper, seq) in [
            ("UPDATE audit SET detail = '{\"documents\":[1]}' WHERE seq = 3", 3),
            ("DELETE FROM audit WHERE seq = 2", 3),
            ("UPDATE audit SET at = at + 1 WHERE seq = 4", 4),
            ("DELETE FROM audit WHERE seq = 1", 2),
        ] {
            let s = Store::open_in_memory().unwrap();
            for _ in 0..5 {
                s.audit(&event("user:alice", "ask")).unwrap();
            }
            let conn = s.conn();
            conn.execute_batch("DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete;").unwrap();
            conn.execute(tamper, []).unwrap();
            drop(conn);
            let found = s.verify_audit().unwrap().expect_err(tamper);
            assert_eq!(found.seq, seq, "{tamper}: {found:?}");
        }
    }
}
