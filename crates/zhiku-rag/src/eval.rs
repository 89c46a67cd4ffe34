//! Retrieval evaluation: how well each retriever (vectors alone, BM25 alone, both fused) ranks
//! the documents a question is known to be answered by, so that a change in chunking, models or
//! fusion shows as numbers before it shows as complaints.
//!
//! Relevance is judged per document (a source path, or its suffix); a ranking is of chunks, and a
//! document counts at the rank of its first chunk. Metrics follow their usual definitions
//! (Manning et al., *Introduction to Information Retrieval*, ch. 8): recall@k (share of the
//! relevant documents in the top k), MRR@10 (reciprocal rank of the first relevant document) and
//! nDCG@10 (binary gains, log2 discount, against the ideal ordering).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// One line of a question file: `{"query": "...", "relevant": ["ch04.en.html", ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Judged {
    pub query: String,
    pub relevant: Vec<String>,
}

/// A source answers to a relevance entry when it is that path or ends with it at a path boundary.
pub fn matches(source: &str, relevant: &str) -> bool {
    source == relevant
        || (source.ends_with(relevant) && matches!(source[..source.len() - relevant.len()].chars().last(), Some('/' | '\\' | '!')))
}

/// The ranked documents of a ranked list of chunk sources: each document once, at its first chunk.
fn documents(ranked_sources: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    ranked_sources.iter().map(String::as_str).filter(|s| seen.insert(*s)).collect()
}

/// The metrics of one ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    #[serde(rename = "recall@1")]
    pub recall_1: f64,
    #[serde(rename = "recall@5")]
    pub recall_5: f64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    #[serde(rename = "mrr@10")]
    pub mrr_10: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
}

/// Scores a ranking of chunk sources (best first) against the relevant documents.
pub fn score(ranked_sources: &[String], relevant: &[String]) -> Scores {
    if relevant.is_empty() {
        return Scores::default();
    }
    let docs = documents(ranked_sources);
    let is_relevant = |doc: &str| relevant.iter().any(|r| matches(doc, r));
    // Each relevant entry is found at most once, by the first document answering to it.
    let found_by = |k: usize| relevant.iter().filter(|r| docs.iter().take(k).any(|d| matches(d, r))).count() as f64 / relevant.len() as f64;
    let mrr_10 = docs.iter().take(10).position(|d| is_relevant(d)).map(|i| 1.0 / (i + 1) as f64).unwrap_or(0.0);
    let mut claimed = vec![false; relevant.len()];
    let mut dcg = 0.0;
    for (i, doc) in docs.iter().take(10).enumerate() {
        if let Some(j) = relevant.iter().enumerate().position(|(j, r)| !claimed[j] && matches(doc, r)) {
            claimed[j] = true;
            dcg += 1.0 / ((i + 2) as f64).log2();
        }
    }
    let ideal: f64 = (0..relevant.len().min(10)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    Scores { recall_1: found_by(1), recall_5: found_by(5), recall_10: found_by(10), mrr_10, ndcg_10: dcg / ideal }
}

/// The mean of each metric over questions.
pub fn mean(all: &[Scores]) -> Scores {
    let n = all.len().max(1) as f64;
    let sum = |f: fn(&Scores) -> f64| all.iter().map(f).sum::<f64>() / n;
    Scores {
        recall_1: sum(|s| s.recall_1),
        recall_5: sum(|s| s.recall_5),
        recall_10: sum(|s| s.recall_10),
        mrr_10: sum(|s| s.mrr_10),
        ndcg_10: sum(|s| s.ndcg_10),
    }
}

/// Which retriever a ranking comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    Vector,
    Bm25,
    Hybrid,
}

impl Retriever {
    pub const ALL: [Retriever; 3] = [Retriever::Vector, Retriever::Bm25, Retriever::Hybrid];
}

/// Mean scores per retriever over a question set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub queries: usize,
    pub retrievers: BTreeMap<Retriever, Scores>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(sources: &[&str]) -> Vec<String> {
        sources.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_document_counts_once_at_its_first_chunk() {
        let relevant = ranked(&["ch04.en.html"]);
        let first = score(&ranked(&["/d/ch04.en.html", "/d/ch04.en.html", "/d/ch03.en.html"]), &relevant);
        assert_eq!((first.recall_1, first.mrr_10, first.ndcg_10), (1.0, 1.0, 1.0));
        // Third document (the repeated ch03 chunk is one document): MRR 1/3, nDCG 1/log2(4).
        let third = score(&ranked(&["/d/ch03.en.html", "/d/ch03.en.html", "/d/ch08.en.html", "/d/ch04.en.html"]), &relevant);
        assert_eq!((third.recall_1, third.recall_5), (0.0, 1.0));
        assert!((third.mrr_10 - 1.0 / 3.0).abs() < 1e-12);
        assert!((third.ndcg_10 - 0.5).abs() < 1e-12);
        assert_eq!(score(&ranked(&["/d/ch03.en.html"]), &relevant), Scores::default());
    }

    #[test]
    fn recall_is_the_share_of_relevant_documents_found() {
        let relevant = ranked(&["a.md", "b.md"]);
        let s = score(&ranked(&["/x/b.md", "/x/c.md", "/x/d.md", "/x/e.md", "/x/f.md", "/x/a.md"]), &relevant);
        assert_eq!((s.recall_1, s.recall_5, s.recall_10), (0.5, 0.5, 1.0));
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((s.ndcg_10 - (1.0 + 1.0 / 7f64.log2()) / ideal).abs() < 1e-12);
    }

    #[test]
    fn suffixes_match_at_path_boundaries_only() {
        assert!(matches("/srv/docs/ch04.en.html", "ch04.en.html"));
        assert!(matches("/srv/docs/ch04.en.html", "docs/ch04.en.html"));
        assert!(matches("mail.eml!/report.pdf", "report.pdf"));
        assert!(!matches("/srv/docs/xch04.en.html", "ch04.en.html"));
    }

    #[test]
    fn means_average_each_metric() {
        let m = mean(&[Scores { recall_1: 1.0, ..Scores::default() }, Scores::default()]);
        assert_eq!(m.recall_1, 0.5);
        assert_eq!(mean(&[]), Scores::default());
    }
}
