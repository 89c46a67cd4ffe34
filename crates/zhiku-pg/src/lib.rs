//! zhiku-pg: the scale-out system of record on PostgreSQL with pgvector.
//!
//! When one machine is not enough, every `zhiku serve` replica and `zhiku worker` shares one
//! PostgreSQL database instead of the embedded data directory. This crate owns that database:
//! versioned schema migrations ([`PgStore::connect`] applies them under an advisory lock, so
//! many processes may start at once), knowledge bases, documents and chunks with their vectors
//! (pgvector, one HNSW index per knowledge base) and full-text terms, roles on knowledge bases,
//! the ACL filter inside each
//! query's SQL, group memberships, API keys, accounts, web sessions and conversation history
//! (shared by server replicas), the hash-chained
//! audit log of every process, and the ingest job queue that workers claim with
//! `FOR UPDATE SKIP LOCKED`.
//!
//! Main types: [`PgStore`] (a connection), [`NewDocument`] (what a worker writes),
//! [`zhiku_core::StoredChunk`] (what retrieval reads), [`Job`] / [`Claimed`] (the queue).
//!
//! Text is segmented with the embedded BM25's own analyzer ([`zhiku_index::analyze`], jieba for
//! Chinese) and stored as ready-made lexemes, so keyword search matches the same words on both
//! backends.
//!
//! ```no_run
//! use zhiku_core::{Caller, Chunk, Principal};
//! use zhiku_pg::{NewDocument, PgStore};
//!
//! let mut pg = PgStore::connect("postgres://zhiku@127.0.0.1:5432/zhiku").unwrap();
//! let kb = pg.ensure_kb("docs", &[]).unwrap();
//! let chunk = Chunk { ordinal: 0, heading_path: vec![], text: "hello world".into(), char_start: 0, char_end: 11, page: None };
//! let acl = [Principal::parse("group:staff").unwrap()];
//! let doc = NewDocument {
//!     source: "a.txt", content_hash: "h1", title: None, format: "text", language: "en", acl: &acl, own_acl: true,
//!     chunks: &[(chunk, vec![1.0, 0.0])],
//! };
//! pg.upsert_document(&kb, &doc).unwrap();
//! let hits = pg.vector_search(&kb, &[1.0, 0.0], &Caller::Admin, 10).unwrap();
//! assert_eq!(hits.len(), 1);
//! ```

mod accounts;
mod audit;
mod documents;
mod groups;
mod history;
mod jobs;
mod keys;
mod limits;
mod roles;
mod schema;
mod vector;

pub use documents::{DocumentRow, KbId, NewDocument, Upsert};
pub use jobs::{Claimed, Job, JobStatus, NewJob};
pub use keys::KeyHolder;
pub use vector::Vector;

use postgres::{Client, NoTls};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to PostgreSQL ({url}): {source}")]
    Connect { url: String, source: postgres::Error },
    #[error("PostgreSQL: {}", describe(.0))]
    Db(#[from] postgres::Error),
    #[error("knowledge base '{0}' does not exist; ingest into it first")]
    UnknownKb(String),
    #[error("invalid knowledge base name '{0}': use letters, digits, '_' and '-' (at most 64)")]
    InvalidKbName(String),
    #[error(
        "knowledge base '{kb}' holds {stored}-dimensional vectors; these are {given}-dimensional: use the knowledge base's embedding model"
    )]
    Dimension { kb: String, stored: usize, given: usize },
    #[error("this database was migrated by a newer zhiku (schema version {found}); this one knows up to {supported}: upgrade zhiku")]
    TooNew { found: i32, supported: i32 },
    #[error("corrupt record in the database: {0}")]
    Corrupt(String),
    #[error("invalid {what} '{value}': no such account, or not letters, digits and . _ - @")]
    Invalid { what: &'static str, value: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One connection to the shared database. Cheap enough to hold one per thread; the
/// synchronous client serialises its own queries.
pub struct PgStore {
    client: Client,
}

impl PgStore {
    /// Connects and brings the schema up to date. The URL's password never appears in errors.
    pub fn connect(url: &str) -> Result<Self> {
        let mut client = Client::connect(url, NoTls).map_err(|source| Error::Connect { url: redact(url), source })?;
        // Per-knowledge-base partial indexes (`WHERE kb_id = 7`) are only usable by a plan made
        // for the actual parameter values; a cached generic plan would scan the table.
        client.batch_execute("SET plan_cache_mode = force_custom_plan")?;
        schema::migrate(&mut client)?;
        Ok(Self { client })
    }

    /// The server ended the connection (restart, failover, network cut): connect again.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The schema version this database is at.
    pub fn schema_version(&mut self) -> Result<i32> {
        schema::current_version(&mut self.client)
    }
}

/// The server's own words for a database error (the client's Display says only "db error").
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_only() {
        assert_eq!(redact("postgres://zhiku:s3cr@t@db:5432/k"), "postgres://zhiku:***@db:5432/k");
        assert_eq!(redact("postgres://zhiku@db/k"), "postgres://zhiku@db/k");
        assert_eq!(redact("host=db user=zhiku"), "host=db user=zhiku");
    }
}
