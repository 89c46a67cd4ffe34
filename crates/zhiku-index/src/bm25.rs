use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use zhiku_core::{Caller, Principal};

use crate::analyzer::{analyze, text_analyzer};
use crate::{Error, Result, Scored};

const ANALYZER: &str = "zhiku";
/// Indexing memory budget: tantivy's minimum per thread is 15 MB; one thread is plenty for the
/// chunk rates the embedder can feed.
const WRITER_MEMORY: usize = 50_000_000;

/// BM25 full-text search over chunks, on tantivy, with ACL terms indexed next to the text so
/// the access filter is part of the query.
pub struct Bm25Index {
    index: Index,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    chunk_id: Field,
    doc_id: Field,
    text: Field,
    acl: Field,
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_u64_field("chunk_id", INDEXED | STORED | FAST);
    b.add_i64_field("doc_id", INDEXED);
    let text = TextOptions::default()
        .set_indexing_options(TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs));
    b.add_text_field("text", text);
    b.add_text_field("acl", STRING);
    b.build()
}

impl Bm25Index {
    /// Opens the index in `dir`, creating it if absent. An index whose schema does not match
    /// (written by another version) is reported as corrupt so the caller can rebuild it.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Corrupt { path: dir.display().to_string(), reason: e.to_string() })?;
        let index = Index::open_or_create(mmap, schema())?;
        Self::from_index(index)
    }

    /// Opens an existing index for searching only; fails if there is none.
    pub fn open_read_only(dir: &Path) -> Result<Self> {
        Self::from_index(Index::open_in_dir(dir)?)
    }

    /// A RAM-only index, for tests and throwaway use.
    pub fn in_memory() -> Result<Self> {
        Self::from_index(Index::create_in_ram(schema()))
    }

    fn from_index(index: Index) -> Result<Self> {
        index.tokenizers().register(ANALYZER, text_analyzer());
        let schema = index.schema();
        let field = |name: &str| schema.get_field(name).map_err(Error::from);
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self {
            chunk_id: field("chunk_id")?,
            doc_id: field("doc_id")?,
            text: field("text")?,
            acl: field("acl")?,
            index,
            reader,
            writer: None,
        })
    }

    /// The store generation recorded at the last commit (0 for a new index).
    pub fn generation(&self) -> Result<u64> {
        let metas = self.index.load_metas()?;
        Ok(metas.payload.as_deref().and_then(|p| p.parse().ok()).unwrap_or(0))
    }

    fn writer(&mut self) -> Result<&mut IndexWriter> {
        if self.writer.is_none() {
            self.writer = Some(self.index.writer_with_num_threads(1, WRITER_MEMORY)?);
        }
        Ok(self.writer.as_mut().expect("writer was just created"))
    }

    pub fn add(&mut self, chunk_id: u64, doc_id: i64, text: &str, acl: &[Principal]) -> Result<()> {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.chunk_id, chunk_id);
        doc.add_i64(self.doc_id, doc_id);
        doc.add_text(self.text, text);
        for p in acl {
            doc.add_text(self.acl, p.as_str());
        }
        let writer = self.writer()?;
        writer.add_document(doc)?;
        Ok(())
    }

    pub fn remove_document(&mut self, doc_id: i64) -> Result<()> {
        let term = Term::from_field_i64(self.doc_id, doc_id);
        self.writer()?.delete_term(term);
        Ok(())
    }

    pub fn clear(&mut self) -> Result<()> {
        self.writer()?.delete_all_documents()?;
        Ok(())
    }

    /// Makes pending changes durable and visible, recording the store generation they reflect.
    pub fn commit(&mut self, generation: u64) -> Result<()> {
        let writer = self.writer()?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&generation.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    pub fn num_chunks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The `k` best chunks by BM25 among those the caller may read.
    pub fn search(&self, query: &str, caller: &Caller, k: usize) -> Result<Vec<Scored>> {
        let mut terms = analyze(query);
        terms.sort();
        terms.dedup();
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(
            terms
                .iter()
                .map(|t| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(Term::from_field_text(self.text, t), IndexRecordOption::WithFreqs));
                    (Occur::Should, q)
                })
                .collect(),
        ));
        let query: Box<dyn Query> = match caller.principals() {
            None => text_query,
            Some(held) if held.is_empty() => return Ok(Vec::new()),
            Some(held) => {
                let acl_terms = held.iter().map(|p| Term::from_field_text(self.acl, p.as_str())).collect();
                // Score 0: the filter restricts the candidates without changing their ranking.
                let filter = ConstScoreQuery::new(Box::new(BooleanQuery::new_multiterms_query(acl_terms)), 0.0);
                Box::new(BooleanQuery::new(vec![(Occur::Must, text_query), (Occur::Must, Box::new(filter))]))
            }
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.chunk_id).and_then(|v| v.as_u64()) {
                out.push((id, score));
            }
        }
        Ok(out)
    }
}

