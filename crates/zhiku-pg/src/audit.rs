//! The audit log in the shared database: one hash chain for every replica, worker and
//! command, with the embedded store's rules ([`zhiku_core::audit`]). Appends take a
//! transaction-scoped advisory lock, so entries from many processes chain one after another;
//! triggers refuse updates, deletes and truncation. A chain moved here from an embedded data
//! directory (`zhiku migrate`) keeps its entries, numbers and hashes, and goes on from there.

use postgres::types::ToSql;
use zhiku_core::audit::{entry_hash, hex, verify_chain, AuditFilter, AuditRecord, ChainBreak, PendingEntry, StoredEntry, GENESIS};

use crate::{Error, PgStore, Result};

/// Any fixed number, held while appending (PostgreSQL releases it with the transaction).
const AUDIT_LOCK: i64 = 0x7a68_696b_7501;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn stored(row: &postgres::Row) -> StoredEntry {
    StoredEntry {
        seq: row.get(0),
        at: row.get(1),
        actor: row.get(2),
        action: row.get(3),
        kb: row.get(4),
        detail: row.get(5),
        prev_hash: row.get(6),
        hash: row.get(7),
    }
}

impl PgStore {
    /// Appends `batch` in one transaction; returns the first entry's sequence number.
    pub fn append_audit(&mut self, batch: &[PendingEntry]) -> Result<i64> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
        let last = tx.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
        let (mut seq, mut prev): (i64, Vec<u8>) = match last {
            Some(row) => (row.get::<_, i64>(0) + 1, row.get(1)),
            None => (1, GENESIS.to_vec()),
        };
        let first = seq;
        let insert =
            tx.prepare("INSERT INTO audit (seq, at, actor, action, kb, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?;
        for entry in batch {
            let at = now_ms();
            let hash = entry_hash(&prev, seq, at, &entry.actor, &entry.action, entry.kb.as_deref(), &entry.detail).to_vec();
            tx.execute(&insert, &[&seq, &at, &entry.actor, &entry.action, &entry.kb, &entry.detail, &prev, &hash])?;
            prev = hash;
            seq += 1;
        }
        tx.commit()?;
        Ok(first)
    }

    /// Copies entries of another backend's chain that this one lacks: all of them into an
    /// empty log, else those after the last one here, provided the two chains agree on it.
    /// `Ok(Err(why))` when they have diverged (each has entries the other lacks): a chain is
    /// never spliced onto another, so nothing is copied.
    pub fn import_audit(&mut self, entries: &[StoredEntry]) -> Result<std::result::Result<usize, String>> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
        let last = tx.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
        let after = match last {
            None => 0,
            Some(row) => {
                let (seq, hash): (i64, Vec<u8>) = (row.get(0), row.get(1));
                if !entries.iter().any(|e| e.seq == seq && e.hash == hash) {
                    return Ok(Err(format!(
                        "the shared database's audit chain (at entry {seq}) and this one have diverged; nothing copied (keep `zhiku audit export` of this one)"
                    )));
                }
                seq
            }
        };
        let insert =
            tx.prepare("INSERT INTO audit (seq, at, actor, action, kb, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?;
        let mut copied = 0;
        for e in entries.iter().filter(|e| e.seq > after) {
            tx.execute(&insert, &[&e.seq, &e.at, &e.actor, &e.action, &e.kb, &e.detail, &e.prev_hash, &e.hash])?;
            copied += 1;
        }
        tx.commit()?;
        Ok(Ok(copied))
    }

    /// Entries matching the filter, oldest first.
    pub fn audit_records(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let limit = filter.latest.map(|n| n as i64);
        let params: [&(dyn ToSql + Sync); 4] = [&filter.since_ms, &filter.until_ms, &filter.user, &limit];
        let rows = self.client.query(
            "SELECT seq, at, actor, action, kb, detail, hash FROM audit
             WHERE ($1::bigint IS NULL OR at >= $1) AND ($2::bigint IS NULL OR at <= $2)
               AND ($3::text IS NULL OR actor = $3 OR actor = 'user:' || $3 OR actor LIKE '% user:' || $3)
             ORDER BY seq DESC LIMIT $4",
            &params,
        )?;
        let mut records = rows
            .iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let detail: String = r.get(5);
                let detail = serde_json::from_str(&detail).map_err(|e| Error::Corrupt(format!("audit entry {seq}: {e}")))?;
                Ok(AuditRecord {
                    seq,
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    kb: r.get(4),
                    detail,
                    hash: hex(&r.get::<_, Vec<u8>>(6)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        records.reverse();
        Ok(records)
    }

    /// Walks the whole chain, a page at a time: the number of entries and the latest hash, or
    /// the first entry where it breaks.
    pub fn verify_audit(&mut self) -> Result<std::result::Result<(i64, String), ChainBreak>> {
        const PAGE: i64 = 10_000;
        let mut after = 0i64;
        let mut pages: Vec<StoredEntry> = Vec::new();
        // Read page by page into the checker, which keeps only the previous hash.
        let mut done = false;
        let mut error: Option<Error> = None;
        let client = &mut self.client;
        let entries = std::iter::from_fn(|| loop {
            if let Some(e) = pages.pop() {
                return Some(Ok::<_, Error>(e));
            }
            if done || error.is_some() {
                return None;
            }
            match client.query(
                "SELECT seq, at, actor, action, kb, detail, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &PAGE],
            ) {
                Ok(rows) => {
                    done = (rows.len() as i64) < PAGE;
                    pages = rows.iter().map(stored).collect();
                    if let Some(last) = pages.last() {
                        after = last.seq;
                    }
                    pages.reverse();
                }
                Err(e) => error = Some(e.into()),
            }
        });
        let verdict = verify_chain(entries)?;
        match error {
            Some(e) => Err(e),
            None => Ok(verdict),
        }
    }
}
