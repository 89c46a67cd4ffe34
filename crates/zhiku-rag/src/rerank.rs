//! Re-ranking: a second look at the fused candidates before the answer stage takes the first
//! few. [`SimilarityReranker`] orders them by cosine similarity to the question (what the
//! vectors say, undiluted by fusion); a cross-encoder would implement [`Reranker`] the same way.

use crate::engine::SearchHit;

/// Re-orders fused candidates for a question (`query_vector`: its embedding).
pub trait Reranker: Send + Sync {
    fn rerank(&self, question: &str, query_vector: &[f32], hits: &mut Vec<SearchHit>);
}

/// By cosine similarity to the question, the fused order breaking ties.
pub struct SimilarityReranker;

impl Reranker for SimilarityReranker {
    fn rerank(&self, _question: &str, _query_vector: &[f32], hits: &mut Vec<SearchHit>) {
        // Stable: equal similarities keep the fused order.
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, similarity: f32) -> SearchHit {
        SearchHit {
            source: format!("{id}.md"),
            chunk_id: id.into(),
            score: 0.0,
            text: String::new(),
            heading_path: Vec::new(),
            char_start: 0,
            char_end: 0,
            page: None,
            similarity,
            via_graph: false,
        }
    }

    #[test]
    fn the_most_similar_comes_first_and_ties_keep_their_order() {
        let mut hits = vec![hit("a", 0.2), hit("b", 0.9), hit("c", 0.2), hit("d", 0.5)];
        SimilarityReranker.rerank("q", &[], &mut hits);
        let ids: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
        assert_eq!(ids, ["b", "d", "a", "c"]);
    }
}
