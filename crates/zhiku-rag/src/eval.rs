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

/// One line of an answer-evaluation file: `{"query", "expected"?: [terms], "relevant"?:
/// [sources], "answerable"?: bool}` (unanswerable questions should get an abstention).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JudgedAnswer {
    pub query: String,
    #[serde(default)]
    pub expected: Vec<String>,
    #[serde(default)]
    pub relevant: Vec<String>,
    #[serde(default = "yes")]
    pub answerable: bool,
}

fn yes() -> bool {
    true
}

/// Shares over the questions of an answer evaluation (each in [0, 1]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnswerReport {
    pub queries: usize,
    /// Answerable questions that got "not found".
    pub wrongly_abstained: f64,
    /// Unanswerable questions that got an answer anyway.
    pub wrongly_answered: f64,
    /// Answers whose every `[n]` names a source that was given.
    pub citations_valid: f64,
    /// Expected terms found in the answers (case-insensitive), over answers that expect some.
    pub expected_terms: f64,
    /// Answers citing at least one of their relevant documents, over those that name some.
    pub cites_relevant: f64,
}

/// What one answer scored: (abstained, citations valid, share of expected terms, cites a
/// relevant document). `citations` are the answer's `(n, source)`: every `[n]` in the text
/// must be one of them.
pub fn score_answer(
    question: &JudgedAnswer,
    answer: &str,
    abstained: bool,
    citations: &[(usize, String)],
) -> (bool, bool, Option<f64>, Option<bool>) {
    let valid = crate::cite::cited_numbers(answer, usize::MAX).iter().all(|n| citations.iter().any(|c| c.0 == *n));
    let cited_sources: Vec<&String> = citations.iter().map(|c| &c.1).collect();
    let lower = answer.to_lowercase();
    let terms = (!question.expected.is_empty() && !abstained)
        .then(|| question.expected.iter().filter(|t| lower.contains(&t.to_lowercase())).count() as f64 / question.expected.len() as f64);
    let relevant = (!question.relevant.is_empty() && !abstained)
        .then(|| cited_sources.iter().any(|s| question.relevant.iter().any(|r| matches(s, r))));
    (abstained, valid, terms, relevant)
}

/// The shares over scored answers.
pub fn answer_report(questions: &[JudgedAnswer], scored: &[(bool, bool, Option<f64>, Option<bool>)]) -> AnswerReport {
    let share = |hits: usize, of: usize| if of == 0 { 0.0 } else { hits as f64 / of as f64 };
    let answerable = questions.iter().filter(|q| q.answerable).count();
    let terms: Vec<f64> = scored.iter().filter_map(|s| s.2).collect();
    let relevant: Vec<bool> = scored.iter().filter_map(|s| s.3).collect();
    AnswerReport {
        queries: questions.len(),
        wrongly_abstained: share(questions.iter().zip(scored).filter(|(q, s)| q.answerable && s.0).count(), answerable),
        wrongly_answered: share(questions.iter().zip(scored).filter(|(q, s)| !q.answerable && !s.0).count(), questions.len() - answerable),
        citations_valid: share(scored.iter().filter(|s| s.1).count(), scored.len()),
        expected_terms: if terms.is_empty() { 0.0 } else { terms.iter().sum::<f64>() / terms.len() as f64 },
        cites_relevant: share(relevant.iter().filter(|r| **r).count(), relevant.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_scored_on_abstention_citations_terms_and_sources() {
        let q = |answerable: bool| JudgedAnswer {
            query: "How many days carry over?".into(),
            expected: vec!["five".into(), "days".into()],
            relevant: vec!["leave.md".into()],
            answerable,
        };
        let cited = vec![(1, "/hr/leave.md".to_string())];
        assert_eq!(score_answer(&q(true), "Five days [1].", false, &cited), (false, true, Some(1.0), Some(true)));
        assert_eq!(score_answer(&q(true), "Five weeks [1][3].", false, &cited), (false, false, Some(0.5), Some(true)));
        // Numbering follows the sources given to the model, not the position in the list.
        assert!(score_answer(&q(true), "Five days [2].", false, &[(2, "/hr/leave.md".into())]).1);
        assert_eq!(score_answer(&q(true), "Not found in the knowledge base.", true, &[]), (true, true, None, None));
        let questions = [q(true), q(true), q(false)];
        let scored = [
            score_answer(&questions[0], "Five days [1].", false, &cited),
            score_answer(&questions[1], "Not found.", true, &[]),
            score_answer(&questions[2], "Ten [1].", false, &cited),
        ];
        let report = answer_report(&questions, &scored);
        assert_eq!((report.wrongly_abstained, report.wrongly_answered), (0.5, 1.0));
        assert_eq!((report.expected_terms, report.cites_relevant), (0.5, 1.0));
    }

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
