//! Citations: reading `[n]` markers out of a generated answer, removing the ones that point at no
//! source, and attributing uncited sentences to the source that supports them (small models often
//! answer from a source without citing it). Pure functions.

use std::collections::HashSet;

use zhiku_index::analyze;
use zhiku_ingest::split_sentences;

pub const NOT_FOUND: &str = "Not found in the knowledge base.";

/// True when the model declined: it said the answer is not in the sources.
pub fn is_abstention(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    lower.trim().is_empty()
        || lower.contains("not found in the knowledge base")
        || lower.contains("知识库中未找到")
        || lower.contains("知识库中没有")
}

/// Finds `[n]` markers (also `[1, 2]` and `[1][2]`) and returns (byte range, numbers) for each.
fn markers(answer: &str) -> Vec<(std::ops::Range<usize>, Vec<usize>)> {
    let bytes = answer.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            if let Some(close) = answer[i + 1..].find(']') {
                let inner = &answer[i + 1..i + 1 + close];
                let numbers: Option<Vec<usize>> = inner
                    .split(',')
                    .map(|p| p.trim())
                    .map(|p| if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) { p.parse().ok() } else { None })
                    .collect();
                if let Some(numbers) = numbers {
                    out.push((i..i + close + 2, numbers));
                    i += close + 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// The valid source numbers cited, in order of first citation.
pub fn cited_numbers(answer: &str, n_sources: usize) -> Vec<usize> {
    let mut seen = Vec::new();
    for (_, numbers) in markers(answer) {
        for n in numbers {
            if (1..=n_sources).contains(&n) && !seen.contains(&n) {
                seen.push(n);
            }
        }
    }
    seen
}

/// Removes markers that cite no existing source (`[7]` with 3 sources), keeping valid ones.
pub fn remove_invalid_markers(answer: &str, n_sources: usize) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut last = 0;
    for (range, numbers) in markers(answer) {
        let valid: Vec<String> = numbers.iter().filter(|n| (1..=n_sources).contains(*n)).map(|n| n.to_string()).collect();
        out.push_str(&answer[last..range.start]);
        if !valid.is_empty() {
            out.push_str(&format!("[{}]", valid.join(", ")));
        } else {
            while out.ends_with(' ') {
                out.pop();
            }
        }
        last = range.end;
    }
    out.push_str(&answer[last..]);
    out
}

/// Appends `[n]` to each sentence that cites nothing but shares enough content words with a
/// source: at least 3 of them, or half of the sentence's content words when it has fewer than 6.
/// Sentences supported by no source stay uncited.
pub fn attribute_uncited(answer: &str, sources: &[&str]) -> String {
    let source_terms: Vec<HashSet<String>> = sources.iter().map(|s| analyze(s).into_iter().collect()).collect();
    let mut out = String::with_capacity(answer.len() + 16);
    let mut last = 0;
    for span in split_sentences(answer) {
        let sentence = &answer[span.clone()];
        out.push_str(&answer[last..span.end]);
        last = span.end;
        if !markers(sentence).is_empty() {
            continue;
        }
        let terms: HashSet<String> = analyze(sentence).into_iter().collect();
        if terms.is_empty() {
            continue;
        }
        let best = source_terms
            .iter()
            .enumerate()
            .map(|(i, st)| (i, terms.intersection(st).count()))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some((i, shared)) = best {
            let enough = shared >= 3 || (terms.len() < 6 && shared * 2 >= terms.len() && shared > 0);
            if enough {
                // Keep the sentence's final punctuation last: "... 25 days [1]."
                let trimmed = out.trim_end_matches(['.', '。', '!', '?', '！', '？']);
                let punct = out[trimmed.len()..].to_string();
                out.truncate(trimmed.len());
                out.push_str(&format!(" [{}]{punct}", i + 1));
            }
        }
    }
    out.push_str(&answer[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_grouped_and_adjacent_markers() {
        let a = "Leave is 25 days [2]. Trains [1, 3][2] and [x] or [10].";
        assert_eq!(cited_numbers(a, 3), vec![2, 1, 3]);
        assert_eq!(cited_numbers("no citations", 3), Vec::<usize>::new());
    }

    #[test]
    fn invalid_markers_are_removed() {
        assert_eq!(remove_invalid_markers("Fact [1]. Made up [9]. Mixed [2, 9].", 2), "Fact [1]. Made up. Mixed [2].");
    }

    #[test]
    fn uncited_sentences_get_the_supporting_source() {
        let sources = ["Debian uses apt to install packages from repositories.", "员工每年享有二十五天带薪年假。"];
        let out = attribute_uncited("You install packages with apt from the repositories. The sky is blue.", &sources);
        assert_eq!(out, "You install packages with apt from the repositories [1]. The sky is blue.");
        let out = attribute_uncited("员工享有二十五天年假。", &sources);
        assert_eq!(out, "员工享有二十五天年假 [2]。");
        // Already cited sentences are left alone.
        assert_eq!(attribute_uncited("Use apt packages repositories [2].", &sources), "Use apt packages repositories [2].");
    }

    #[test]
    fn abstention_detection() {
        assert!(is_abstention("Not found in the knowledge base."));
        assert!(is_abstention("  "));
        assert!(!is_abstention("Leave is 25 days [1]."));
    }
}
