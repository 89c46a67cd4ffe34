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

/// Turns references in the model's words — "Document 2 says…", "according to source 1", "文档1" —
/// into `[n]` markers at the end of the sentence, for sentences that have no marker yet.
pub fn mentions_to_markers(answer: &str, n_sources: usize) -> String {
    mark_uncited_sentences(answer, |sentence| {
        let mentioned = mentioned_numbers(sentence, n_sources);
        (!mentioned.is_empty()).then(|| {
            let list: Vec<String> = mentioned.iter().map(usize::to_string).collect();
            format!(" [{}]", list.join(", "))
        })
    })
}

/// Rebuilds `answer`, appending the marker that `mark` returns to each sentence without one.
fn mark_uncited_sentences(answer: &str, mut mark: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(answer.len() + 16);
    let mut last = 0;
    for span in split_sentences(answer) {
        let sentence = &answer[span.clone()];
        out.push_str(&answer[last..span.end]);
        last = span.end;
        if markers(sentence).is_empty() {
            if let Some(marker) = mark(sentence) {
                // Keep the sentence's final punctuation last: "... 25 days [1]."
                insert_before_final_punctuation(&mut out, &marker);
            }
        }
    }
    out.push_str(&answer[last..]);
    out
}

fn mentioned_numbers(sentence: &str, n_sources: usize) -> Vec<usize> {
    let lower = sentence.to_lowercase();
    let mut found = Vec::new();
    for word in ["document", "source", "文档", "来源", "资料"] {
        let mut rest = lower.as_str();
        while let Some(pos) = rest.find(word) {
            rest = &rest[pos + word.len()..];
            let digits: String = rest.trim_start_matches([' ', '#']).chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>() {
                if (1..=n_sources).contains(&n) && !found.contains(&n) {
                    found.push(n);
                }
            }
        }
    }
    found.sort_unstable();
    found
}

fn insert_before_final_punctuation(out: &mut String, marker: &str) {
    let trimmed = out.trim_end_matches(['.', '。', '!', '?', '！', '？']);
    let punct = out[trimmed.len()..].to_string();
    out.truncate(trimmed.len());
    out.push_str(marker);
    out.push_str(&punct);
}

/// Appends `[n]` to each sentence that cites nothing but shares enough content words with a
/// source: at least 3 of them, or half of the sentence's content words when it has fewer than 6.
/// Sentences supported by no source stay uncited.
pub fn attribute_uncited(answer: &str, sources: &[&str]) -> String {
    let source_terms: Vec<HashSet<String>> = sources.iter().map(|s| analyze(s).into_iter().collect()).collect();
    mark_uncited_sentences(answer, |sentence| {
        let terms: HashSet<String> = analyze(sentence).into_iter().collect();
        let (best, shared) = source_terms
            .iter()
            .enumerate()
            .map(|(i, st)| (i, terms.intersection(st).count()))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        let enough = shared >= 3 || (terms.len() < 6 && shared > 0 && shared * 2 >= terms.len());
        enough.then(|| format!(" [{}]", best + 1))
    })
}

/// Line starts that mean a small model has stopped answering and is writing the next turn of the
/// prompt pattern ("Question: …", "Document 3 (…): …") instead of ending its reply.
const RUNAWAY_LINE_STARTS: [&str; 4] = ["Question:", "Document ", "问题：", "问题:"];

/// Filters streamed text, holding back the start of each new line until it is clear that the
/// line does not begin a runaway continuation; once one begins, nothing more is let through.
#[derive(Debug, Default)]
pub struct RunawayGuard {
    held: String,
    stopped: bool,
}

impl RunawayGuard {
    /// Returns the text that is safe to show now, and whether generation should stop.
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.held.push_str(piece);
        let mut out = String::new();
        while let Some(newline) = self.held.find('\n') {
            out.push_str(&self.held[..newline]);
            let rest = self.held[newline..].to_string();
            let line = rest.trim_start_matches('\n');
            if RUNAWAY_LINE_STARTS.iter().any(|p| line.starts_with(p)) {
                self.stopped = true;
                self.held.clear();
                return (out, true);
            }
            if RUNAWAY_LINE_STARTS.iter().any(|p| p.starts_with(line)) {
                // Too short to tell yet.
                self.held = rest;
                return (out, false);
            }
            out.push_str(&rest[..rest.len() - line.len()]);
            self.held = line.to_string();
        }
        out.push_str(&self.held);
        self.held.clear();
        (out, false)
    }

    /// What is still held back once generation has ended.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            String::new()
        } else {
            std::mem::take(&mut self.held)
        }
    }
}

