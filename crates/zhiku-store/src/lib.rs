//! zhiku-store: the embedded system of record (SQLite, one file under the data directory).
//!
//! It owns knowledge bases, documents (source, content hash, ACL), their chunks with embeddings,
//! the knowledge graph's entities and each chunk's contributions to it, users, (nested) groups
//! and knowledge-base roles, API keys (hashed), the hash-chained audit log and stored exchanges
//! with their feedback. Everything else — the vector index, the BM25 index — is derived from it
//! and can be rebuilt from it: each knowledge base carries a *generation* that every write
//! bumps inside the same transaction, and derived indexes remember the generation they reflect.
//!
//! Main types: [`Store`] (the connection), [`NewDocument`] (what ingestion writes),
//! [`StoredChunk`] (what retrieval reads), [`Upsert`] (what a write did).
//!
//! ```
//! use zhiku_core::{Chunk, DuplicatePolicy, PiiPolicy, Principal};
//! use zhiku_store::{NewDocument, Store, Upsert};
//!
//! let store = Store::open_in_memory().unwrap();
//! store.ensure_kb("docs", &[]).unwrap();
//! let chunk = Chunk { ordinal: 0, heading_path: vec![], text: "hello".into(), char_start: 0, char_end: 5, page: None };
//! let doc = NewDocument {
//!     source: "a.txt", content_hash: "h1", title: None, format: "text", language: "en", minhash: None,
//!     acl: &[Principal::parse("group:staff").unwrap()], own_acl: true,
//!     chunks: &[(chunk, vec![1.0, 0.0])], partial: false,
//! };
//! assert!(matches!(store.upsert_document("docs", &doc).unwrap(), Upsert::Inserted { .. }));
//! assert!(matches!(store.upsert_document("docs", &doc).unwrap(), Upsert::Unchanged));
//! assert_eq!(store.chunks("docs").unwrap().len(), 1);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
pub use zhiku_core::StoredChunk;
use zhiku_core::{Chunk, DuplicatePolicy, PiiPolicy, Principal};

mod access;
mod api_keys;
mod audit;
mod conversations;
mod finetune;
mod graph;
mod models;
mod sealed;
mod sessions;
pub use access::{AclChange, UserInfo};
pub use api_keys::{ApiKey, ApiKeyInfo, Scope};
pub use audit::{AuditEvent, AuditFilter, AuditRecord, ChainBreak};
pub use conversations::{ConversationSummary, Exchange, NewExchange};
pub use finetune::{PairStatus, StoredPair};
pub use graph::{AttributeRow, EdgeRow, GraphCounts, GraphEntity, PendingDocument, Supported};
pub use models::{AdapterRef, NewAdapter, RegisteredAdapter, RegisteredModel, RemoteModel};
pub use sealed::StoreKey;
pub use sessions::Session;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("knowledge base '{0}' does not exist; ingest into it first")]
    UnknownKb(String),
    #[error("invalid knowledge base name '{0}': use letters, digits, '_' and '-' (at most 64)")]
    InvalidKbName(String),
    #[error("corrupt record in the store: {0}")]
    Corrupt(String),
    #[error("invalid {what} '{value}': {rule}")]
    Invalid { what: &'static str, value: String, rule: &'static str },
    #[error("{what} is in use by {users}: {hint}")]
    InUse { what: String, users: String, hint: &'static str },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// An error of a write made together with others (the audit log's shared commits).
    #[error("store error: {0}")]
    Shared(String),
    #[error("cannot start a thread of the store: {0}")]
    Thread(std::io::Error),
    #[error(
        "this data directory was written by a newer zhiku (store format {found}); this one reads up to format {supported}: upgrade zhiku"
    )]
    TooNew { found: i64, supported: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What ingestion writes for one file.
pub struct NewDocument<'a> {
    pub source: &'a str,
    pub content_hash: &'a str,
    pub title: Option<&'a str>,
    pub format: &'a str,
    pub language: &'a str,
    /// Near-duplicate signature (opaque bytes) and its LSH bucket keys, one per band.
    pub minhash: Option<(&'a [u8], &'a [u64])>,
    pub acl: &'a [Principal],
    /// `acl` was given for this file (ingest `--acl`). Otherwise it is the knowledge base's
    /// inherited ACL, and a stored document with an ACL of its own keeps that one.
    pub own_acl: bool,
    pub chunks: &'a [(Chunk, Vec<f32>)],
    /// More chunks are to come ([`Store::append_chunks`]) before [`Store::complete_document`].
    /// Until then the document is stored under a content hash that matches no file, so a run
    /// cut short in between ingests the file again instead of taking it as unchanged.
    pub partial: bool,
}

