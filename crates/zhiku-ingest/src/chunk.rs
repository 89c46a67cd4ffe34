//! Structure-aware chunking.
//!
//! A chunk never crosses a heading: each section (the blocks under one heading path) is chunked
//! on its own. Inside a section, text is cut at sentence boundaries and preformatted blocks at
//! line boundaries, packed greedily up to `max_tokens`, and each new chunk repeats the tail of
//! the previous one up to `overlap_tokens` so that a fact straddling a cut is still retrievable.
//! A single sentence longer than the budget is cut at word (or, for CJK, character) boundaries.
//! Records and tables are chunked on their own, without overlap; a table is cut between rows and
//! every piece repeats its header row (the chunk's offsets then cover the rows it holds).

use std::ops::Range;

use zhiku_core::{BlockKind, Chunk, ParsedDocument, TokenCounter};

use crate::sentence::split_sentences;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Upper bound on a chunk's tokens as the embedding model counts them (the heading path that
    /// is prepended at embedding time is not included; keep headroom below the model's window).
    pub max_tokens: usize,
    /// Tokens of trailing context repeated at the start of the next chunk of the same section.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self { max_tokens: 200, overlap_tokens: 32 }
    }
}

/// A piece of a section that is never split further: a sentence or a preformatted line.
struct Unit {
    /// Byte range into the document's full text.
    bytes: Range<usize>,
    tokens: usize,
    page: Option<u32>,
}

pub fn chunk_document(doc: &ParsedDocument, config: &ChunkConfig, counter: &dyn TokenCounter) -> Vec<Chunk> {
    chunk_with_text(doc, &doc.full_text(), config, counter)
}

/// [`chunk_document`] for a caller that has the document's [`ParsedDocument::full_text`]
/// already (a large document's text is not built twice).
pub fn chunk_with_text(doc: &ParsedDocument, full: &str, config: &ChunkConfig, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let max_tokens = config.max_tokens.max(8);
    let overlap = config.overlap_tokens.min(max_tokens / 2);
    let mut chunks = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut section: Vec<Unit> = Vec::new();
    let mut offset = 0usize;

    for (i, block) in doc.blocks.iter().enumerate() {
        if i > 0 {
            offset += 2; // the "\n\n" separator of full_text
        }
        let range = offset..offset + block.text.len();
        offset = range.end;
        match block.kind {
            BlockKind::Heading(level) => {
                emit_section(full, &mut section, &headings, max_tokens, overlap, &mut chunks);
                headings.retain(|(l, _)| *l < level);
                headings.push((level, block.text.replace('\n', " ")));
            }
            BlockKind::Text => {
                for s in split_sentences(&block.text) {
                    let bytes = range.start + s.start..range.start + s.end;
                    push_unit(full, bytes, block.page, max_tokens, counter, &mut section);
                }
            }
            BlockKind::Record => {
                // A record stands alone: close the running section, chunk the record by itself.
                emit_section(full, &mut section, &headings, max_tokens, overlap, &mut chunks);
                push_lines(full, range, block.page, max_tokens, counter, &mut section);
                if section.iter().map(|u| u.tokens).sum::<usize>() > max_tokens {
                    // Cut between its fields, every piece keeps the record's short fields (a
                    // poem's title and author, a ticket's subject) in its heading path, instead
                    // of one piece holding them alone and the others not saying whose they are.
                    let identity = take_identity(full, &mut section, max_tokens / 4);
                    let mut with_identity = headings.clone();
                    with_identity.extend(identity.map(|i| (u8::MAX, i)));
                    emit_section(full, &mut section, &with_identity, max_tokens, 0, &mut chunks);
                } else {
                    emit_section(full, &mut section, &headings, max_tokens, 0, &mut chunks);
                }
            }
            BlockKind::Preformatted => push_lines(full, range, block.page, max_tokens, counter, &mut section),
            BlockKind::Table => {
                emit_section(full, &mut section, &headings, max_tokens, overlap, &mut chunks);
                chunk_table(full, range, block.page, &headings, max_tokens, counter, &mut chunks);
            }
        }
    }
    emit_section(full, &mut section, &headings, max_tokens, overlap, &mut chunks);
    bytes_to_char_offsets(full, &mut chunks);
    chunks
}

