//! Context assembly: the passages retrieved for a question, made into the sources the model
//! reads. Chunks overlap (`chunking.overlap_tokens`) and neighbours are often retrieved
//! together; given as they are, the model reads the same sentences twice and a thought cut at a
//! chunk boundary stays cut. Overlapping or touching passages of one document become one.

use crate::engine::SearchHit;

/// Merges passages of the same document whose character ranges overlap or touch, when the
/// overlap reads the same in both (a table re-laid out, say, is left alone). A merged passage
/// keeps the first chunk's id and place, the best similarity and score of its parts; the result
/// is ordered by similarity, best first.
pub fn merge_passages(hits: Vec<SearchHit>) -> Vec<SearchHit> {
    let mut by_place = hits;
    by_place.sort_by(|a, b| a.source.cmp(&b.source).then(a.char_start.cmp(&b.char_start)).then(a.char_end.cmp(&b.char_end)));
    let mut merged: Vec<SearchHit> = Vec::with_capacity(by_place.len());
    for hit in by_place {
        if let Some(last) = merged.last_mut() {
            if last.source == hit.source && hit.char_start <= last.char_end {
                if let Some(text) = joined(last, &hit) {
                    last.text = text;
                    last.char_end = last.char_end.max(hit.char_end);
                    last.similarity = last.similarity.max(hit.similarity);
                    last.score = last.score.max(hit.score);
                    last.via_graph |= hit.via_graph;
                    continue;
                }
            }
        }
        merged.push(hit);
    }
    merged.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    merged
}

/// `first` followed by what `second` adds, if their shared characters agree.
fn joined(first: &SearchHit, second: &SearchHit) -> Option<String> {
    let first_chars: Vec<char> = first.text.chars().collect();
    let second_chars: Vec<char> = second.text.chars().collect();
    // Offsets are the chunks' places in the document's text; a chunk's text is that span.
    if first_chars.len() != first.char_end - first.char_start || second_chars.len() != second.char_end - second.char_start {
        return None;
    }
    if second.char_end <= first.char_end {
        // Contained: the second adds nothing, if it is the same text.
        let from = second.char_start - first.char_start;
        return (first_chars[from..from + second_chars.len()] == second_chars[..]).then(|| first.text.clone());
    }
    let overlap = first.char_end - second.char_start;
    if first_chars[first_chars.len() - overlap..] != second_chars[..overlap] {
        return None;
    }
    Some(first_chars.iter().chain(&second_chars[overlap..]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "Leave carries over. At most five days. Requests go through Workday. The People Team owns it.";

    fn hit(source: &str, start: usize, end: usize, similarity: f32) -> SearchHit {
        SearchHit {
            source: source.into(),
            chunk_id: format!("{source}:{start}"),
            score: similarity / 10.0,
            text: DOC.chars().skip(start).take(end - start).collect(),
            heading_path: Vec::new(),
            char_start: start,
            char_end: end,
            page: None,
            similarity,
            via_graph: false,
        }
    }

    #[test]
    fn overlapping_and_touching_passages_of_a_document_become_one() {
        let merged = merge_passages(vec![hit("a", 20, 60, 0.5), hit("a", 0, 38, 0.7), hit("a", 60, 92, 0.4), hit("b", 0, 19, 0.6)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].text, DOC, "read once, in order");
        assert_eq!((merged[0].chunk_id.as_str(), merged[0].similarity, merged[0].char_end), ("a:0", 0.7, 92));
        assert_eq!(merged[1].source, "b");
    }

    #[test]
    fn passages_apart_or_disagreeing_stay_apart() {
        let apart = merge_passages(vec![hit("a", 0, 19, 0.5), hit("a", 39, 66, 0.6)]);
        assert_eq!(apart.len(), 2);
        assert_eq!(apart[0].char_start, 39, "by similarity");
        let mut rewritten = hit("a", 10, 30, 0.5);
        rewritten.text = "| a table laid out |".into();
        assert_eq!(merge_passages(vec![hit("a", 0, 19, 0.5), rewritten]).len(), 2);
        let contained = merge_passages(vec![hit("a", 0, 60, 0.5), hit("a", 20, 38, 0.9)]);
        assert_eq!((contained.len(), contained[0].similarity), (1, 0.9));
    }
}
