//! Knowledge bases, documents and chunks; vector and keyword search with the caller's ACL in
//! the SQL of each query.

use std::collections::BTreeMap;

use zhiku_core::{Caller, Chunk, Principal, StoredChunk};

use crate::vector::Vector;
use crate::{Error, PgStore, Result};

/// A knowledge base's row id with its name (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbId {
    pub id: i64,
    pub name: String,
}

/// What a worker writes for one file.
pub struct NewDocument<'a> {
    pub source: &'a str,
    pub content_hash: &'a str,
    pub title: Option<&'a str>,
    pub format: &'a str,
    pub language: &'a str,
    pub acl: &'a [Principal],
    /// `acl` was given for this file. Otherwise it is the knowledge base's viewers: the document
    /// follows them when they change, and a stored document with an ACL of its own keeps that.
    pub own_acl: bool,
    pub chunks: &'a [(Chunk, Vec<f32>)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upsert {
    Inserted {
        doc_id: i64,
        chunks: usize,
    },
    Replaced {
        doc_id: i64,
        chunks: usize,
    },
    /// Same content and ACL as stored: nothing was written.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub id: i64,
    pub source: String,
    pub content_hash: String,
    pub language: String,
    pub acl: Vec<Principal>,
    pub chunks: i64,
}

impl PgStore {
    /// Creates the knowledge base if missing (with `default_acl` for documents that bring no ACL
    /// of their own); safe when several processes create it at once.
    pub fn ensure_kb(&mut self, name: &str, default_acl: &[Principal]) -> Result<KbId> {
        if !zhiku_core::is_valid_kb_name(name) {
            return Err(Error::InvalidKbName(name.to_string()));
        }
        let acl = principal_strings(default_acl);
        self.client.execute("INSERT INTO kb (name, default_acl) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &acl])?;
        self.kb(name)
    }

    pub fn kb(&mut self, name: &str) -> Result<KbId> {
        let row = self.client.query_opt("SELECT id FROM kb WHERE name = $1", &[&name])?;
        row.map(|r| KbId { id: r.get(0), name: name.to_string() }).ok_or_else(|| Error::UnknownKb(name.to_string()))
    }

    pub fn kb_names(&mut self) -> Result<Vec<String>> {
        Ok(self.client.query("SELECT name FROM kb ORDER BY name", &[])?.iter().map(|r| r.get(0)).collect())
    }

    /// Makes exactly `viewers` the knowledge base's viewers (editors and admins keep their
    /// roles): every principal holding a role reads the documents ingested without an ACL of
    /// their own, which move to it (and their chunks, which the searches filter on) in the same
    /// transaction. Returns how many documents changed.
    pub fn set_kb_default_acl(&mut self, kb: &KbId, viewers: &[Principal]) -> Result<u64> {
        let mut tx = self.client.transaction()?;
        tx.execute("DELETE FROM kb_role WHERE kb_id = $1 AND role = 'viewer'", &[&kb.id])?;
        for viewer in principal_strings(viewers) {
            tx.execute(
                "INSERT INTO kb_role (kb_id, principal, role) VALUES ($1, $2, 'viewer') ON CONFLICT DO NOTHING",
                &[&kb.id, &viewer],
            )?;
        }
        let changed = follow_roles(&mut tx, kb.id)?;
        tx.commit()?;
        Ok(changed)
    }

    /// Gives one document an ACL of its own (`Some`), or makes it follow the knowledge base's
    /// viewers again (`None`); false when there is no such document.
    pub fn set_document_acl(&mut self, kb: &KbId, source: &str, acl: Option<&[Principal]>) -> Result<bool> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&(kb.id as i32), &source])?;
        let found = match acl {
            Some(acl) => tx.query_opt(
                "UPDATE document SET acl = $3, acl_inherited = false WHERE kb_id = $1 AND source = $2 RETURNING id",
                &[&kb.id, &source, &principal_strings(acl)],
            )?,
            None => tx.query_opt(
                "UPDATE document d SET acl = k.default_acl, acl_inherited = true FROM kb k
                 WHERE k.id = d.kb_id AND d.kb_id = $1 AND d.source = $2 RETURNING d.id",
                &[&kb.id, &source],
            )?,
        };
        if let Some(row) = &found {
            let doc_id: i64 = row.get(0);
            tx.execute("UPDATE chunk c SET acl = d.acl FROM document d WHERE d.id = $1 AND c.doc_id = d.id", &[&doc_id])?;
            tx.execute("UPDATE kb SET generation = generation + 1 WHERE id = $1", &[&kb.id])?;
        }
        tx.commit()?;
        Ok(found.is_some())
    }

    pub fn kb_default_acl(&mut self, kb: &KbId) -> Result<Vec<Principal>> {
        let acl: Vec<String> = self.client.query_one("SELECT default_acl FROM kb WHERE id = $1", &[&kb.id])?.get(0);
        parse_principals(&acl)
    }

    /// Bumped by every write to the knowledge base.
    pub fn generation(&mut self, kb: &KbId) -> Result<i64> {
        Ok(self.client.query_one("SELECT generation FROM kb WHERE id = $1", &[&kb.id])?.get(0))
    }

    /// The stored document at `source` has this content and would keep its ACL: a worker may
    /// skip parsing it (`own_acl` as in [`NewDocument`]).
    pub fn is_unchanged(&mut self, kb: &KbId, source: &str, content_hash: &str, acl: &[Principal], own_acl: bool) -> Result<bool> {
        let acl = principal_strings(acl);
        let row = self.client.query_opt(
            "SELECT 1 FROM document WHERE kb_id = $1 AND source = $2 AND content_hash = $3
                 AND ((acl = $4 AND acl_inherited = NOT $5) OR (NOT $5 AND NOT acl_inherited))",
            &[&kb.id, &source, &content_hash, &acl, &own_acl],
        )?;
        Ok(row.is_some())
    }

    /// Writes a document and its chunks in one transaction, replacing what was stored under
    /// the same source. Idempotent: writing the same content again (a job delivered twice, a
    /// worker that died after its commit) changes nothing, and concurrent writers of one source
    /// are serialised, so a document is never stored twice.
    pub fn upsert_document(&mut self, kb: &KbId, doc: &NewDocument<'_>) -> Result<Upsert> {
        let dimension = match doc.chunks.first() {
            Some((_, e)) => e.len(),
            None => return Err(Error::Corrupt(format!("{}: a document without chunks", doc.source))),
        };
        if let Some((_, e)) = doc.chunks.iter().find(|(_, e)| e.len() != dimension) {
            return Err(Error::Dimension { kb: kb.name.clone(), stored: dimension, given: e.len() });
        }
        self.ensure_dimension(kb, dimension)?;
        let mut acl = principal_strings(doc.acl);
        let mut inherited = !doc.own_acl;
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&(kb.id as i32), &doc.source])?;
        let existing = tx.query_opt(
            "SELECT id, content_hash, acl, acl_inherited FROM document WHERE kb_id = $1 AND source = $2",
            &[&kb.id, &doc.source],
        )?;
        let replaced = match existing {
            Some(row) => {
                let (hash, stored_acl, stored_inherited): (String, Vec<String>, bool) = (row.get(1), row.get(2), row.get(3));
                if !doc.own_acl && !stored_inherited {
                    // Set for this document earlier: an ingest without an ACL keeps it.
                    acl = stored_acl.clone();
                    inherited = false;
                }
                if hash == doc.content_hash && stored_acl == acl && stored_inherited == inherited {
                    return Ok(Upsert::Unchanged);
                }
                remove_document(&mut tx, kb, row.get(0))?;
                true
            }
            None => false,
        };
        let doc_id: i64 = tx
            .query_one(
                "INSERT INTO document (kb_id, source, content_hash, title, format, language, acl, acl_inherited)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[&kb.id, &doc.source, &doc.content_hash, &doc.title, &doc.format, &doc.language, &acl, &inherited],
            )?
            .get(0);
        let insert = tx.prepare(
            "INSERT INTO chunk (kb_id, doc_id, ordinal, heading_path, text, char_start, char_end, page, acl, embedding, terms, term_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::tsvector, $12)",
        )?;
        let mut term_total = 0i64;
        for (chunk, embedding) in doc.chunks {
            let (terms, term_count) = tsvector_literal(&zhiku_index::index_text(&chunk.heading_path, &chunk.text));
            term_total += term_count as i64;
            let page = chunk.page.map(|p| p as i32);
            tx.execute(
                &insert,
                &[
                    &kb.id,
                    &doc_id,
                    &(chunk.ordinal as i32),
                    &chunk.heading_path,
                    &chunk.text,
                    &(chunk.char_start as i32),
                    &(chunk.char_end as i32),
                    &page,
                    &acl,
                    &Vector(embedding.clone()),
                    &terms,
                    &(term_count as i32),
                ],
            )?;
        }
        tx.execute(
            "UPDATE kb SET generation = generation + 1, chunk_count = chunk_count + $2, term_total = term_total + $3 WHERE id = $1",
            &[&kb.id, &(doc.chunks.len() as i64), &term_total],
        )?;
        tx.commit()?;
        let chunks = doc.chunks.len();
        Ok(if replaced { Upsert::Replaced { doc_id, chunks } } else { Upsert::Inserted { doc_id, chunks } })
    }

    /// Fixes the knowledge base's dimension at its first document and builds its HNSW index.
    fn ensure_dimension(&mut self, kb: &KbId, dimension: usize) -> Result<()> {
        let stored: Option<i32> = self.client.query_one("SELECT dimension FROM kb WHERE id = $1", &[&kb.id])?.get(0);
        match stored {
            Some(d) if d as usize == dimension => return Ok(()),
            Some(d) => return Err(Error::Dimension { kb: kb.name.clone(), stored: d as usize, given: dimension }),
            None => {}
        }
        let mut tx = self.client.transaction()?;
        let set = tx.execute("UPDATE kb SET dimension = $2 WHERE id = $1 AND dimension IS NULL", &[&kb.id, &(dimension as i32)])?;
        if set == 1 {
            // DDL takes no parameters; both numbers are ours (a row id and a model's dimension).
            // One partial index per knowledge base: pgvector indexes need a fixed dimension, and
            // each knowledge base may use another embedding model.
            tx.batch_execute(&format!(
                "CREATE INDEX chunk_hnsw_{id} ON chunk USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) WHERE kb_id = {id}",
                id = kb.id
            ))?;
        }
        tx.commit()?;
        // Another process may have fixed a different dimension in between.
        let stored: Option<i32> = self.client.query_one("SELECT dimension FROM kb WHERE id = $1", &[&kb.id])?.get(0);
        match stored {
            Some(d) if d as usize != dimension => Err(Error::Dimension { kb: kb.name.clone(), stored: d as usize, given: dimension }),
            _ => Ok(()),
        }
    }

    /// The knowledge base's vector dimension, once a document fixed it.
    pub fn dimension(&mut self, kb: &KbId) -> Result<Option<usize>> {
        let d: Option<i32> = self.client.query_one("SELECT dimension FROM kb WHERE id = $1", &[&kb.id])?.get(0);
        Ok(d.map(|d| d as usize))
    }

    /// Removes a document; false when there was none.
    pub fn delete_document(&mut self, kb: &KbId, source: &str) -> Result<bool> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&(kb.id as i32), &source])?;
        let found = tx.query_opt("SELECT id FROM document WHERE kb_id = $1 AND source = $2", &[&kb.id, &source])?;
        if let Some(row) = &found {
            remove_document(&mut tx, kb, row.get(0))?;
            tx.execute("UPDATE kb SET generation = generation + 1 WHERE id = $1", &[&kb.id])?;
        }
        tx.commit()?;
        Ok(found.is_some())
    }

    pub fn documents(&mut self, kb: &KbId) -> Result<Vec<DocumentRow>> {
        let rows = self.client.query(
            "SELECT d.id, d.source, d.content_hash, d.language, d.acl, (SELECT count(*) FROM chunk c WHERE c.doc_id = d.id)
             FROM document d WHERE d.kb_id = $1 ORDER BY d.source",
            &[&kb.id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DocumentRow {
                    id: r.get(0),
                    source: r.get(1),
                    content_hash: r.get(2),
                    language: r.get(3),
                    acl: parse_principals(&r.get::<_, Vec<String>>(4))?,
                    chunks: r.get(5),
                })
            })
            .collect()
    }

    /// The `k` chunks nearest to `query` by cosine similarity that `caller` may read, best
    /// first. The ACL is part of the index scan (pgvector's iterative scan keeps walking the
    /// graph until `k` readable chunks are found), not a filter after it.
    pub fn vector_search(&mut self, kb: &KbId, query: &[f32], caller: &Caller, k: usize) -> Result<Vec<(u64, f32)>> {
        let Some(dimension) = self.dimension(kb)? else { return Ok(Vec::new()) };
        if query.len() != dimension {
            return Err(Error::Dimension { kb: kb.name.clone(), stored: dimension, given: query.len() });
        }
        let principals = caller.principals().map(|set| set.iter().map(|p| p.as_str().to_string()).collect::<Vec<_>>());
        let mut tx = self.client.transaction()?;
        // The candidate list must at least hold the hits asked for.
        let ef_search = (k * 2).clamp(40, 1000);
        tx.batch_execute(&format!("SET LOCAL hnsw.ef_search = {ef_search}; SET LOCAL hnsw.iterative_scan = relaxed_order"))?;
        // The cast's type modifier cannot be a parameter; the dimension is the knowledge base's own.
        let distance = format!("(c.embedding::vector({dimension}) <=> $2)");
        let query = Vector(query.to_vec());
        let limit = k as i64;
        let rows = match &principals {
            None => tx.query(
                &format!("SELECT c.id, 1 - {distance} FROM chunk c WHERE c.kb_id = $1 ORDER BY {distance} LIMIT $3"),
                &[&kb.id, &query, &limit],
            )?,
            Some(held) => tx.query(
                &format!("SELECT c.id, 1 - {distance} FROM chunk c WHERE c.kb_id = $1 AND c.acl && $4 ORDER BY {distance} LIMIT $3"),
                &[&kb.id, &query, &limit, held],
            )?,
        };
        tx.commit()?;
        let mut hits: Vec<(u64, f32)> = rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, f64>(1) as f32)).collect();
        // A relaxed-order scan may return neighbours slightly out of order.
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits)
    }

    /// BM25 (k1 = 1.2, b = 0.75, as the embedded index scores) over the same lexemes the
    /// embedded index holds, computed in SQL from the stored term frequencies and the knowledge
    /// base's collection statistics; readable chunks only. Document frequencies count every
    /// chunk, readable or not, as the embedded index's do, so a caller's ranking does not
    /// reveal what others' documents contain any more than there.
    pub fn keyword_search(&mut self, kb: &KbId, query: &str, caller: &Caller, k: usize) -> Result<Vec<(u64, f32)>> {
        let mut lexemes = zhiku_index::analyze(query);
        lexemes.sort();
        lexemes.dedup();
        let Some(tsquery) = tsquery_literal(&lexemes) else { return Ok(Vec::new()) };
        let stats = self.client.query_one("SELECT chunk_count, term_total FROM kb WHERE id = $1", &[&kb.id])?;
        let (chunks, terms): (i64, i64) = (stats.get(0), stats.get(1));
        if chunks == 0 {
            return Ok(Vec::new());
        }
        let average_length = terms as f64 / chunks as f64;
        let principals = caller.principals().map(|set| set.iter().map(|p| p.as_str().to_string()).collect::<Vec<_>>());
        let acl_filter = if principals.is_some() { "AND hit.acl && $7" } else { "" };
        let sql = format!(
            "WITH hit AS (
                 SELECT c.id, c.acl, c.term_count, u.lexeme, array_length(u.positions, 1) AS tf
                 FROM chunk c CROSS JOIN LATERAL unnest(c.terms) AS u
                 WHERE c.kb_id = $1 AND c.terms @@ $2::text::tsquery AND u.lexeme = ANY($3)),
             idf AS (
                 SELECT lexeme, ln(1 + ($4::float8 - count(*) + 0.5) / (count(*) + 0.5)) AS w FROM hit GROUP BY lexeme)
             SELECT hit.id, sum(idf.w * hit.tf * 2.2 / (hit.tf + 1.2 * (0.25 + 0.75 * hit.term_count / $5::float8)))::real AS score
             FROM hit JOIN idf USING (lexeme)
             WHERE true {acl_filter}
             GROUP BY hit.id ORDER BY score DESC, hit.id LIMIT $6"
        );
        let limit = k as i64;
        let chunk_total = chunks as f64;
        let rows = match &principals {
            None => self.client.query(&sql, &[&kb.id, &tsquery, &lexemes, &chunk_total, &average_length, &limit])?,
            Some(held) => self.client.query(&sql, &[&kb.id, &tsquery, &lexemes, &chunk_total, &average_length, &limit, held])?,
        };
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, f32>(1))).collect())
    }

    /// The chunks with these ids in the knowledge base, in no particular order.
    pub fn chunks_by_id(&mut self, kb: &KbId, ids: &[u64]) -> Result<Vec<StoredChunk>> {
        let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let rows = self.client.query(
            "SELECT c.id, c.doc_id, d.source, c.acl, c.ordinal, c.heading_path, c.text, c.char_start, c.char_end, c.page, c.embedding
             FROM chunk c JOIN document d ON d.id = c.doc_id WHERE c.kb_id = $1 AND c.id = ANY($2)",
            &[&kb.id, &ids],
        )?;
        rows.iter()
            .map(|r| {
                Ok(StoredChunk {
                    id: r.get::<_, i64>(0) as u64,
                    doc_id: r.get(1),
                    source: r.get(2),
                    acl: parse_principals(&r.get::<_, Vec<String>>(3))?,
                    chunk: Chunk {
                        ordinal: r.get::<_, i32>(4) as u32,
                        heading_path: r.get(5),
                        text: r.get(6),
                        char_start: r.get::<_, i32>(7) as usize,
                        char_end: r.get::<_, i32>(8) as usize,
                        page: r.get::<_, Option<i32>>(9).map(|p| p as u32),
                    },
                    embedding: r.get::<_, Vector>(10).0,
                })
            })
            .collect()
    }

    /// Counts for verification: documents and chunks in the knowledge base.
    pub fn counts(&mut self, kb: &KbId) -> Result<(i64, i64)> {
        let row = self.client.query_one(
            "SELECT (SELECT count(*) FROM document WHERE kb_id = $1), (SELECT count(*) FROM chunk WHERE kb_id = $1)",
            &[&kb.id],
        )?;
        Ok((row.get(0), row.get(1)))
    }
}