/// Chunks are emitted with byte offsets; counting characters from the start for each one would
/// make chunking quadratic in the document's length. One sweep converts them all.
fn bytes_to_char_offsets(full: &str, chunks: &mut [Chunk]) {
    let mut offsets: Vec<usize> = chunks.iter().flat_map(|c| [c.char_start, c.char_end]).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut chars_at = Vec::with_capacity(offsets.len());
    let (mut byte, mut chars) = (0usize, 0usize);
    for &target in &offsets {
        chars += full[byte..target].chars().count();
        byte = target;
        chars_at.push(chars);
    }
    let to_chars = |b: usize| offsets.binary_search(&b).map(|i| chars_at[i]).unwrap_or(0);
    for c in chunks {
        c.char_start = to_chars(c.char_start);
        c.char_end = to_chars(c.char_end);
    }
}

/// Rows packed up to the budget left after the header (header row and separator line), which
/// starts every chunk. A header too long to repeat is kept once, like any other line.
fn chunk_table(
    full: &str,
    range: Range<usize>,
    page: Option<u32>,
    headings: &[(u8, String)],
    max_tokens: usize,
    counter: &dyn TokenCounter,
    chunks: &mut Vec<Chunk>,
) {
    let text = &full[range.clone()];
    let header_end = text.match_indices('\n').nth(1).map(|(i, _)| range.start + i);
    let header_tokens = header_end.map(|end| counter.count_tokens(&full[range.start..end]));
    let mut rows = Vec::new();
    match (header_end, header_tokens) {
        (Some(end), Some(tokens)) if tokens <= max_tokens / 2 => {
            let header = range.start..end;
            push_lines(full, end + 1..range.end, page, max_tokens - tokens, counter, &mut rows);
            if rows.is_empty() {
                push_lines(full, header.clone(), page, max_tokens, counter, &mut rows);
                emit_units(full, &mut rows, headings, max_tokens, 0, None, chunks);
            } else {
                emit_units(full, &mut rows, headings, max_tokens - tokens, 0, Some(header), chunks);
            }
        }
        _ => {
            push_lines(full, range, page, max_tokens, counter, &mut rows);
            emit_units(full, &mut rows, headings, max_tokens, 0, None, chunks);
        }
    }
}

/// Lines of a preformatted block or record as units: a line is never split unless it alone is
/// over the budget.
fn push_lines(full: &str, range: Range<usize>, page: Option<u32>, max_tokens: usize, counter: &dyn TokenCounter, out: &mut Vec<Unit>) {
    let mut line_start = range.start;
    for line in full[range.clone()].split_inclusive('\n') {
        let bytes = line_start..line_start + line.trim_end().len();
        line_start += line.len();
        if !full[bytes.clone()].trim().is_empty() {
            push_unit(full, bytes, page, max_tokens, counter, out);
        }
    }
}

/// Fields of at most this many tokens name a record rather than tell its content.
const IDENTITY_FIELD_TOKENS: usize = 24;

/// Removes a split record's short fields from its units and returns them as one line
/// (`title: … · author: …`), within `budget` tokens; opaque ids (`id`, `…_id`) stay content.
fn take_identity(full: &str, units: &mut Vec<Unit>, budget: usize) -> Option<String> {
    let mut parts = Vec::new();
    let mut spent = 0usize;
    units.retain(|u| {
        let field = full[u.bytes.clone()].trim();
        let name = field.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        let named = field.contains(':') && !name.is_empty() && name.len() <= 32;
        let opaque = name == "id" || name.ends_with("_id") || name.ends_with("-id");
        if named && !opaque && u.tokens <= IDENTITY_FIELD_TOKENS && spent + u.tokens <= budget {
            spent += u.tokens;
            parts.push(field.to_string());
            false
        } else {
            true
        }
    });
    // Nothing left to carry them: the record keeps its fields as text.
    if units.is_empty() || parts.is_empty() {
        return None;
    }
    Some(parts.join(" · "))
}