/// Cuts a whole answer where a runaway continuation begins (see [`RunawayGuard`]).
pub fn trim_runaway(answer: &str) -> String {
    let mut guard = RunawayGuard::default();
    let (mut kept, stopped) = guard.push(answer);
    if !stopped {
        kept.push_str(&guard.finish());
    }
    kept.trim_end().to_string()
}

/// The answer when the model's own text is not supported by any source: the sentences of the
/// sources that share the most content words with the question (at most `max_sentences`, from
/// the best-ranked source first), each cited. `None` when no sentence shares a content word.
pub fn extractive_answer(question: &str, sources: &[&str], max_sentences: usize) -> Option<String> {
    let question_terms: HashSet<String> = analyze(question).into_iter().collect();
    let mut scored: Vec<(usize, usize, usize, &str)> = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        for (j, span) in split_sentences(source).into_iter().enumerate() {
            let sentence = &source[span];
            let terms: HashSet<String> = analyze(sentence).into_iter().collect();
            let shared = terms.intersection(&question_terms).count();
            if shared > 0 {
                scored.push((shared, i, j, sentence));
            }
        }
    }
    // Most shared terms first; ties go to the better-ranked source, then to reading order.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut picked: Vec<(usize, usize, &str)> = scored.into_iter().take(max_sentences).map(|(_, i, j, s)| (i, j, s)).collect();
    if picked.is_empty() {
        return None;
    }
    picked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = String::new();
    for (i, _, sentence) in picked {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(sentence);
        insert_before_final_punctuation(&mut out, &format!(" [{}]", i + 1));
    }
    Some(out)
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
    fn mentions_of_documents_become_markers() {
        let a = "Document 2 states that leave is 27 days. According to source 1 and document 3, carry-over is limited. Nothing here. Document 9 is made up.";
        assert_eq!(
            mentions_to_markers(a, 3),
            "Document 2 states that leave is 27 days [2]. According to source 1 and document 3, carry-over is limited [1, 3]. Nothing here. Document 9 is made up."
        );
        assert_eq!(mentions_to_markers("根据文档1，年假为二十七天。", 2), "根据文档1，年假为二十七天 [1]。");
    }

    #[test]
    fn runaway_continuations_are_cut() {
        assert_eq!(trim_runaway("Leave is 27 days [1].\n\nQuestion: How many?"), "Leave is 27 days [1].");
        assert_eq!(trim_runaway("A.\nDocument 3 (x): y"), "A.");
        assert_eq!(trim_runaway("Document 1 says A."), "Document 1 says A.");
    }

    #[test]
    fn streamed_runaway_is_held_back_and_stops_generation() {
        let mut guard = RunawayGuard::default();
        let mut shown = String::new();
        let mut stopped = false;
        for piece in ["Leave is 27", " days [1].", "\n", "\nQues", "tion: How many", " days?"] {
            let (emit, stop) = guard.push(piece);
            shown.push_str(&emit);
            if stop {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(shown, "Leave is 27 days [1].");

        let mut guard = RunawayGuard::default();
        let mut shown = String::new();
        for piece in ["Line one.\nDo", "cuments are fine", " here.\nEnd"] {
            let (emit, stop) = guard.push(piece);
            assert!(!stop);
            shown.push_str(&emit);
        }
        shown.push_str(&guard.finish());
        assert_eq!(shown, "Line one.\nDocuments are fine here.\nEnd");
    }

    #[test]
    fn extractive_answer_picks_the_sentences_that_match_the_question() {
        let sources = [
            "Passwords must be at least 14 characters long. Every account uses two-factor authentication.",
            "Report lost devices to the security desk at extension 4444. The desk is staffed around the clock.",
        ];
        assert_eq!(
            extractive_answer("How long must passwords be?", &sources, 1).unwrap(),
            "Passwords must be at least 14 characters long [1]."
        );
        assert_eq!(
            extractive_answer("Who do I call about lost devices?", &sources, 1).unwrap(),
            "Report lost devices to the security desk at extension 4444 [2]."
        );
        let zh = ["全职员工每个日历年享有二十七天带薪年假。报销申请须在消费后三十天内提交。"];
        assert_eq!(extractive_answer("年假有多少天？", &zh, 1).unwrap(), "全职员工每个日历年享有二十七天带薪年假 [1]。");
        assert_eq!(extractive_answer("quantum chromodynamics", &sources, 2), None);
    }

    #[test]
    fn abstention_detection() {
        assert!(is_abstention("Not found in the knowledge base."));
        assert!(is_abstention("  "));
        assert!(!is_abstention("Leave is 25 days [1]."));
    }
}
