//! Versioned schema migrations: each entry is applied once, in order, in its own transaction,
//! and recorded in `zhiku_schema`. Released entries are never edited; a change is a new entry.

use postgres::Client;
use tracing::info;

use crate::{Error, Result};

/// Any fixed number: every zhiku process takes this advisory lock while migrating, so replicas
/// and workers that start together migrate once.
const MIGRATION_LOCK: i64 = 0x7a68_696b_7500;

const MIGRATIONS: &[&str] = &[
    // 1: knowledge bases, documents, chunks (vectors and lexemes), the ingest job queue, groups.
    r#"
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE kb (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        -- Set by the first document: the embedding model's dimension.
        dimension integer,
        -- What documents ingested without an ACL of their own are readable by.
        default_acl text[] NOT NULL DEFAULT '{}',
        -- Bumped by every write, so derived caches know when they are stale.
        generation bigint NOT NULL DEFAULT 0,
        -- BM25's collection statistics: chunks, and index terms over all of them.
        chunk_count bigint NOT NULL DEFAULT 0,
        term_total bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE document (
        id bigserial PRIMARY KEY,
        kb_id bigint NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
        source text NOT NULL,
        content_hash text NOT NULL,
        title text,
        format text NOT NULL,
        language text NOT NULL,
        acl text[] NOT NULL,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (kb_id, source)
    );
    CREATE TABLE chunk (
        id bigserial PRIMARY KEY,
        kb_id bigint NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
        doc_id bigint NOT NULL REFERENCES document(id) ON DELETE CASCADE,
        ordinal integer NOT NULL,
        heading_path text[] NOT NULL,
        text text NOT NULL,
        char_start integer NOT NULL,
        char_end integer NOT NULL,
        page integer,
        -- The document's ACL, copied so that the filter runs inside the index scans.
        acl text[] NOT NULL,
        embedding vector NOT NULL,
        terms tsvector NOT NULL,
        -- Tokens in the indexed text (BM25's document length).
        term_count integer NOT NULL
    );
    CREATE INDEX chunk_doc ON chunk (doc_id);
    CREATE INDEX chunk_terms ON chunk USING gin (terms);
    CREATE INDEX chunk_acl ON chunk USING gin (acl);
    CREATE TABLE job (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        kb text NOT NULL,
        payload jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL,
        worker text,
        lease_until timestamptz,
        error text,
        result jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
    );
    CREATE INDEX job_open ON job (id) WHERE status IN ('pending', 'running');
    -- Group memberships: a member is a principal, user:<name> or group:<name> (nested groups).
    CREATE TABLE member (
        group_name text NOT NULL,
        member text NOT NULL,
        PRIMARY KEY (group_name, member)
    );
    CREATE INDEX member_of ON member (member);
    "#,
    // 2: API keys, shared by every server replica. Only the secret's SHA-256 is stored.
    r#"
    CREATE TABLE api_key (
        id text PRIMARY KEY,
        name text NOT NULL,
        user_name text NOT NULL,
        scopes text[] NOT NULL,
        secret_hash bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        revoked_at timestamptz
    );
    "#,
    // 3: a document's ACL may follow its knowledge base's viewers (ingested without an ACL of
    // its own), and then changes with them.
    r#"
    ALTER TABLE document ADD COLUMN acl_inherited boolean NOT NULL DEFAULT false;
    "#,
    // 4: each user's request allowance (a token bucket), shared by every server replica.
    r#"
    CREATE UNLOGGED TABLE rate_bucket (
        user_name text PRIMARY KEY,
        tokens double precision NOT NULL,
        at timestamptz NOT NULL,
        allowed boolean NOT NULL DEFAULT true
    );
    "#,
    // 5: the audit log, one hash chain for all processes; append-only.
    r#"
    CREATE TABLE audit (
        seq bigint PRIMARY KEY,
        -- Milliseconds since the Unix epoch, as hashed.
        at bigint NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        kb text,
        -- JSON text exactly as hashed.
        detail text NOT NULL,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE FUNCTION zhiku_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END
    $$;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION zhiku_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION zhiku_audit_append_only();
    "#,
    // 6: files uploaded through a server replica, held here until a worker has ingested them.
    r#"
    CREATE TABLE upload (
        id bigserial PRIMARY KEY,
        kb text NOT NULL,
        source text NOT NULL,
        bytes bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
    // 7: user accounts and web sessions, shared by every replica (times in Unix seconds).
    r#"
    CREATE TABLE account (
        name text PRIMARY KEY,
        -- argon2id in PHC form; NULL: no password (a directory's account, or keys only).
        password_hash text,
        admin boolean NOT NULL DEFAULT false,
        disabled boolean NOT NULL DEFAULT false,
        origin text NOT NULL DEFAULT 'local',
        created_at bigint NOT NULL
    );
    CREATE TABLE web_session (
        -- SHA-256 of the cookie's token: the token itself is never stored.
        token_hash bytea PRIMARY KEY,
        user_name text NOT NULL,
        csrf text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL
    );
    CREATE INDEX web_session_user ON web_session (user_name);
    "#,
    // 8: stored exchanges (chat completions with store: true) and their ratings, per user.
    r#"
    CREATE TABLE exchange (
        completion_id text PRIMARY KEY,
        -- The order exchanges were stored in, for exchanges within one second.
        seq bigserial NOT NULL,
        conversation_id text NOT NULL,
        user_name text NOT NULL,
        kb text,
        model text NOT NULL,
        question text NOT NULL,
        answer text NOT NULL,
        citations text NOT NULL,
        created_at bigint NOT NULL,
        rating bigint,
        correction text,
        rated_at bigint
    );
    CREATE INDEX exchange_conversation ON exchange (user_name, conversation_id);
    "#,
    // 9: roles on knowledge bases; the viewers so far (the inherited ACL) become viewer roles.
    r#"
    CREATE TABLE kb_role (
        kb_id bigint NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
        principal text NOT NULL,
        role text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
        PRIMARY KEY (kb_id, principal)
    );
    INSERT INTO kb_role (kb_id, principal, role) SELECT id, unnest(default_acl), 'viewer' FROM kb ON CONFLICT DO NOTHING;
    "#,
];

pub(crate) fn migrate(client: &mut Client) -> Result<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let outcome = apply_pending(client);
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    outcome
}

fn apply_pending(client: &mut Client) -> Result<()> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS zhiku_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )?;
    let current = current_version(client)?;
    let supported = MIGRATIONS.len() as i32;
    if current > supported {
        return Err(Error::TooNew { found: current, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO zhiku_schema (version) VALUES ($1)", &[&version])?;
        tx.commit()?;
        info!(version, "applied database migration");
    }
    Ok(())
}

pub(crate) fn current_version(client: &mut Client) -> Result<i32> {
    Ok(client.query_one("SELECT coalesce(max(version), 0) FROM zhiku_schema", &[])?.get(0))
}