fn push_unit(full: &str, bytes: Range<usize>, page: Option<u32>, max_tokens: usize, counter: &dyn TokenCounter, out: &mut Vec<Unit>) {
    let tokens = counter.count_tokens(&full[bytes.clone()]);
    if tokens <= max_tokens {
        out.push(Unit { bytes, tokens, page });
        return;
    }
    // Too long for one chunk: cut at word boundaries (every CJK character is one), taking as
    // many words as fit. A galloping search (1, 2, 4… words, then halving) keeps each piece's
    // tokenizer calls logarithmic and never counts much more text than the piece itself, so a
    // huge unit costs linear time, not quadratic.
    let text = &full[bytes.clone()];
    let cuts = word_boundaries(text);
    let fits = |from: usize, to: usize| counter.count_tokens(&text[cuts[from]..cuts[to]]) <= max_tokens;
    let last = cuts.len() - 1;
    let mut from = 0usize;
    while from < last {
        let mut step = 1;
        let mut lo = from + 1;
        while lo + step <= last && fits(from, lo + step) {
            lo += step;
            step *= 2;
        }
        // The answer now lies in lo..=hi.
        let mut hi = if lo + step <= last {
            lo + step - 1
        } else if fits(from, last) {
            lo = last;
            last
        } else {
            last - 1
        };
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(from, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let piece = cuts[from]..cuts[lo];
        let trimmed = trim_range(text, piece);
        if !trimmed.is_empty() {
            let tokens = counter.count_tokens(&text[trimmed.clone()]);
            out.push(Unit { bytes: bytes.start + trimmed.start..bytes.start + trimmed.end, tokens, page });
        }
        from = lo;
    }
}

/// Byte offsets where a piece may start or end: text start and end, after each whitespace run,
/// around each CJK character, and every 64 characters of a run with no other boundary (a base64
/// blob still has to be cut somewhere).
fn word_boundaries(text: &str) -> Vec<usize> {
    let mut cuts = vec![0];
    let mut prev_space = false;
    let mut since_cut = 0usize;
    for (i, ch) in text.char_indices() {
        let space = ch.is_whitespace();
        if zhiku_core::is_cjk(ch) || (prev_space && !space) || since_cut >= 64 {
            cuts.push(i);
            since_cut = 0;
        }
        since_cut += 1;
        if zhiku_core::is_cjk(ch) {
            cuts.push(i + ch.len_utf8());
            since_cut = 0;
        }
        prev_space = space;
    }
    cuts.push(text.len());
    cuts.dedup();
    cuts
}

fn trim_range(text: &str, r: Range<usize>) -> Range<usize> {
    let piece = &text[r.clone()];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead + trail >= piece.len() {
        return r.start..r.start;
    }
    r.start + lead..r.end - trail
}

fn emit_section(full: &str, units: &mut Vec<Unit>, headings: &[(u8, String)], max_tokens: usize, overlap: usize, chunks: &mut Vec<Chunk>) {
    emit_units(full, units, headings, max_tokens, overlap, None, chunks)
}

/// Packs units greedily into chunks. With a `header` (a table's), the first chunk starts at the
/// header and every later one gets it prepended.
fn emit_units(
    full: &str,
    units: &mut Vec<Unit>,
    headings: &[(u8, String)],
    max_tokens: usize,
    overlap: usize,
    header: Option<Range<usize>>,
    chunks: &mut Vec<Chunk>,
) {
    if units.is_empty() {
        return;
    }
    let heading_path: Vec<String> = headings.iter().map(|(_, h)| h.clone()).collect();
    let mut start = 0usize;
    while start < units.len() {
        let mut end = start;
        let mut tokens = 0usize;
        while end < units.len() && (end == start || tokens + units[end].tokens <= max_tokens) {
            tokens += units[end].tokens;
            end += 1;
        }
        let mut bytes = units[start].bytes.start..units[end - 1].bytes.end;
        let text = match &header {
            Some(h) if start == 0 => {
                bytes.start = h.start;
                full[bytes.clone()].to_string()
            }
            Some(h) => format!("{}\n{}", &full[h.clone()], &full[bytes.clone()]),
            None => full[bytes.clone()].to_string(),
        };
        chunks.push(Chunk {
            ordinal: chunks.len() as u32,
            heading_path: heading_path.clone(),
            text,
            // Byte offsets for now; chunk_document converts them all in one pass.
            char_start: bytes.start,
            char_end: bytes.end,
            page: units[start].page,
        });
        if end >= units.len() {
            break;
        }
        // Step back over whole units for the overlap, but always make progress.
        let mut next = end;
        let mut carried = 0usize;
        while next > start + 1 && carried + units[next - 1].tokens <= overlap {
            carried += units[next - 1].tokens;
            next -= 1;
        }
        start = next;
    }
    units.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::{ApproxTokenCounter, Block};

    fn config(max_tokens: usize, overlap_tokens: usize) -> ChunkConfig {
        ChunkConfig { max_tokens, overlap_tokens }
    }

    fn check_provenance(doc: &ParsedDocument, chunks: &[Chunk]) {
        let full: Vec<char> = doc.full_text().chars().collect();
        for c in chunks {
            let slice: String = full[c.char_start..c.char_end].iter().collect();
            assert_eq!(slice, c.text, "offsets must point at the chunk's text");
        }
    }

    #[test]
    fn chunks_respect_headings_and_keep_heading_path() {
        let doc = ParsedDocument {
            title: None,
            embedded: Vec::new(),
            blocks: vec![
                Block::heading(1, "Handbook"),
                Block::text("Intro sentence."),
                Block::heading(2, "Leave"),
                Block::text("Staff get 25 days."),
                Block::heading(2, "Travel"),
                Block::text("Book trains early."),
            ],
        };
        let chunks = chunk_document(&doc, &config(100, 10), &ApproxTokenCounter);
        let paths: Vec<_> = chunks.iter().map(|c| c.heading_path.join(" > ")).collect();
        assert_eq!(paths, vec!["Handbook", "Handbook > Leave", "Handbook > Travel"]);
        assert_eq!(chunks[1].text, "Staff get 25 days.");
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn english_chunks_are_bounded_cut_at_sentences_and_overlap() {
        let sentences: Vec<String> = (0..40).map(|i| format!("Sentence number {i} talks about topic {i}.")).collect();
        let doc = ParsedDocument { title: None, blocks: vec![Block::text(sentences.join(" "))], ..Default::default() };
        let counter = ApproxTokenCounter;
        let chunks = chunk_document(&doc, &config(40, 12), &counter);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(counter.count_tokens(&c.text) <= 40, "chunk too long: {}", c.text);
            assert!(c.text.starts_with("Sentence number"), "cut mid-sentence: {}", c.text);
            assert!(c.text.ends_with('.'), "cut mid-sentence: {}", c.text);
        }
        for pair in chunks.windows(2) {
            assert!(pair[1].char_start < pair[0].char_end, "expected overlap between consecutive chunks");
        }
        let last = chunks.last().unwrap();
        assert!(last.text.ends_with("topic 39."));
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn chinese_chunks_cut_at_chinese_punctuation() {
        let text = "知库在本地运行大语言模型。文档不会离开公司网络！用户只能看到有权限的文档？是的，访问控制在检索内部执行。".repeat(6);
        let doc = ParsedDocument { title: None, blocks: vec![Block::text(text)], ..Default::default() };
        let counter = ApproxTokenCounter;
        let chunks = chunk_document(&doc, &config(50, 10), &counter);
        assert!(chunks.len() >= 4);
        for c in &chunks {
            assert!(counter.count_tokens(&c.text) <= 50);
            let last = c.text.chars().last().unwrap();
            assert!(matches!(last, '。' | '！' | '？'), "chunk does not end at a sentence: {}", c.text);
        }
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn cutting_a_huge_sentence_counts_each_part_of_it_a_few_times_only() {
        struct Counting(std::sync::atomic::AtomicUsize);
        impl TokenCounter for Counting {
            fn count_tokens(&self, text: &str) -> usize {
                self.0.fetch_add(text.len(), std::sync::atomic::Ordering::Relaxed);
                ApproxTokenCounter.count_tokens(text)
            }
        }
        // One 200 kB "sentence" (no full stop): cut into ~1,700 pieces.
        let words = vec!["lorem"; 40_000].join(" ");
        let doc = ParsedDocument { title: None, blocks: vec![Block::text(words.clone())], ..Default::default() };
        let counter = Counting(Default::default());
        let chunks = chunk_document(&doc, &config(30, 0), &counter);
        assert!(chunks.len() > 1000);
        let counted = counter.0.load(std::sync::atomic::Ordering::Relaxed);
        // Searching from each cut to the end of the text would count ~1,700 × 100 kB.
        assert!(counted < 40 * words.len(), "counted {counted} bytes for a {} byte text", words.len());
    }

    #[test]
    fn overlong_sentence_is_cut_at_word_boundaries() {
        let words = vec!["alpha"; 300].join(" ");
        let doc = ParsedDocument { title: None, blocks: vec![Block::text(words)], ..Default::default() };
        let counter = ApproxTokenCounter;
        let chunks = chunk_document(&doc, &config(30, 0), &counter);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(counter.count_tokens(&c.text) <= 30);
            assert!(c.text.split(' ').all(|w| w == "alpha"), "word was cut: {}", c.text);
        }
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn every_piece_of_a_split_record_says_whose_it_is() {
        let verses = "Drink, my friend, the river runs to the sea and never comes back. ".repeat(12);
        let record = format!("author: Li Bai\nparagraphs: {verses}\ntitle: Bring in the Wine\nid: 0167687e-8325");
        let doc =
            ParsedDocument { title: None, embedded: Vec::new(), blocks: vec![Block::heading(1, "Tang poems"), Block::record(&record)] };
        let chunks = chunk_document(&doc, &config(80, 0), &ApproxTokenCounter);
        assert!(chunks.len() >= 3, "{chunks:?}");
        for c in &chunks {
            assert_eq!(c.heading_path, vec!["Tang poems", "author: Li Bai · title: Bring in the Wine"], "{c:?}");
            assert!(!c.text.starts_with("author:") && !c.text.starts_with("title:"), "a field alone: {}", c.text);
        }
        assert!(chunks.iter().any(|c| c.text.contains("id: 0167687e")), "an opaque id stays in the text");
        check_provenance(&doc, &chunks);

        // A record that fits keeps its fields as text and no extra heading.
        let short = ParsedDocument { title: None, embedded: Vec::new(), blocks: vec![Block::record("author: Li Bai\ntitle: Quiet Night")] };
        let chunks = chunk_document(&short, &config(40, 0), &ApproxTokenCounter);
        assert_eq!((chunks.len(), chunks[0].heading_path.len()), (1, 0));
    }

    #[test]
    fn each_record_is_its_own_chunk() {
        let doc = ParsedDocument {
            title: None,
            embedded: Vec::new(),
            blocks: vec![
                Block::text("Staff list."),
                Block::record("name: Alice\ncity: Paris"),
                Block::record("name: Bob\ncity: Berlin"),
                Block::text("End of list."),
            ],
        };
        let chunks = chunk_document(&doc, &config(100, 20), &ApproxTokenCounter);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["Staff list.", "name: Alice\ncity: Paris", "name: Bob\ncity: Berlin", "End of list."]);
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn preformatted_lines_are_never_split() {
        let table = (0..30).map(|i| format!("| row {i} | value {i} |")).collect::<Vec<_>>().join("\n");
        let doc = ParsedDocument { title: None, blocks: vec![Block::preformatted(table)], ..Default::default() };
        let chunks = chunk_document(&doc, &config(40, 0), &ApproxTokenCounter);
        assert!(chunks.len() > 1);
        for c in &chunks {
            for line in c.text.lines() {
                assert!(line.starts_with("| row") && line.ends_with('|'), "row split: {line}");
            }
        }
        check_provenance(&doc, &chunks);
    }

    #[test]
    fn table_chunks_repeat_the_header_and_never_split_rows() {
        let mut rows = vec![vec!["Name".to_string(), "Office".to_string()]];
        rows.extend((0..40).map(|i| vec![format!("person {i}"), format!("room {i}")]));
        let doc = ParsedDocument {
            title: None,
            embedded: Vec::new(),
            blocks: vec![Block::text("Before."), Block::table(&rows), Block::text("After.")],
        };
        let chunks = chunk_document(&doc, &config(40, 10), &ApproxTokenCounter);
        let table: Vec<&Chunk> = chunks.iter().filter(|c| c.text.contains("| Name")).collect();
        assert!(table.len() > 2, "{chunks:#?}");
        let full: Vec<char> = doc.full_text().chars().collect();
        let mut seen = Vec::new();
        for c in &table {
            let mut lines = c.text.lines();
            assert_eq!(lines.next(), Some("| Name | Office |"));
            assert_eq!(lines.next(), Some("| --- | --- |"));
            for line in lines {
                assert!(line.starts_with("| person ") && line.ends_with(" |"), "row split: {line}");
                seen.push(line.to_string());
            }
            // The offsets cover the rows; the text ends with exactly those rows.
            let covered: String = full[c.char_start..c.char_end].iter().collect();
            assert!(c.text.ends_with(covered.trim_start_matches("| Name | Office |\n| --- | --- |\n")), "{covered}");
        }
        assert_eq!(seen.len(), 40, "every row once, no overlap between table chunks");
        assert_eq!(chunks.first().map(|c| c.text.as_str()), Some("Before."));
        assert_eq!(chunks.last().map(|c| c.text.as_str()), Some("After."));
    }
}