/// The analyzer's tokens as a `tsvector` literal with positions, so PostgreSQL does not
/// re-segment them (its parser knows no Chinese words), and how many tokens there were.
fn tsvector_literal(text: &str) -> (String, usize) {
    // tsvector's own limits: positions up to 16383, at most 256 per lexeme.
    const MAX_POSITION: usize = 16_383;
    const MAX_POSITIONS: usize = 256;
    let mut positions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let tokens = zhiku_index::analyze(text);
    let count = tokens.len();
    for (i, token) in tokens.into_iter().enumerate() {
        let at = positions.entry(token).or_default();
        if at.len() < MAX_POSITIONS {
            at.push((i + 1).min(MAX_POSITION));
        }
    }
    let mut out = String::new();
    for (lexeme, at) in positions {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&quote_lexeme(&lexeme));
        out.push(':');
        let list: Vec<String> = at.iter().map(usize::to_string).collect();
        out.push_str(&list.join(","));
    }
    (out, count)
}

/// Any of these lexemes, as a `tsquery` literal; `None` when there are none.
fn tsquery_literal(lexemes: &[String]) -> Option<String> {
    if lexemes.is_empty() {
        return None;
    }
    Some(lexemes.iter().map(|t| quote_lexeme(t)).collect::<Vec<_>>().join(" | "))
}