/// A writer dropped while tantivy merges segments in the background leaves the merge running,
/// and its clean-up may then delete files that the next writer of the same directory has
/// committed (seen as `FileDoesNotExist` on the next open): the merges are awaited here.
impl Drop for Bm25Index {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.wait_merging_threads() {
                tracing::warn!(error = %e, "BM25 index: a background merge failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }

    fn sample() -> Bm25Index {
        let mut idx = Bm25Index::in_memory().unwrap();
        idx.add(1, 1, "公司的年假政策：员工每年享有二十五天带薪年假。", &[p("group:staff")]).unwrap();
        idx.add(2, 2, "服务器机房的门禁密码每季度更换一次。", &[p("group:it")]).unwrap();
        idx.add(3, 3, "Employees receive twenty-five days of annual leave.", &[p("group:staff")]).unwrap();
        idx.add(4, 4, "Quarterly rotation of the server room access codes.", &[p("user:root")]).unwrap();
        idx.commit(7).unwrap();
        idx
    }

    #[test]
    fn chinese_query_matches_segmented_words() {
        let idx = sample();
        let hits = idx.search("年假有多少天", &Caller::Admin, 10).unwrap();
        assert_eq!(hits.first().map(|h| h.0), Some(1), "{hits:?}");
        let hits = idx.search("机房门禁", &Caller::Admin, 10).unwrap();
        assert_eq!(hits.first().map(|h| h.0), Some(2), "{hits:?}");
        assert_eq!(idx.generation().unwrap(), 7);
    }

    #[test]
    fn english_query_is_stemmed() {
        let idx = sample();
        let hits = idx.search("rotating access code", &Caller::Admin, 10).unwrap();
        assert_eq!(hits.first().map(|h| h.0), Some(4), "{hits:?}");
    }

    #[test]
    fn acl_filter_inside_the_query() {
        let idx = sample();
        let staff = Caller::user("ann", ["staff"]).unwrap();
        let ids: Vec<u64> = idx.search("server room access 机房", &staff, 10).unwrap().iter().map(|h| h.0).collect();
        assert!(ids.is_empty(), "staff must not see IT or root chunks: {ids:?}");
        let root = Caller::user("root", Vec::<String>::new()).unwrap();
        let ids: Vec<u64> = idx.search("server room access 机房", &root, 10).unwrap().iter().map(|h| h.0).collect();
        assert_eq!(ids, vec![4]);
    }

    #[test]
    fn removal_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut idx = Bm25Index::open(dir.path()).unwrap();
            idx.add(1, 10, "alpha beta", &[p("user:a")]).unwrap();
            idx.add(2, 20, "alpha gamma", &[p("user:a")]).unwrap();
            idx.commit(1).unwrap();
            idx.remove_document(10).unwrap();
            idx.commit(2).unwrap();
        }
        let idx = Bm25Index::open(dir.path()).unwrap();
        assert_eq!(idx.generation().unwrap(), 2);
        let ids: Vec<u64> = idx.search("alpha", &Caller::Admin, 10).unwrap().iter().map(|h| h.0).collect();
        assert_eq!(ids, vec![2]);
    }
}