/// The content hash a document is stored under while its chunks are still arriving.
fn partial_hash(content_hash: &str) -> String {
    format!("partial:{content_hash}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upsert {
    /// `acl`: the ACL the document was stored with (its own one may have been kept).
    Inserted {
        doc_id: i64,
        chunk_ids: Vec<u64>,
        acl: Vec<Principal>,
    },
    Replaced {
        doc_id: i64,
        old_doc_id: i64,
        chunk_ids: Vec<u64>,
        acl: Vec<Principal>,
    },
    /// Same content and ACL as stored: nothing was written.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInfo {
    pub id: i64,
    pub source: String,
    pub content_hash: String,
    pub language: String,
    pub acl: Vec<Principal>,
    /// The ACL follows the knowledge base's roles (false: set for this document).
    pub acl_inherited: bool,
    pub chunks: usize,
    /// Stored a section at a time and not finished yet (an ingest was cut short in between).
    pub partial: bool,
    pub title: Option<String>,
    /// The parser's format name (`html`, `pdf`, ...).
    pub format: String,
}

/// The SQLite-backed store. One writer at a time; SQLite's WAL lets readers proceed.
pub struct Store {
    conn: Mutex<Connection>,
    audit_queue: zhiku_core::audit::GroupCommit,
    /// With an encryption key: seals document text on the way in, opens it on the way out.
    sealer: Option<sealed::Sealer>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kb (
    name TEXT PRIMARY KEY,
    default_acl TEXT NOT NULL,
    pii_policy TEXT NOT NULL DEFAULT 'keep',
    duplicates TEXT NOT NULL DEFAULT 'skip',
    vector_index TEXT NOT NULL DEFAULT '',
    log_questions INTEGER NOT NULL DEFAULT 1,
    mask_answers INTEGER NOT NULL DEFAULT 1,
    answer_cache INTEGER NOT NULL DEFAULT 0,
    adapter TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    embedding_model TEXT NOT NULL DEFAULT 'minilm',
    generation INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS document (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kb TEXT NOT NULL REFERENCES kb(name) ON DELETE CASCADE,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title TEXT,
    format TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'und',
    minhash BLOB,
    acl TEXT NOT NULL,
    acl_inherited INTEGER NOT NULL DEFAULT 0,
    ingested_at INTEGER NOT NULL,
    UNIQUE (kb, source)
);
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading_path TEXT NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_doc ON chunk(doc_id);
CREATE INDEX IF NOT EXISTS document_hash ON document(kb, content_hash);
CREATE TABLE IF NOT EXISTS minhash_band (
    doc_id INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
    band INTEGER NOT NULL,
    bucket INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS minhash_band_bucket ON minhash_band(band, bucket);
CREATE INDEX IF NOT EXISTS minhash_band_doc ON minhash_band(doc_id);
CREATE TABLE IF NOT EXISTS group_member (
    group_name TEXT NOT NULL,
    user_name TEXT NOT NULL,
    PRIMARY KEY (group_name, user_name)
);
CREATE TABLE IF NOT EXISTS group_nesting (
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (parent, child)
);
CREATE TABLE IF NOT EXISTS account (
    name TEXT PRIMARY KEY,
    password_hash TEXT,
    admin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    origin TEXT NOT NULL DEFAULT 'local',
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_role (
    kb TEXT NOT NULL REFERENCES kb(name) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (kb, principal)
);
CREATE TABLE IF NOT EXISTS exchange (
    completion_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    kb TEXT,
    model TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    rating INTEGER,
    correction TEXT,
    rated_at INTEGER
);
CREATE INDEX IF NOT EXISTS exchange_conversation ON exchange(user_name, conversation_id);
CREATE TABLE IF NOT EXISTS model (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    architecture TEXT NOT NULL,
    quantization TEXT,
    parameters INTEGER NOT NULL,
    context_length INTEGER,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    url TEXT,
    remote_model TEXT,
    api_key_env TEXT
);
CREATE TABLE IF NOT EXISTS adapter (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    base_path TEXT NOT NULL,
    kb TEXT,
    rank INTEGER NOT NULL,
    alpha REAL NOT NULL,
    eval_loss_before REAL,
    eval_loss_after REAL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_session (
    token_hash BLOB PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_session_user ON web_session(user_name);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    kb TEXT,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS api_key (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_name TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    scopes TEXT NOT NULL DEFAULT 'read,write',
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
"#;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn validate_kb_name(name: &str) -> Result<()> {
    if zhiku_core::is_valid_kb_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidKbName(name.to_string()))
    }
}

fn acl_to_json(acl: &[Principal]) -> String {
    let mut sorted: Vec<&str> = acl.iter().map(Principal::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "[]".into())
}

/// The ACL (as stored JSON) a document is written with, and whether it is the inherited one:
/// an ACL given for the file wins; otherwise a stored document keeps an ACL of its own.
fn effective_acl(given: &[Principal], own: bool, stored: Option<(&str, bool)>) -> (String, bool) {
    match stored {
        Some((acl, false)) if !own => (acl.to_string(), false),
        _ => (acl_to_json(given), !own),
    }
}

fn acl_from_json(json: &str) -> Result<Vec<Principal>> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("ACL {json:?}: {e}")))
}

fn insert_chunks(
    tx: &rusqlite::Transaction<'_>,
    sealer: Option<&sealed::Sealer>,
    doc_id: i64,
    chunks: &[(Chunk, Vec<f32>)],
) -> Result<Vec<u64>> {
    let seal = |text: String| -> Result<String> {
        match sealer {
            Some(s) => s.seal(&text),
            None => Ok(text),
        }
    };
    let mut insert = tx.prepare_cached(
        "INSERT INTO chunk (doc_id, ordinal, heading_path, text, char_start, char_end, page, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut ids = Vec::with_capacity(chunks.len());
    for (chunk, embedding) in chunks {
        let path = seal(serde_json::to_string(&chunk.heading_path).map_err(|e| Error::Corrupt(e.to_string()))?)?;
        let text = seal(chunk.text.clone())?;
        insert.execute(params![
            doc_id,
            chunk.ordinal,
            path,
            text,
            chunk.char_start as i64,
            chunk.char_end as i64,
            chunk.page,
            embedding_to_blob(embedding)
        ])?;
        ids.push(tx.last_insert_rowid() as u64);
    }
    Ok(ids)
}

fn embedding_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_embedding(b: &[u8]) -> Result<Vec<f32>> {
    if b.len() % 4 != 0 {
        return Err(Error::Corrupt(format!("embedding blob of {} bytes", b.len())));
    }
    Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// The store's on-disk format, kept in SQLite's `user_version`. 0 is every store written before
/// the format was numbered (back to the first release); [`migrate`] brings those up to date. A
/// store of a newer format is refused: an older binary must not write into it.
pub const FORMAT_VERSION: i64 = 1;

/// Columns added since the first released format, each with the default that older versions
/// behaved as.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("kb", "pii_policy", "TEXT NOT NULL DEFAULT 'keep'"),
    ("kb", "duplicates", "TEXT NOT NULL DEFAULT 'skip'"),
    ("kb", "vector_index", "TEXT NOT NULL DEFAULT ''"),
    ("kb", "log_questions", "INTEGER NOT NULL DEFAULT 1"),
    ("kb", "mask_answers", "INTEGER NOT NULL DEFAULT 1"),
    ("kb", "answer_cache", "INTEGER NOT NULL DEFAULT 0"),
    ("kb", "adapter", "TEXT NOT NULL DEFAULT ''"),
    ("kb", "model", "TEXT NOT NULL DEFAULT ''"),
    ("model", "url", "TEXT"),
    ("model", "remote_model", "TEXT"),
    ("model", "api_key_env", "TEXT"),
    // Every knowledge base before the choice was embedded with MiniLM.
    ("kb", "embedding_model", "TEXT NOT NULL DEFAULT 'minilm'"),
    ("document", "language", "TEXT NOT NULL DEFAULT 'und'"),
    ("document", "minhash", "BLOB"),
    // Earlier versions copied the default ACL into each document: they count as their own.
    ("document", "acl_inherited", "INTEGER NOT NULL DEFAULT 0"),
    ("chunk", "page", "INTEGER"),
    ("api_key", "admin", "INTEGER NOT NULL DEFAULT 0"),
    ("api_key", "scopes", "TEXT NOT NULL DEFAULT 'read,write'"),
    ("api_key", "expires_at", "INTEGER"),
];

/// Brings a store written by an earlier version up to [`FORMAT_VERSION`]. Each step is
/// idempotent, and the whole runs in one transaction.
fn migrate(conn: &Connection) -> Result<()> {
    let has_column = |table: &str, column: &str| -> Result<bool> {
        let mut stmt = conn.prepare_cached(&format!("PRAGMA table_info({table})"))?;
        let names: Vec<String> = stmt.query_map([], |r| r.get::<_, String>(1))?.collect::<rusqlite::Result<_>>()?;
        Ok(names.iter().any(|n| n == column))
    };
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let steps = || -> Result<()> {
        for (table, column, definition) in ADDED_COLUMNS {
            if !has_column(table, column)? {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))?;
                if (*table, *column) == ("api_key", "scopes") {
                    // Keys made with --admin before scopes existed stay administrators' keys.
                    conn.execute_batch("UPDATE api_key SET scopes = 'read,write,admin' WHERE admin = 1")?;
                }
            }
        }
        access::migrate_default_acls(conn)?;
        conn.execute_batch(&format!("PRAGMA user_version = {FORMAT_VERSION}"))?;
        Ok(())
    };
    match steps() {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_key(path, None)
    }

    /// Opens the store, encrypting document text with `key` ([`StoreKey`]). A store that was
    /// encrypted cannot be opened without its key, nor with another.
    pub fn open_with_key(path: &Path, key: Option<&StoreKey>) -> Result<Self> {
        let conn = Connection::open(path).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        Self::init(conn, key).map_err(|e| match e {
            Error::Sqlite(source) => Error::Open { path: path.to_path_buf(), source },
            other => other,
        })
    }

    /// For a long-running process (the server): moves SQLite's WAL checkpoints off the
    /// committing requests. By default the commit that fills the log to 1,000 pages copies it
    /// into the database and syncs it, holding up every request queued behind the store's
    /// lock meanwhile (a p99 of 140 ms where the median is 25 under a search load that audits
    /// each search). Here a thread with its own connection checkpoints every `every` instead,
    /// without blocking readers or writers (SQLite's PASSIVE mode). Under steady writes a
    /// passive checkpoint may never find the log wholly copied, and only then can the log
    /// start over; so once the log passes `truncate_above` bytes the thread waits for the
    /// writer, copies the rest and empties it (TRUNCATE mode): one short pause instead of an
    /// ever-growing file. The thread ends with the process. A store in memory has no log.
    pub fn checkpoint_in_background(&self, every: std::time::Duration, truncate_above: u64) -> Result<()> {
        let conn = self.conn();
        let Some(path) = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) else { return Ok(()) };
        let checkpointer = Connection::open(&path).map_err(|source| Error::Open { path: path.clone(), source })?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        std::thread::Builder::new()
            .name("zhiku-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > truncate_above);
                let mode = if big { "PRAGMA wal_checkpoint(TRUNCATE)" } else { "PRAGMA wal_checkpoint(PASSIVE)" };
                if let Err(e) = checkpointer.query_row(mode, [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                }
            })
            .map_err(Error::Thread)?;
        Ok(())
    }

    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// A value to store, sealed when the store is encrypted.
    fn seal(&self, text: &str) -> Result<String> {
        match &self.sealer {
            Some(s) => s.seal(text),
            None => Ok(text.to_string()),
        }
    }

    /// A value as stored, opened when sealed.
    fn unseal(&self, stored: String) -> Result<String> {
        match &self.sealer {
            Some(s) => s.open(&stored),
            None if sealed::is_sealed(&stored) => Err(Error::Corrupt("document text is encrypted and no key was given".into())),
            None => Ok(stored),
        }
    }

    fn init(conn: Connection, key: Option<&StoreKey>) -> Result<Self> {
        // Room for every statement a request runs (key, roles, knowledge base, chunks, audit).
        conn.set_prepared_statement_cache_capacity(128);
        // WAL + synchronous=NORMAL: a committed transaction survives a process kill; the busy
        // timeout lets a second zhiku process wait for the writer instead of failing.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Checked before anything is written into it.
        let found: i64 = conn.cached_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > FORMAT_VERSION {
            return Err(Error::TooNew { found, supported: FORMAT_VERSION });
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(graph::GRAPH_SCHEMA)?;
        conn.execute_batch(finetune::FINETUNE_SCHEMA)?;
        migrate(&conn)?;
        let check: Option<String> =
            conn.cached_row("SELECT value FROM store_meta WHERE key = 'encryption_check'", [], |r| r.get(0)).optional()?;
        let sealer = key.map(sealed::Sealer::new);
        match (&sealer, check) {
            (None, Some(_)) => {
                return Err(Error::Invalid {
                    what: "store",
                    value: "encrypted".into(),
                    rule: "its document text is encrypted: set store.encryption_key_file to its key file",
                })
            }
            (Some(s), Some(check)) if !s.verifies(&check) => {
                return Err(Error::Invalid {
                    what: "encryption key",
                    value: "(hidden)".into(),
                    rule: "it is not the key this store was encrypted with",
                })
            }
            (Some(s), None) => {
                conn.execute("INSERT INTO store_meta (key, value) VALUES ('encryption_check', ?1)", params![s.check_value()?])?;
            }
            _ => {}
        }
        Ok(Self { conn: Mutex::new(conn), audit_queue: Default::default(), sealer })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the knowledge base if it does not exist. Returns true when it was created.
    /// `viewers` get the viewer role on a knowledge base created here.
    pub fn ensure_kb(&self, name: &str, viewers: &[Principal]) -> Result<bool> {
        validate_kb_name(name)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("INSERT OR IGNORE INTO kb (name, default_acl, created_at) VALUES (?1, '[]', ?2)", params![name, now()])?;
        if n == 1 {
            for p in viewers {
                tx.execute("INSERT OR IGNORE INTO kb_role (kb, principal, role) VALUES (?1, ?2, 'viewer')", params![name, p.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Runs `sql` (`?1` the knowledge base, `?2` the value); an unknown name is an error.
    fn update_kb(&self, name: &str, sql: &'static str, value: &str) -> Result<()> {
        if self.conn().execute(sql, params![name, value])? == 0 {
            return Err(Error::UnknownKb(name.to_string()));
        }
        Ok(())
    }

    /// One text setting of a knowledge base, by `sql` (`?1` the knowledge base).
    fn kb_text(&self, name: &str, sql: &'static str) -> Result<String> {
        let value: Option<String> = self.conn().cached_row(sql, params![name], |r| r.get(0)).optional()?;
        value.ok_or_else(|| Error::UnknownKb(name.to_string()))
    }

    /// The knowledge base's duplicate policy: `skip` or `keep`.
    pub fn kb_duplicate_policy(&self, name: &str) -> Result<DuplicatePolicy> {
        self.kb_text(name, "SELECT duplicates FROM kb WHERE name = ?1")?.parse().map_err(Error::Corrupt)
    }

    pub fn set_kb_duplicate_policy(&self, name: &str, policy: DuplicatePolicy) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET duplicates = ?2 WHERE name = ?1", policy.as_str())
    }

    /// The knowledge base's PII policy: `keep`, `mask` or `drop-chunk`.
    pub fn kb_pii_policy(&self, name: &str) -> Result<PiiPolicy> {
        self.kb_text(name, "SELECT pii_policy FROM kb WHERE name = ?1")?.parse().map_err(Error::Corrupt)
    }

    pub fn set_kb_pii_policy(&self, name: &str, policy: PiiPolicy) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET pii_policy = ?2 WHERE name = ?1", policy.as_str())
    }

    /// The vector index the knowledge base asked for (`auto`, `flat`, `hnsw`), or `None` to
    /// follow the configuration.
    pub fn kb_vector_index(&self, name: &str) -> Result<Option<String>> {
        let value = self.kb_text(name, "SELECT vector_index FROM kb WHERE name = ?1")?;
        Ok(Some(value).filter(|v| !v.is_empty()))
    }

    pub fn set_kb_vector_index(&self, name: &str, kind: &str) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET vector_index = ?2 WHERE name = ?1", kind)
    }

    /// Whether the audit log keeps the text of questions asked of this knowledge base (otherwise
    /// only their SHA-256).
    pub fn kb_logs_questions(&self, name: &str) -> Result<bool> {
        let value: Option<bool> =
            self.conn().cached_row("SELECT log_questions FROM kb WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        value.ok_or_else(|| Error::UnknownKb(name.to_string()))
    }

    pub fn set_kb_logs_questions(&self, name: &str, keep: bool) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET log_questions = ?2 WHERE name = ?1", if keep { "1" } else { "0" })
    }

    /// Whether answers from this knowledge base have personal data and secrets masked (the
    /// default), streamed ones included.
    pub fn kb_masks_answers(&self, name: &str) -> Result<bool> {
        let value: Option<bool> =
            self.conn().cached_row("SELECT mask_answers FROM kb WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        value.ok_or_else(|| Error::UnknownKb(name.to_string()))
    }

    pub fn set_kb_masks_answers(&self, name: &str, mask: bool) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET mask_answers = ?2 WHERE name = ?1", if mask { "1" } else { "0" })
    }

    /// Whether answers from this knowledge base may be reused for nearly identical questions
    /// (off by default).
    pub fn kb_caches_answers(&self, name: &str) -> Result<bool> {
        let value: Option<bool> =
            self.conn().cached_row("SELECT answer_cache FROM kb WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        value.ok_or_else(|| Error::UnknownKb(name.to_string()))
    }

    pub fn set_kb_caches_answers(&self, name: &str, cache: bool) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET answer_cache = ?2 WHERE name = ?1", if cache { "1" } else { "0" })
    }

    /// The embedding model the knowledge base's vectors are made with.
    pub fn kb_embedding_model(&self, name: &str) -> Result<String> {
        self.kb_text(name, "SELECT embedding_model FROM kb WHERE name = ?1")
    }

    /// Names the embedding model of a knowledge base that has no vectors yet.
    pub fn set_kb_embedding_model(&self, name: &str, model: &str) -> Result<()> {
        self.update_kb(name, "UPDATE kb SET embedding_model = ?2 WHERE name = ?1", model)
    }

    /// Replaces the vectors of the knowledge base's chunks with those of another model, and
    /// names that model, in one transaction; refused unless every chunk gets a new vector (a
    /// chunk added meanwhile would keep the old model's).
    pub fn replace_embeddings(&self, kb: &str, model: &str, vectors: &[(u64, Vec<f32>)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let chunks: i64 =
            tx.cached_row("SELECT count(*) FROM chunk c JOIN document d ON d.id = c.doc_id WHERE d.kb = ?1", params![kb], |r| r.get(0))?;
        if chunks as usize != vectors.len() {
            return Err(Error::Invalid {
                what: "embeddings",
                value: kb.to_string(),
                rule: "the knowledge base changed while re-embedding; run it again",
            });
        }
        {
            let mut update =
                tx.prepare_cached("UPDATE chunk SET embedding = ?2 WHERE id = ?1 AND doc_id IN (SELECT id FROM document WHERE kb = ?3)")?;
            for (id, vector) in vectors {
                if update.execute(params![*id as i64, embedding_to_blob(vector), kb])? != 1 {
                    return Err(Error::Invalid {
                        what: "embeddings",
                        value: kb.to_string(),
                        rule: "the knowledge base changed while re-embedding; run it again",
                    });
                }
            }
        }
        if tx.execute("UPDATE kb SET embedding_model = ?2, generation = generation + 1 WHERE name = ?1", params![kb, model])? == 0 {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// The LoRA adapter answers in the knowledge base use (`name` or `name@version`), if any.
    pub fn kb_adapter(&self, name: &str) -> Result<Option<AdapterRef>> {
        let value: Option<String> =
            self.conn().cached_row("SELECT adapter FROM kb WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        let value = value.ok_or_else(|| Error::UnknownKb(name.to_string()))?;
        Ok(if value.is_empty() { None } else { value.parse().ok() })
    }

    /// Sets (or with `None` clears) the knowledge base's adapter; it must be registered.
    pub fn set_kb_adapter(&self, name: &str, adapter: Option<&AdapterRef>) -> Result<()> {
        if let Some(a) = adapter {
            if self.adapter(a)?.is_none() {
                return Err(Error::Invalid { what: "adapter", value: a.to_string(), rule: "no such adapter (zhiku finetune adapters)" });
            }
        }
        self.update_kb(name, "UPDATE kb SET adapter = ?2 WHERE name = ?1", &adapter.map(|a| a.to_string()).unwrap_or_default())
    }

    /// A consistent copy of the whole store written to `dest` (which must not exist), taken
    /// while other connections keep reading and writing (SQLite's `VACUUM INTO`).
    pub fn snapshot(&self, dest: &Path) -> Result<()> {
        let dest = dest.to_str().ok_or_else(|| Error::Invalid {
            what: "snapshot path",
            value: dest.display().to_string(),
            rule: "use a UTF-8 path",
        })?;
        self.conn().execute("VACUUM INTO ?1", params![dest])?;
        Ok(())
    }

    /// Numbers that say what a store holds: knowledge bases, documents, chunks, audit entries.
    pub fn counts(&self) -> Result<(u64, u64, u64, u64)> {
        let conn = self.conn();
        let count = |table: &str| -> Result<u64> {
            Ok(conn.cached_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((count("kb")?, count("document")?, count("chunk")?, count("audit")?))
    }

    /// Deletes a knowledge base with its documents and chunks; false when there was none.
    pub fn delete_kb(&self, name: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM kb WHERE name = ?1", params![name])? == 1)
    }

    pub fn kb_exists(&self, name: &str) -> Result<bool> {
        Ok(self.conn().cached_row("SELECT count(*) FROM kb WHERE name = ?1", params![name], |r| r.get::<_, i64>(0))? > 0)
    }

    pub fn list_kbs(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name FROM kb ORDER BY name")?;
        let names = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }

    /// The generation of a knowledge base: bumped by every write that changes its chunks.
    pub fn generation(&self, kb: &str) -> Result<u64> {
        let g: Option<i64> = self.conn().cached_row("SELECT generation FROM kb WHERE name = ?1", params![kb], |r| r.get(0)).optional()?;
        g.map(|g| g as u64).ok_or_else(|| Error::UnknownKb(kb.to_string()))
    }

    /// Documents of the knowledge base (other than `except_source`) that share at least one LSH
    /// bucket with `band_keys`, with their signatures: near-duplicate candidates.
    pub fn minhash_candidates(&self, kb: &str, band_keys: &[u64], except_source: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT d.source, d.minhash FROM minhash_band b JOIN document d ON d.id = b.doc_id
             WHERE b.band = ?1 AND b.bucket = ?2 AND d.kb = ?3 AND d.source <> ?4 AND d.minhash IS NOT NULL",
        )?;
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for (band, key) in band_keys.iter().enumerate() {
            let rows = stmt.query_map(params![band as i64, (*key >> 1) as i64, kb, except_source], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let row: (String, Vec<u8>) = row?;
                if !out.iter().any(|(s, _)| *s == row.0) {
                    out.push(row);
                }
            }
        }
        Ok(out)
    }

    /// Another document of the knowledge base with exactly this content, if any.
    pub fn source_with_hash(&self, kb: &str, content_hash: &str, except_source: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .cached_row(
                "SELECT source FROM document WHERE kb = ?1 AND content_hash = ?2 AND source <> ?3 ORDER BY source LIMIT 1",
                params![kb, content_hash, except_source],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// True when `source` is stored with this content and this ACL (in any order): ingesting it
    /// again would change nothing. The same rule `upsert_document` applies.
    /// Whether storing this content with this ACL would write nothing (see
    /// [`NewDocument::own_acl`] for `own_acl`).
    pub fn is_unchanged(&self, kb: &str, source: &str, content_hash: &str, acl: &[Principal], own_acl: bool) -> Result<bool> {
        let row: Option<(String, String, bool)> = self
            .conn()
            .cached_row("SELECT content_hash, acl, acl_inherited FROM document WHERE kb = ?1 AND source = ?2", params![kb, source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        Ok(row.is_some_and(|(hash, stored_acl, inherited)| {
            let (wanted, _) = effective_acl(acl, own_acl, Some((&stored_acl, inherited)));
            hash == content_hash && stored_acl == wanted
        }))
    }

    /// Writes a document and its chunks in one transaction, replacing an older version of the
    /// same source. Unchanged content with an unchanged ACL writes nothing.
    pub fn upsert_document(&self, kb: &str, doc: &NewDocument<'_>) -> Result<Upsert> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<(i64, String, String, bool)> = tx
            .cached_row(
                "SELECT id, content_hash, acl, acl_inherited FROM document WHERE kb = ?1 AND source = ?2",
                params![kb, doc.source],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (acl_json, inherited) = effective_acl(doc.acl, doc.own_acl, existing.as_ref().map(|e| (e.2.as_str(), e.3)));
        if let Some((_, hash, acl, _)) = &existing {
            if !doc.partial && hash == doc.content_hash && *acl == acl_json {
                return Ok(Upsert::Unchanged);
            }
        }
        let stored_hash = if doc.partial { partial_hash(doc.content_hash) } else { doc.content_hash.to_string() };
        if tx.execute("UPDATE kb SET generation = generation + 1 WHERE name = ?1", params![kb])? == 0 {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        if let Some((id, ..)) = &existing {
            tx.execute("DELETE FROM document WHERE id = ?1", params![id])?;
        }
        tx.execute(
            "INSERT INTO document (kb, source, content_hash, title, format, language, minhash, acl, acl_inherited, ingested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![kb, doc.source, stored_hash, doc.title, doc.format, doc.language, doc.minhash.map(|m| m.0), acl_json, inherited, now()],
        )?;
        let doc_id = tx.last_insert_rowid();
        if let Some((_, keys)) = doc.minhash {
            let mut insert = tx.prepare_cached("INSERT INTO minhash_band (doc_id, band, bucket) VALUES (?1, ?2, ?3)")?;
            for (band, key) in keys.iter().enumerate() {
                insert.execute(params![doc_id, band as i64, (*key >> 1) as i64])?;
            }
        }
        let chunk_ids = insert_chunks(&tx, self.sealer.as_ref(), doc_id, doc.chunks)?;
        tx.commit()?;
        let acl = acl_from_json(&acl_json)?;
        Ok(match existing {
            Some((old_doc_id, ..)) => Upsert::Replaced { doc_id, old_doc_id, chunk_ids, acl },
            None => Upsert::Inserted { doc_id, chunk_ids, acl },
        })
    }

    /// More chunks of a document written with [`NewDocument::partial`]; one transaction.
    pub fn append_chunks(&self, kb: &str, doc_id: i64, chunks: &[(Chunk, Vec<f32>)]) -> Result<Vec<u64>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("UPDATE kb SET generation = generation + 1 WHERE name = ?1", params![kb])? == 0 {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        let ids = insert_chunks(&tx, self.sealer.as_ref(), doc_id, chunks)?;
        tx.commit()?;
        Ok(ids)
    }

    /// A partial document has all its chunks: it now stands for its file's content.
    pub fn complete_document(&self, doc_id: i64, content_hash: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE document SET content_hash = ?2 WHERE id = ?1 AND content_hash = ?3",
            params![doc_id, content_hash, partial_hash(content_hash)],
        )?;
        Ok(())
    }

    /// Removes a document and its chunks. Returns its id if it existed.
    pub fn delete_document(&self, kb: &str, source: &str) -> Result<Option<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: Option<i64> =
            tx.cached_row("SELECT id FROM document WHERE kb = ?1 AND source = ?2", params![kb, source], |r| r.get(0)).optional()?;
        if let Some(id) = id {
            tx.execute("DELETE FROM document WHERE id = ?1", params![id])?;
            tx.execute("UPDATE kb SET generation = generation + 1 WHERE name = ?1", params![kb])?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Sources that start with `prefix` (the files stored from inside one container, under
    /// `container!/`), in order. A range scan on the (kb, source) index.
    pub fn sources_under(&self, kb: &str, prefix: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT source FROM document WHERE kb = ?1 AND source >= ?2 ORDER BY source")?;
        let mut out = Vec::new();
        for source in stmt.query_map(params![kb, prefix], |r| r.get::<_, String>(0))? {
            let source = source?;
            if !source.starts_with(prefix) {
                break;
            }
            out.push(source);
        }
        Ok(out)
    }

    pub fn documents(&self, kb: &str) -> Result<Vec<DocumentInfo>> {
        self.documents_where(kb, "", None)
    }

    /// One document of a knowledge base by its id.
    pub fn document(&self, kb: &str, id: i64) -> Result<Option<DocumentInfo>> {
        Ok(self.documents_where(kb, "AND d.id = ?2", Some(id))?.pop())
    }

    /// The knowledge base's documents matching `filter` (a condition on `?2` = `arg`, or none).
    fn documents_where(&self, kb: &str, filter: &'static str, arg: Option<i64>) -> Result<Vec<DocumentInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT d.id, d.source, d.content_hash, d.language, d.acl, (SELECT count(*) FROM chunk c WHERE c.doc_id = d.id), d.acl_inherited,
                    d.title, d.format
             FROM document d WHERE d.kb = ?1 {filter} ORDER BY d.source"
        ))?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
                (r.get::<_, Option<String>>(7)?, r.get::<_, String>(8)?),
            ))
        };
        let rows = match arg {
            Some(a) => stmt.query_map(params![kb, a], row)?.collect::<rusqlite::Result<Vec<_>>>()?,
            None => stmt.query_map(params![kb], row)?.collect::<rusqlite::Result<Vec<_>>>()?,
        };
        rows.into_iter()
            .map(|(id, source, content_hash, language, acl, chunks, acl_inherited, (title, format))| {
                let (content_hash, partial) = match content_hash.strip_prefix("partial:") {
                    Some(hash) => (hash.to_string(), true),
                    None => (content_hash, false),
                };
                Ok(DocumentInfo {
                    id,
                    source,
                    content_hash,
                    language,
                    acl: acl_from_json(&acl)?,
                    acl_inherited,
                    chunks: chunks as usize,
                    partial,
                    title,
                    format,
                })
            })
            .collect()
    }

    /// Every chunk of a knowledge base with its embedding, for (re)building derived indexes.
    pub fn chunks(&self, kb: &str) -> Result<Vec<StoredChunk>> {
        self.query_chunks("WHERE d.kb = ?1 ORDER BY c.id", params![kb])
    }

    /// The given chunks of a knowledge base, in no particular order; unknown ids are skipped.
    pub fn chunks_by_id(&self, kb: &str, ids: &[u64]) -> Result<Vec<StoredChunk>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.query_chunks("WHERE d.kb = ?1 AND c.id = ?2", params![kb, *id as i64])?);
        }
        Ok(out)
    }

    fn query_chunks(&self, filter: &str, params: impl rusqlite::Params) -> Result<Vec<StoredChunk>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT c.id, c.doc_id, d.source, d.acl, c.ordinal, c.heading_path, c.text, c.char_start, c.char_end, c.page, c.embedding
             FROM chunk c JOIN document d ON d.id = c.doc_id {filter}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Option<u32>>(9)?,
                r.get::<_, Vec<u8>>(10)?,
            ))
        })?;
        rows.map(|row| {
            let (id, doc_id, source, acl, ordinal, path, text, start, end, page, blob) = row?;
            let (path, text) = (self.unseal(path)?, self.unseal(text)?);
            Ok(StoredChunk {
                id: id as u64,
                doc_id,
                source,
                acl: acl_from_json(&acl)?,
                chunk: Chunk {
                    ordinal: ordinal as u32,
                    heading_path: serde_json::from_str(&path).map_err(|e| Error::Corrupt(format!("heading path: {e}")))?,
                    text,
                    char_start: start as usize,
                    char_end: end as usize,
                    page,
                },
                embedding: blob_to_embedding(&blob)?,
            })
        })
        .collect()
    }
}

/// `query_row` through the connection's statement cache: the lookups every request makes
/// (its key, its roles, the knowledge base) are parsed once, not once per request.
pub(crate) trait CachedRow {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedRow for Connection {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With checkpoints moved to the background thread, committed pages still reach the
    /// database file (not only the write-ahead log), and a log grown past the limit is emptied.
    #[test]
    fn the_background_checkpointer_copies_the_log_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhiku.db");
        let store = Store::open(&path).unwrap();
        store.checkpoint_in_background(std::time::Duration::from_millis(20), 1_000_000).unwrap();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let wal = dir.path().join("zhiku.db-wal");
        let start = size(&path);
        let detail = serde_json::json!({ "padding": "x".repeat(2000) });
        for _ in 0..1000 {
            store.audit(&AuditEvent { actor: "cli:test", action: "test", kb: None, detail: detail.clone() }).unwrap();
        }
        // Waits for the thread (it runs every 20 ms); fails only if it never gets there.
        let done = || size(&path) >= start + 1_000_000 && size(&wal) <= 1_000_000;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(done(), "database file {} bytes, log {} bytes after 2 MB of audit entries", size(&path), size(&wal));
        assert_eq!(store.audit_records(&AuditFilter::default()).unwrap().len(), 1000);
    }

    fn chunk(ordinal: u32, text: &str) -> (Chunk, Vec<f32>) {
        (
            Chunk { ordinal, heading_path: vec!["H".into()], text: text.into(), char_start: 0, char_end: text.chars().count(), page: None },
            vec![0.5, -0.25],
        )
    }

    fn doc<'a>(source: &'a str, hash: &'a str, acl: &'a [Principal], chunks: &'a [(Chunk, Vec<f32>)]) -> NewDocument<'a> {
        NewDocument {
            source,
            content_hash: hash,
            title: None,
            format: "text",
            language: "en",
            minhash: None,
            acl,
            own_acl: true,
            chunks,
            partial: false,
        }
    }

    #[test]
    fn replace_changes_generation_and_chunks() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("kb", &[]).unwrap();
        let acl = [Principal::parse("user:a").unwrap()];
        let v1 = [chunk(0, "old one"), chunk(1, "old two")];
        let v2 = [chunk(0, "new")];
        assert!(matches!(s.upsert_document("kb", &doc("f.txt", "h1", &acl, &v1)).unwrap(), Upsert::Inserted { .. }));
        let g1 = s.generation("kb").unwrap();
        assert_eq!(s.upsert_document("kb", &doc("f.txt", "h1", &acl, &v1)).unwrap(), Upsert::Unchanged);
        assert!(s.is_unchanged("kb", "f.txt", "h1", &acl, true).unwrap());
        assert!(!s.is_unchanged("kb", "f.txt", "h2", &acl, true).unwrap());
        assert!(!s.is_unchanged("kb", "f.txt", "h1", &[], true).unwrap());
        assert_eq!(s.generation("kb").unwrap(), g1);
        assert!(matches!(s.upsert_document("kb", &doc("f.txt", "h2", &acl, &v2)).unwrap(), Upsert::Replaced { .. }));
        assert!(s.generation("kb").unwrap() > g1);
        let chunks = s.chunks("kb").unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].chunk.text, "new");
        assert_eq!(chunks[0].embedding, vec![0.5, -0.25]);
        assert_eq!(chunks[0].acl, acl.to_vec());
    }

    #[test]
    fn a_partial_document_is_never_unchanged_until_completed() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("kb", &[]).unwrap();
        let first = [chunk(0, "one")];
        let partial = NewDocument { partial: true, ..doc("big.txt", "h", &[], &first) };
        let Upsert::Inserted { doc_id, .. } = s.upsert_document("kb", &partial).unwrap() else { panic!("inserted") };
        let g = s.generation("kb").unwrap();
        s.append_chunks("kb", doc_id, &[chunk(1, "two"), chunk(2, "three")]).unwrap();
        assert!(s.generation("kb").unwrap() > g);
        // Cut short here: the same file is not taken as stored, and is not anyone's duplicate.
        assert!(!s.is_unchanged("kb", "big.txt", "h", &[], true).unwrap());
        assert_eq!(s.source_with_hash("kb", "h", "other.txt").unwrap(), None);
        assert!(matches!(s.upsert_document("kb", &partial).unwrap(), Upsert::Replaced { .. }));
        let Some(id) = s.documents("kb").unwrap().first().map(|d| d.id) else { panic!("stored") };
        s.append_chunks("kb", id, &[chunk(1, "two")]).unwrap();
        s.complete_document(id, "h").unwrap();
        assert!(s.is_unchanged("kb", "big.txt", "h", &[], true).unwrap());
        let texts: Vec<String> = s.chunks("kb").unwrap().into_iter().map(|c| c.chunk.text).collect();
        assert_eq!(texts, ["one", "two"]);
    }

    #[test]
    fn delete_removes_chunks_and_bumps_generation() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("kb", &[]).unwrap();
        let c = [chunk(0, "x")];
        s.upsert_document("kb", &doc("f", "h", &[], &c)).unwrap();
        let g = s.generation("kb").unwrap();
        assert!(s.delete_document("kb", "f").unwrap().is_some());
        assert!(s.generation("kb").unwrap() > g);
        assert!(s.chunks("kb").unwrap().is_empty());
        assert_eq!(s.delete_document("kb", "f").unwrap(), None);
    }

    #[test]
    fn acl_change_alone_is_a_write() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("kb", &[]).unwrap();
        let c = [chunk(0, "x")];
        let a = [Principal::parse("user:a").unwrap()];
        let b = [Principal::parse("user:b").unwrap()];
        s.upsert_document("kb", &doc("f", "h", &a, &c)).unwrap();
        assert!(matches!(s.upsert_document("kb", &doc("f", "h", &b, &c)).unwrap(), Upsert::Replaced { .. }));
        assert_eq!(s.chunks("kb").unwrap()[0].acl, b.to_vec());
    }

    #[test]
    fn unknown_kb_and_bad_names_are_rejected() {
        let s = Store::open_in_memory().unwrap();
        assert!(matches!(s.upsert_document("nope", &doc("f", "h", &[], &[])), Err(Error::UnknownKb(_))));
        assert!(matches!(s.ensure_kb("../etc", &[]), Err(Error::InvalidKbName(_))));
        // SQL injection attempts in text fields are plain data.
        s.ensure_kb("kb", &[]).unwrap();
        let evil = "x'); DROP TABLE chunk; --";
        s.upsert_document("kb", &doc(evil, "h", &[], &[chunk(0, evil)])).unwrap();
        assert_eq!(s.chunks("kb").unwrap()[0].source, evil);
    }

    #[test]
    fn group_membership() {
        let s = Store::open_in_memory().unwrap();
        s.add_group_member("hr", "alice").unwrap();
        s.add_group_member("staff", "alice").unwrap();
        s.add_group_member("staff", "alice").unwrap();
        assert_eq!(s.groups_of("alice").unwrap(), vec!["hr", "staff"]);
        assert!(s.remove_group_member("hr", "alice").unwrap());
        assert_eq!(s.groups_of("alice").unwrap(), vec!["staff"]);
        assert!(s.groups_of("bob").unwrap().is_empty());
    }
}