/// Deletes a document with its chunks inside `tx`, taking its chunks out of the collection
/// statistics.
fn remove_document(tx: &mut postgres::Transaction<'_>, kb: &KbId, doc_id: i64) -> Result<()> {
    let row = tx.query_one("SELECT count(*), coalesce(sum(term_count), 0)::bigint FROM chunk WHERE doc_id = $1", &[&doc_id])?;
    let (chunks, terms): (i64, i64) = (row.get(0), row.get(1));
    tx.execute("DELETE FROM document WHERE id = $1", &[&doc_id])?;
    tx.execute("UPDATE kb SET chunk_count = chunk_count - $2, term_total = term_total - $3 WHERE id = $1", &[&kb.id, &chunks, &terms])?;
    Ok(())
}

/// A lexeme quoted for tsvector/tsquery input: inside single quotes, `'` doubled and `\` escaped.
fn quote_lexeme(lexeme: &str) -> String {
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

/// Sets the knowledge base's inherited ACL to the principals holding a role on it, and moves
/// its inheriting documents and their chunks to it; how many documents changed.
pub(crate) fn follow_roles(tx: &mut postgres::Transaction<'_>, kb: i64) -> Result<u64> {
    let acl: Vec<String> =
        tx.query_one("SELECT coalesce(array_agg(principal ORDER BY principal), '{}') FROM kb_role WHERE kb_id = $1", &[&kb])?.get(0);
    tx.execute("UPDATE kb SET default_acl = $2, generation = generation + 1 WHERE id = $1", &[&kb, &acl])?;
    let changed = tx.execute("UPDATE document SET acl = $2 WHERE kb_id = $1 AND acl_inherited AND acl <> $2", &[&kb, &acl])?;
    tx.execute(
        "UPDATE chunk c SET acl = d.acl FROM document d WHERE d.id = c.doc_id AND d.kb_id = $1 AND d.acl_inherited AND c.acl <> d.acl",
        &[&kb],
    )?;
    Ok(changed)
}

pub(crate) fn principal_strings(acl: &[Principal]) -> Vec<String> {
    let mut v: Vec<String> = acl.iter().map(|p| p.as_str().to_string()).collect();
    v.sort();
    v.dedup();
    v
}

pub(crate) fn parse_principals(values: &[String]) -> Result<Vec<Principal>> {
    values.iter().map(|v| Principal::parse(v).map_err(|e| Error::Corrupt(format!("principal '{v}': {e}")))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexemes_keep_positions_and_quotes() {
        let (v, count) = tsvector_literal("it's a cat, a cat");
        assert_eq!(count, zhiku_index::analyze("it's a cat, a cat").len());
        assert!(v.contains("'cat':"), "{v}");
        let cat = v.split(' ').find(|t| t.starts_with("'cat'")).unwrap();
        assert_eq!(cat.matches(',').count(), 1, "two positions: {v}");
        assert_eq!(quote_lexeme("it's"), "'it''s'");
        assert_eq!(quote_lexeme("a\\b"), "'a\\\\b'");
    }

    #[test]
    fn chinese_is_segmented_like_the_embedded_index() {
        let tokens = zhiku_index::analyze("数据库备份");
        assert!(tokens.len() >= 2, "jieba splits the compound: {tokens:?}");
        let (v, count) = tsvector_literal("数据库备份");
        assert_eq!(count, tokens.len());
        assert!(tokens.iter().all(|t| v.contains(&format!("'{t}':"))), "{v}");
        assert_eq!(tsquery_literal(&[]), None);
    }
}
