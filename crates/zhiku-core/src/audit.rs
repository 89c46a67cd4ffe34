//! The audit chain's rules, shared by both backends (the embedded store and PostgreSQL): what
//! an entry is, how its hash chains it to the entry before, and how a chain is checked. Each
//! entry's hash covers its fields and the previous entry's hash, so changing, removing or
//! reordering an entry breaks the chain at that entry; the chain moves between backends
//! (`zhiku migrate`) entry for entry and still verifies.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One thing to record. `detail` holds the action's specifics (document ids, counts, a hash of
/// an answer); never secrets.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// Who: `user:<name>`, `key:<id>` with its user, `cli:<os user>`, or `anonymous`.
    pub actor: &'a str,
    /// What, dotted: `auth.failed`, `key.create`, `kb.role`, `document.delete`, `ask`, ...
    pub action: &'a str,
    pub kb: Option<&'a str>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub kb: Option<String>,
    pub detail: serde_json::Value,
    /// Hex SHA-256 chaining this entry to the one before.
    pub hash: String,
}

/// Which entries to export; every bound is optional and inclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Entries whose actor is this, or names this user (`user:alice`, `key:… user:alice`).
    pub user: Option<String>,
    /// Only the latest this many of those.
    pub latest: Option<usize>,
}

/// Where the chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// An entry as stored: its fields, the hash it claims to follow and its own hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub kb: Option<String>,
    /// The detail as the JSON text that was hashed.
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Length-prefixed fields, so that no two different entries hash the same bytes.
pub fn entry_hash(prev: &[u8], seq: i64, at: i64, actor: &str, action: &str, kb: Option<&str>, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_le_bytes());
    h.update(at.to_le_bytes());
    for field in [Some(actor), Some(action), kb, Some(detail)] {
        match field {
            Some(f) => {
                h.update([1u8]);
                h.update((f.len() as u64).to_le_bytes());
                h.update(f.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

/// Checks a whole chain, oldest first: `Ok` with the number of entries and the latest hash
/// (hex; empty for an empty chain), or the first entry where it breaks. Rows come from the
/// backend as they are read, so the chain is never held in memory at once.
pub fn verify_chain<E>(entries: impl IntoIterator<Item = Result<StoredEntry, E>>) -> Result<Result<(i64, String), ChainBreak>, E> {
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_vec();
    for entry in entries {
        let e = entry?;
        let broken = |reason: String| Ok(Err(ChainBreak { seq: e.seq, reason }));
        if e.seq != expected_seq {
            return broken(format!("entries {expected_seq}..{} are missing", e.seq - 1));
        }
        if e.prev_hash != prev {
            return broken("it does not follow the entry before it (previous hash differs)".into());
        }
        if entry_hash(&prev, e.seq, e.at, &e.actor, &e.action, e.kb.as_deref(), &e.detail).as_slice() != e.hash.as_slice() {
            return broken("its content was changed after it was written (hash differs)".into());
        }
        prev = e.hash;
        expected_seq += 1;
    }
    let head = if expected_seq == 1 { String::new() } else { hex(&prev) };
    Ok(Ok((expected_seq - 1, head)))
}

/// An entry waiting for its turn to be appended.
#[derive(Debug, Clone)]
pub struct PendingEntry {
    pub actor: String,
    pub action: String,
    pub kb: Option<String>,
    /// The detail as JSON text.
    pub detail: String,
}

impl PendingEntry {
    pub fn from_event(event: &AuditEvent<'_>) -> Self {
        Self {
            actor: event.actor.to_string(),
            action: event.action.to_string(),
            kb: event.kb.map(str::to_string),
            detail: event.detail.to_string(),
        }
    }
}

/// Group commit for a chain that every search appends to: entries appended at the same moment
/// from several threads share one write. Whoever finds no write in progress writes everything
/// queued so far, its own entry among them, and the others wait for that write. One write per
/// entry made the audit log a fifth of a busy server's search time.
#[derive(Default)]
pub struct GroupCommit {
    state: std::sync::Mutex<GroupState>,
    written: std::sync::Condvar,
}

#[derive(Default)]
struct GroupState {
    writing: bool,
    next_ticket: u64,
    pending: Vec<(u64, PendingEntry)>,
    done: std::collections::HashMap<u64, Result<i64, String>>,
}

impl GroupCommit {
    /// Queues `entry` and returns its sequence number once written. `write` appends a batch
    /// in one go and returns the first entry's sequence number (the rest follow in order).
    pub fn append(&self, entry: PendingEntry, write: impl Fn(&[PendingEntry]) -> Result<i64, String>) -> Result<i64, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.pending.push((ticket, entry));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.writing {
                state = self.written.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.writing = true;
            let (tickets, batch): (Vec<u64>, Vec<PendingEntry>) = std::mem::take(&mut state.pending).into_iter().unzip();
            drop(state);
            let written = write(&batch);
            state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for (i, t) in tickets.into_iter().enumerate() {
                state.done.insert(t, written.as_ref().map(|first| first + i as i64).map_err(Clone::clone));
            }
            state.writing = false;
            self.written.notify_all();
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<StoredEntry> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let detail = format!("{{\"n\":{seq}}}");
                let hash = entry_hash(&prev, seq, 1000 + seq, "user:ann", "search", Some("hr"), &detail).to_vec();
                let e = StoredEntry {
                    seq,
                    at: 1000 + seq,
                    actor: "user:ann".into(),
                    action: "search".into(),
                    kb: Some("hr".into()),
                    detail,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: Vec<StoredEntry>) -> Result<(i64, String), ChainBreak> {
        verify_chain(entries.into_iter().map(Ok::<_, ()>)).unwrap()
    }

    #[test]
    fn entries_appended_at_once_share_writes_and_keep_their_order() {
        let group = std::sync::Arc::new(GroupCommit::default());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (group, log, writes) = (group.clone(), log.clone(), writes.clone());
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let entry = PendingEntry { actor: format!("{t}/{i}"), action: "search".into(), kb: None, detail: "{}".into() };
                            let seq = group
                                .append(entry, |batch| {
                                    writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    let mut log = log.lock().unwrap();
                                    let first = log.len() as i64 + 1;
                                    log.extend(batch.iter().map(|e| e.actor.clone()));
                                    Ok(first)
                                })
                                .unwrap();
                            (seq, format!("{t}/{i}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let log_after: Vec<(i64, String)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 400);
        for (seq, actor) in &log_after {
            assert_eq!(&log[*seq as usize - 1], actor, "an entry's number points at itself");
        }
        assert!(writes.load(std::sync::atomic::Ordering::Relaxed) <= 400);
        let failed =
            GroupCommit::default().append(PendingEntry { actor: "a".into(), action: "b".into(), kb: None, detail: "{}".into() }, |_| {
                Err("disk full".to_string())
            });
        assert_eq!(failed, Err("disk full".to_string()));
    }

    #[test]
    fn a_chain_holds_until_an_entry_is_changed_removed_or_moved() {
        let whole = chain(5);
        let (count, head) = verify(whole.clone()).unwrap();
        assert_eq!((count, head), (5, hex(&whole[4].hash)));
        assert_eq!(verify(Vec::new()), Ok((0, String::new())));

        let mut changed = whole.clone();
        changed[2].detail = "{\"n\":99}".into();
        assert_eq!(verify(changed).unwrap_err().seq, 3);
        let mut removed = whole.clone();
        removed.remove(1);
        assert!(verify(removed).unwrap_err().reason.contains("missing"));
        let mut swapped = whole.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(swapped).unwrap_err().seq, 3);
        // Renumbered to hide a removal: the next entry no longer follows.
        let mut renumbered = whole;
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
        }
        assert_eq!(verify(renumbered).unwrap_err().seq, 2);
    }
}
