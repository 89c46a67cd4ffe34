//! The knowledge graph's tables.
//!
//! Entities are one row per key per knowledge base. Everything else is a *contribution* of one
//! chunk — a mention, an edge, an attribute, an alias — stored with that chunk's id, so that
//! removing or replacing a document (its chunks cascade) removes exactly what it said, and
//! [`Store::graph_gc`] then drops the entities nothing mentions any more. Visibility follows
//! the supporting chunks' documents: reads return every contribution with its document's source
//! and ACL, and the caller's filter decides what it sees.
//!
//! Which chunks were read, and by which extractor, is recorded too ([`Store::graph_pending`]):
//! the graph is derived from the chunks, like the indexes, and an ingest cut short is caught up
//! by the next.

use crate::CachedRow;
use std::collections::HashMap;

use rusqlite::{params, params_from_iter, OptionalExtension, TransactionBehavior};
use zhiku_core::Principal;
use zhiku_graph::resolve::{entity_key, fold_key};
use zhiku_graph::{EntityRef, Extraction};

use crate::{acl_from_json, Result, Store};

pub(crate) const GRAPH_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS graph_entity (
    id INTEGER PRIMARY KEY,
    kb TEXT NOT NULL REFERENCES kb(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    fold TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (kb, key)
);
CREATE INDEX IF NOT EXISTS graph_entity_fold ON graph_entity(kb, fold);
CREATE TABLE IF NOT EXISTS graph_chunk (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunk(id) ON DELETE CASCADE,
    extractor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS graph_mention (
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    entity_id INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    PRIMARY KEY (chunk_id, entity_id)
);
CREATE INDEX IF NOT EXISTS graph_mention_entity ON graph_mention(entity_id);
CREATE TABLE IF NOT EXISTS graph_edge (
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    target_id INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    weight REAL NOT NULL,
    PRIMARY KEY (chunk_id, source_id, relation, target_id)
);
CREATE INDEX IF NOT EXISTS graph_edge_source ON graph_edge(source_id);
CREATE INDEX IF NOT EXISTS graph_edge_target ON graph_edge(target_id);
CREATE TABLE IF NOT EXISTS graph_attribute (
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    entity_id INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS graph_attribute_chunk ON graph_attribute(chunk_id);
CREATE INDEX IF NOT EXISTS graph_attribute_entity ON graph_attribute(entity_id);
CREATE TABLE IF NOT EXISTS graph_alias (
    chunk_id INTEGER NOT NULL REFERENCES chunk(id) ON DELETE CASCADE,
    kb TEXT NOT NULL,
    alias TEXT NOT NULL,
    entity_id INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    PRIMARY KEY (chunk_id, alias, entity_id)
);
CREATE INDEX IF NOT EXISTS graph_alias_key ON graph_alias(kb, alias);
CREATE INDEX IF NOT EXISTS graph_alias_entity ON graph_alias(entity_id);
CREATE TABLE IF NOT EXISTS graph_community (
    entity_id INTEGER PRIMARY KEY REFERENCES graph_entity(id) ON DELETE CASCADE,
    community INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS graph_community_id ON graph_community(community);
CREATE TABLE IF NOT EXISTS graph_same (
    a INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    b INTEGER NOT NULL REFERENCES graph_entity(id) ON DELETE CASCADE,
    PRIMARY KEY (a, b)
);
CREATE INDEX IF NOT EXISTS graph_same_b ON graph_same(b);
CREATE TABLE IF NOT EXISTS graph_llm_cache (
    key TEXT PRIMARY KEY,
    extraction TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"#;

/// A document with chunks the graph has not read yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDocument {
    pub doc_id: i64,
    pub format: String,
    pub language: String,
    /// `(chunk id, heading path, text)`, in order.
    pub chunks: Vec<(u64, Vec<String>, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphEntity {
    pub id: i64,
    pub name: String,
    pub kind: String,
}

/// A contribution with the chunk that made it and that chunk's document.
#[derive(Debug, Clone, PartialEq)]
pub struct Supported<T> {
    pub item: T,
    pub chunk_id: u64,
    pub source: String,
    pub acl: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRow {
    pub source_id: i64,
    pub relation: String,
    pub target_id: i64,
    pub weight: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRow {
    pub entity_id: i64,
    pub name: String,
    pub value: String,
    pub kind: String,
}

/// Counts of a knowledge base's graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphCounts {
    pub entities: u64,
    pub edges: u64,
    pub chunks_read: u64,
    pub chunks_pending: u64,
}

/// `(?, ?, …)` for `n` values after `offset` numbered parameters.
fn placeholders(n: usize, offset: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("?{}", i + offset + 1)).collect();
    format!("({})", list.join(", "))
}

const PROVENANCE: &str = "JOIN chunk c ON c.id = x.chunk_id JOIN document d ON d.id = c.doc_id";

impl Store {
    /// A key as stored: blinded when the store is encrypted.
    fn graph_key(&self, key: &str) -> String {
        match &self.sealer {
            Some(s) => s.blind(key),
            None => key.to_string(),
        }
    }

    /// Up to `max_documents` documents of the knowledge base with chunks no extractor has read,
    /// with those chunks.
    pub fn graph_pending(&self, kb: &str, max_documents: usize) -> Result<Vec<PendingDocument>> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT d.id, d.format, d.language, c.id, c.heading_path, c.text
                 FROM document d JOIN chunk c ON c.doc_id = d.id
                 WHERE d.id IN (SELECT DISTINCT c2.doc_id FROM chunk c2 JOIN document d2 ON d2.id = c2.doc_id
                                WHERE d2.kb = ?1 AND d2.content_hash NOT LIKE 'partial:%'
                                  AND NOT EXISTS (SELECT 1 FROM graph_chunk g WHERE g.chunk_id = c2.id)
                                ORDER BY c2.doc_id LIMIT ?2)
                   AND NOT EXISTS (SELECT 1 FROM graph_chunk g WHERE g.chunk_id = c.id)
                 ORDER BY d.id, c.ordinal, c.id",
            )?;
            let rows = stmt
                .query_map(params![kb, max_documents as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let mut out: Vec<PendingDocument> = Vec::new();
        for (doc_id, format, language, chunk_id, path, text) in rows {
            let path: Vec<String> =
                serde_json::from_str(&self.unseal(path)?).map_err(|e| crate::Error::Corrupt(format!("heading path: {e}")))?;
            let text = self.unseal(text)?;
            match out.last_mut() {
                Some(doc) if doc.doc_id == doc_id => doc.chunks.push((chunk_id as u64, path, text)),
                _ => out.push(PendingDocument { doc_id, format, language, chunks: vec![(chunk_id as u64, path, text)] }),
            }
        }
        Ok(out)
    }

    /// Stores what `extractor` found in these chunks (of the knowledge base) and marks them read,
    /// in one transaction. Chunks that no longer exist (a document replaced meanwhile) are
    /// skipped.
    pub fn write_graph(&self, kb: &str, extractor: &str, found: &[(u64, Extraction)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids: HashMap<String, i64> = HashMap::new();
        for (chunk_id, extraction) in found {
            let exists: Option<i64> = tx
                .cached_row(
                    "SELECT c.id FROM chunk c JOIN document d ON d.id = c.doc_id WHERE c.id = ?1 AND d.kb = ?2",
                    params![*chunk_id as i64, kb],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                continue;
            }
            let mut entity = |e: &EntityRef| -> Result<Option<i64>> {
                let key = entity_key(&e.name, e.kind);
                if key.is_empty() {
                    return Ok(None);
                }
                if let Some(id) = ids.get(&key) {
                    return Ok(Some(*id));
                }
                let stored_key = self.graph_key(&key);
                let id: Option<i64> = tx
                    .cached_row("SELECT id FROM graph_entity WHERE kb = ?1 AND key = ?2", params![kb, stored_key], |r| r.get(0))
                    .optional()?;
                let id = match id {
                    Some(id) => id,
                    None => {
                        let fold = self.graph_key(&fold_key(&key));
                        tx.execute(
                            "INSERT INTO graph_entity (kb, key, fold, name, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![kb, stored_key, fold, self.seal(e.name.trim())?, e.kind.as_str()],
                        )?;
                        tx.last_insert_rowid()
                    }
                };
                ids.insert(key, id);
                Ok(Some(id))
            };
            let chunk = *chunk_id as i64;
            for m in &extraction.mentions {
                if let Some(id) = entity(m)? {
                    tx.execute("INSERT OR IGNORE INTO graph_mention (chunk_id, entity_id) VALUES (?1, ?2)", params![chunk, id])?;
                }
            }
            for r in &extraction.relations {
                if let (Some(s), Some(o)) = (entity(&r.subject)?, entity(&r.object)?) {
                    tx.execute(
                        "INSERT OR IGNORE INTO graph_mention (chunk_id, entity_id) VALUES (?1, ?2), (?1, ?3)",
                        params![chunk, s, o],
                    )?;
                    if s != o {
                        tx.execute(
                            "INSERT INTO graph_edge (chunk_id, source_id, relation, target_id, weight) VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT DO UPDATE SET weight = weight + excluded.weight",
                            params![chunk, s, self.seal(&r.relation)?, o, r.weight as f64],
                        )?;
                    }
                }
            }
            for a in &extraction.attributes {
                if let Some(id) = entity(&a.entity)? {
                    tx.execute("INSERT OR IGNORE INTO graph_mention (chunk_id, entity_id) VALUES (?1, ?2)", params![chunk, id])?;
                    tx.execute(
                        "INSERT INTO graph_attribute (chunk_id, entity_id, name, value, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![chunk, id, self.seal(&a.name)?, self.seal(&a.value)?, a.kind.as_str()],
                    )?;
                }
            }
            for (alias, target) in &extraction.aliases {
                let alias_key = entity_key(alias, target.kind);
                if let (Some(id), false) = (entity(target)?, alias_key.is_empty()) {
                    tx.execute("INSERT OR IGNORE INTO graph_mention (chunk_id, entity_id) VALUES (?1, ?2)", params![chunk, id])?;
                    tx.execute(
                        "INSERT OR IGNORE INTO graph_alias (chunk_id, kb, alias, entity_id) VALUES (?1, ?2, ?3, ?4)",
                        params![chunk, kb, self.graph_key(&alias_key), id],
                    )?;
                }
            }
            tx.execute("INSERT OR REPLACE INTO graph_chunk (chunk_id, extractor) VALUES (?1, ?2)", params![chunk, extractor])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the knowledge base's communities: entity id → community id.
    pub fn set_graph_communities(&self, kb: &str, communities: &HashMap<i64, i64>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM graph_community WHERE entity_id IN (SELECT id FROM graph_entity WHERE kb = ?1)", params![kb])?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO graph_community (entity_id, community) SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM graph_entity WHERE id = ?1 AND kb = ?3)",
            )?;
            for (&entity, &community) in communities {
                insert.execute(params![entity, community, kb])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the knowledge base's pairs of entities found to be one (spelling and meaning).
    pub fn set_graph_same(&self, kb: &str, pairs: &[(i64, i64)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM graph_same WHERE a IN (SELECT id FROM graph_entity WHERE kb = ?1)", params![kb])?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO graph_same (a, b) SELECT ?1, ?2
                 WHERE EXISTS (SELECT 1 FROM graph_entity WHERE id = ?1 AND kb = ?3) AND EXISTS (SELECT 1 FROM graph_entity WHERE id = ?2 AND kb = ?3)",
            )?;
            for &(a, b) in pairs {
                insert.execute(params![a.min(b), a.max(b), kb])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The entities found to be one with any of these.
    pub fn graph_same_as(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let conn = self.conn();
        let mut out = Vec::new();
        for part in ids.chunks(400) {
            let list = placeholders(part.len(), 0);
            let mut stmt = conn
                .prepare_cached(&format!("SELECT b FROM graph_same WHERE a IN {list} UNION SELECT a FROM graph_same WHERE b IN {list}"))?;
            let rows = stmt.query_map(params_from_iter(part.iter()), |r| r.get::<_, i64>(0))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// The knowledge base's communities: `(entity id, community id)`.
    pub fn graph_communities(&self, kb: &str) -> Result<Vec<(i64, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT c.entity_id, c.community FROM graph_community c JOIN graph_entity e ON e.id = c.entity_id WHERE e.kb = ?1 ORDER BY c.community, c.entity_id",
        )?;
        let rows = stmt.query_map(params![kb], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A model's extraction cached under `key` (a hash of the model and the chunk's text).
    pub fn graph_cached_extraction(&self, key: &str) -> Result<Option<Extraction>> {
        let stored: Option<String> =
            self.conn().cached_row("SELECT extraction FROM graph_llm_cache WHERE key = ?1", params![key], |r| r.get(0)).optional()?;
        match stored {
            None => Ok(None),
            Some(json) => {
                let json = self.unseal(json)?;
                serde_json::from_str(&json).map(Some).map_err(|e| crate::Error::Corrupt(format!("cached extraction: {e}")))
            }
        }
    }

    pub fn cache_graph_extraction(&self, key: &str, extraction: &Extraction) -> Result<()> {
        let json = serde_json::to_string(extraction).map_err(|e| crate::Error::Corrupt(e.to_string()))?;
        self.conn().execute(
            "INSERT OR REPLACE INTO graph_llm_cache (key, extraction, created_at) VALUES (?1, ?2, ?3)",
            params![key, self.seal(&json)?, crate::now()],
        )?;
        Ok(())
    }

    /// Removes the entities of the knowledge base that no chunk mentions any more; returns how
    /// many.
    pub fn graph_gc(&self, kb: &str) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM graph_entity WHERE kb = ?1 AND NOT EXISTS (SELECT 1 FROM graph_mention m WHERE m.entity_id = graph_entity.id)",
            params![kb],
        )?)
    }

    /// Forgets what was extracted from the knowledge base, so that it is read again (another
    /// extractor, better patterns).
    pub fn graph_reset(&self, kb: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM graph_chunk WHERE chunk_id IN (SELECT c.id FROM chunk c JOIN document d ON d.id = c.doc_id WHERE d.kb = ?1)",
            params![kb],
        )?;
        tx.execute("DELETE FROM graph_entity WHERE kb = ?1", params![kb])?;
        tx.execute("DELETE FROM graph_alias WHERE kb = ?1", params![kb])?;
        tx.commit()?;
        Ok(())
    }

    pub fn graph_counts(&self, kb: &str) -> Result<GraphCounts> {
        let conn = self.conn();
        let count = |sql: &str| -> Result<u64> { Ok(conn.cached_row(sql, params![kb], |r| r.get::<_, i64>(0))? as u64) };
        Ok(GraphCounts {
            entities: count("SELECT count(*) FROM graph_entity WHERE kb = ?1")?,
            edges: count("SELECT count(*) FROM graph_edge x JOIN graph_entity e ON e.id = x.source_id WHERE e.kb = ?1")?,
            chunks_read: count(
                "SELECT count(*) FROM graph_chunk g JOIN chunk c ON c.id = g.chunk_id JOIN document d ON d.id = c.doc_id WHERE d.kb = ?1",
            )?,
            chunks_pending: count(
                "SELECT count(*) FROM chunk c JOIN document d ON d.id = c.doc_id
                 WHERE d.kb = ?1 AND NOT EXISTS (SELECT 1 FROM graph_chunk g WHERE g.chunk_id = c.id)",
            )?,
        })
    }

    fn graph_entities_where(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<GraphEntity>> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt
                .query_map(params, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        rows.into_iter().map(|(id, name, kind)| Ok(GraphEntity { id, name: self.unseal(name)?, kind })).collect()
    }

    /// Entities of the knowledge base by their keys ([`zhiku_graph::resolve::entity_key`]).
    pub fn graph_entities_by_key(&self, kb: &str, keys: &[String]) -> Result<Vec<GraphEntity>> {
        self.graph_entities_matching(kb, "key", keys)
    }

    /// Entities of the knowledge base whose folded key ([`zhiku_graph::resolve::fold_key`]) is
    /// one of these.
    pub fn graph_entities_by_fold(&self, kb: &str, folds: &[String]) -> Result<Vec<GraphEntity>> {
        self.graph_entities_matching(kb, "fold", folds)
    }

    fn graph_entities_matching(&self, kb: &str, column: &'static str, values: &[String]) -> Result<Vec<GraphEntity>> {
        let stored: Vec<String> = values.iter().map(|k| self.graph_key(k)).collect();
        self.graph_entities_by_stored(kb, column, &stored)
    }

    /// Entities whose `column` (`key` or `fold`) holds one of these values as stored.
    fn graph_entities_by_stored(&self, kb: &str, column: &'static str, stored: &[String]) -> Result<Vec<GraphEntity>> {
        let mut out = Vec::new();
        for part in stored.chunks(400) {
            let sql = format!("SELECT id, name, kind FROM graph_entity WHERE kb = ?1 AND {column} IN {}", placeholders(part.len(), 1));
            out.extend(self.graph_entities_where(&sql, params_from_iter(std::iter::once(kb.to_string()).chain(part.iter().cloned())))?);
        }
        Ok(out)
    }

    /// Entities by id (of the knowledge base; others are skipped).
    pub fn graph_entities(&self, kb: &str, ids: &[i64]) -> Result<Vec<GraphEntity>> {
        let mut out = Vec::new();
        for part in ids.chunks(400) {
            let sql = format!("SELECT id, name, kind FROM graph_entity WHERE kb = ?1 AND id IN {}", placeholders(part.len(), 1));
            let args = std::iter::once(rusqlite::types::Value::from(kb.to_string())).chain(part.iter().map(|&i| i.into()));
            out.extend(self.graph_entities_where(&sql, params_from_iter(args))?);
        }
        Ok(out)
    }

    /// Rows of `sql` (with `x` the contribution's table joined to its chunk and document) for
    /// `values` (after `kb` as `?1` when given), each with its provenance: the first columns are
    /// `item` (`item_columns` of them), then chunk id, source, ACL.
    fn supported<V: Clone + Into<rusqlite::types::Value>, T>(
        &self,
        kb: Option<&str>,
        values: &[V],
        sql: impl Fn(&str) -> String,
        item: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        item_columns: usize,
    ) -> Result<Vec<Supported<T>>> {
        let mut raw = Vec::new();
        {
            let conn = self.conn();
            for part in values.chunks(400) {
                let mut stmt = conn.prepare_cached(&sql(&placeholders(part.len(), usize::from(kb.is_some()))))?;
                let args = kb.map(|k| rusqlite::types::Value::from(k.to_string())).into_iter().chain(part.iter().cloned().map(Into::into));
                let rows = stmt.query_map(params_from_iter(args), |r| {
                    Ok((
                        item(r)?,
                        r.get::<_, i64>(item_columns)?,
                        r.get::<_, String>(item_columns + 1)?,
                        r.get::<_, String>(item_columns + 2)?,
                    ))
                })?;
                for row in rows {
                    raw.push(row?);
                }
            }
        }
        raw.into_iter()
            .map(|(item, chunk_id, source, acl)| Ok(Supported { item, chunk_id: chunk_id as u64, source, acl: acl_from_json(&acl)? }))
            .collect()
    }

    /// The edges from or to these entities, each with the chunk that states it. An edge
    /// between two of the entities comes once.
    pub fn graph_edges(&self, ids: &[i64]) -> Result<Vec<Supported<EdgeRow>>> {
        let rows = self.supported(
            None,
            ids,
            |list| {
                format!(
                    "SELECT x.source_id, x.relation, x.target_id, x.weight, x.chunk_id, d.source, d.acl FROM graph_edge x {PROVENANCE}
                     WHERE x.source_id IN {list} OR x.target_id IN {list}"
                )
            },
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, f64>(3)?)),
            4,
        )?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (source_id, relation, target_id, weight) = row.item;
            let relation = self.unseal(relation)?;
            if seen.insert((row.chunk_id, source_id, relation.clone(), target_id)) {
                out.push(Supported {
                    item: EdgeRow { source_id, relation, target_id, weight: weight as f32 },
                    chunk_id: row.chunk_id,
                    source: row.source,
                    acl: row.acl,
                });
            }
        }
        Ok(out)
    }

    /// The chunks that mention these entities: `(entity id)` with provenance.
    pub fn graph_mentions(&self, ids: &[i64]) -> Result<Vec<Supported<i64>>> {
        self.supported(
            None,
            ids,
            |list| format!("SELECT x.entity_id, x.chunk_id, d.source, d.acl FROM graph_mention x {PROVENANCE} WHERE x.entity_id IN {list}"),
            |r| r.get::<_, i64>(0),
            1,
        )
    }

    /// The attributes of these entities.
    pub fn graph_attributes(&self, ids: &[i64]) -> Result<Vec<Supported<AttributeRow>>> {
        let rows = self.supported(
            None,
            ids,
            |list| {
                format!(
                    "SELECT x.entity_id, x.name, x.value, x.kind, x.chunk_id, d.source, d.acl FROM graph_attribute x {PROVENANCE}
                     WHERE x.entity_id IN {list} ORDER BY x.rowid"
                )
            },
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
            4,
        )?;
        rows.into_iter()
            .map(|row| {
                let (entity_id, name, value, kind) = row.item;
                Ok(Supported {
                    item: AttributeRow { entity_id, name: self.unseal(name)?, value: self.unseal(value)?, kind },
                    chunk_id: row.chunk_id,
                    source: row.source,
                    acl: row.acl,
                })
            })
            .collect()
    }

    /// Entities a chunk declared to be another name of these keys' entities: `(entity id)`
    /// for each alias equal to one of `keys`, with provenance.
    pub fn graph_aliased(&self, kb: &str, keys: &[String]) -> Result<Vec<Supported<i64>>> {
        let stored: Vec<String> = keys.iter().map(|k| self.graph_key(k)).collect();
        self.supported(
            Some(kb),
            &stored,
            |list| {
                format!(
                    "SELECT x.entity_id, x.chunk_id, d.source, d.acl FROM graph_alias x {PROVENANCE} WHERE x.kb = ?1 AND x.alias IN {list}"
                )
            },
            |r| r.get::<_, i64>(0),
            1,
        )
    }

    /// The aliases declared for these entities (their keys, as stored: blinded in an encrypted
    /// store), with provenance.
    pub fn graph_aliases_of(&self, ids: &[i64]) -> Result<Vec<Supported<(i64, String)>>> {
        self.supported(
            None,
            ids,
            |list| {
                format!(
                    "SELECT x.entity_id, x.alias, x.chunk_id, d.source, d.acl FROM graph_alias x {PROVENANCE} WHERE x.entity_id IN {list}"
                )
            },
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            2,
        )
    }

    /// Entities whose stored key is one of these (keys as [`Store::graph_aliases_of`] gives them).
    pub fn graph_entities_by_stored_key(&self, kb: &str, stored: &[String]) -> Result<Vec<GraphEntity>> {
        self.graph_entities_by_stored(kb, "key", stored)
    }

    /// Every entity of the knowledge base with its folded key (`None` in an encrypted store:
    /// blinded folds cannot be compared but for equality).
    pub fn graph_all_entities(&self, kb: &str) -> Result<Vec<(GraphEntity, Option<String>)>> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached("SELECT id, name, kind, fold FROM graph_entity WHERE kb = ?1 ORDER BY id")?;
            let rows = stmt
                .query_map(params![kb], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        rows.into_iter()
            .map(|(id, name, kind, fold)| {
                let fold = self.sealer.is_none().then_some(fold);
                Ok((GraphEntity { id, name: self.unseal(name)?, kind }, fold))
            })
            .collect()
    }

    /// Entities whose folded key starts with the same character as `fold` and is at most one
    /// character longer or shorter: the candidates for a near-identical name. Empty in an
    /// encrypted store.
    pub fn graph_fold_neighbours(&self, kb: &str, fold: &str) -> Result<Vec<(GraphEntity, String)>> {
        let Some(first) = fold.chars().next() else { return Ok(Vec::new()) };
        if self.sealer.is_some() {
            return Ok(Vec::new());
        }
        let len = fold.chars().count() as i64;
        let upper = format!("{first}\u{10FFFF}");
        let rows = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, kind, fold FROM graph_entity
                 WHERE kb = ?1 AND fold >= ?2 AND fold < ?3 AND length(fold) BETWEEN ?4 AND ?5",
            )?;
            let rows = stmt
                .query_map(params![kb, first.to_string(), upper, len - 1, len + 1], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        rows.into_iter().map(|(id, name, kind, fold)| Ok((GraphEntity { id, name: self.unseal(name)?, kind }, fold))).collect()
    }

    /// Every edge of the knowledge base with provenance, for export.
    pub fn graph_all_edges(&self, kb: &str) -> Result<Vec<Supported<EdgeRow>>> {
        let ids: Vec<i64> = self.graph_all_entities(kb)?.into_iter().map(|(e, _)| e.id).collect();
        let mut edges = self.graph_edges(&ids)?;
        edges.sort_by_key(|e| (e.item.source_id, e.item.target_id, e.chunk_id));
        Ok(edges)
    }
}
