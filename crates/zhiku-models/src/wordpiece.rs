//! Token counting for BERT WordPiece tokenizers without the `tokenizers` pipeline.
//!
//! Chunking asks "how many tokens is this sentence?" for every sentence of every document. The
//! `tokenizers` crate answers by building aligned normalised strings and token structs — the
//! right tool for encoding, and most of the time of a parse-only ingest when used for counting.
//! This counter follows the same steps as HuggingFace's `BertNormalizer` + `BertPreTokenizer` +
//! `WordPiece` (https://github.com/huggingface/tokenizers/tree/main/tokenizers/src, files
//! `normalizers/bert.rs`, `pre_tokenizers/bert.rs`, `models/wordpiece/mod.rs`) and only counts.
//! It is built only from a `tokenizer.json` with exactly that pipeline; the parity test checks it
//! against `tokenizers` on real text.

use std::collections::HashSet;

use serde_json::Value;
use unicode_categories::UnicodeCategories;
use unicode_normalization::char::decompose_canonical;

pub(crate) struct FastWordPiece {
    vocab: HashSet<String>,
    prefix: String,
    max_chars: usize,
    clean_text: bool,
    chinese_chars: bool,
    strip_accents: bool,
    lowercase: bool,
    /// Special tokens matched verbatim in the raw text, each one token.
    added: Vec<String>,
}

impl FastWordPiece {
    /// `None` unless the tokenizer is exactly BertNormalizer + BertPreTokenizer + WordPiece with
    /// verbatim special tokens.
    pub fn from_tokenizer_json(json: &Value) -> Option<Self> {
        let normalizer = json.get("normalizer")?;
        let model = json.get("model")?;
        if normalizer.get("type")?.as_str()? != "BertNormalizer"
            || json.get("pre_tokenizer")?.get("type")?.as_str()? != "BertPreTokenizer"
            || model.get("type")?.as_str()? != "WordPiece"
        {
            return None;
        }
        let mut added = Vec::new();
        for token in json.get("added_tokens")?.as_array()? {
            let flag = |name: &str| token.get(name).and_then(Value::as_bool).unwrap_or(false);
            if flag("normalized") || flag("single_word") || flag("lstrip") || flag("rstrip") {
                return None;
            }
            added.push(token.get("content")?.as_str()?.to_string());
        }
        let flag = |name: &str| normalizer.get(name).and_then(Value::as_bool);
        let lowercase = flag("lowercase")?;
        Some(Self {
            vocab: model.get("vocab")?.as_object()?.keys().cloned().collect(),
            prefix: model.get("continuing_subword_prefix")?.as_str()?.to_string(),
            max_chars: model.get("max_input_chars_per_word")?.as_u64()? as usize,
            clean_text: flag("clean_text")?,
            chinese_chars: flag("handle_chinese_chars")?,
            strip_accents: flag("strip_accents").unwrap_or(lowercase),
            lowercase,
            added,
        })
    }

    pub fn count(&self, text: &str) -> usize {
        let mut total = 0;
        let mut rest = text;
        loop {
            let next = self.added.iter().filter_map(|a| rest.find(a.as_str()).map(|at| (at, a.len()))).min();
            match next {
                Some((at, len)) => {
                    total += self.count_plain(&rest[..at]) + 1;
                    rest = &rest[at + len..];
                }
                None => return total + self.count_plain(rest),
            }
        }
    }

    fn count_plain(&self, text: &str) -> usize {
        let mut count = 0;
        let mut word = String::new();
        let mut scratch = String::new();
        let mut emit = |c: char, word: &mut String, count: &mut usize| {
            if c.is_whitespace() {
                *count += self.word_tokens(word, &mut scratch);
                word.clear();
            } else if c.is_ascii_punctuation() || c.is_punctuation() {
                *count += self.word_tokens(word, &mut scratch);
                word.clear();
                word.push(c);
                *count += self.word_tokens(word, &mut scratch);
                word.clear();
            } else {
                word.push(c);
            }
        };
        for c in text.chars() {
            if self.clean_text && (c == '\0' || c == '\u{fffd}' || is_control(c)) {
                continue;
            }
            let c = if self.clean_text && is_whitespace(c) { ' ' } else { c };
            let isolated = self.chinese_chars && is_chinese_char(c);
            if isolated {
                emit(' ', &mut word, &mut count);
            }
            let mut after_accents = |d: char| {
                if self.strip_accents && d.is_mark_nonspacing() {
                    return;
                }
                if self.lowercase {
                    for l in d.to_lowercase() {
                        emit(l, &mut word, &mut count);
                    }
                } else {
                    emit(d, &mut word, &mut count);
                }
            };
            if self.strip_accents {
                decompose_canonical(c, &mut after_accents);
            } else {
                after_accents(c);
            }
            if isolated {
                emit(' ', &mut word, &mut count);
            }
        }
        count + self.word_tokens(&word, &mut scratch)
    }

    /// Greedy longest-match-first, as WordPiece does; a word it cannot cover is one `[UNK]`.
    fn word_tokens(&self, word: &str, scratch: &mut String) -> usize {
        if word.is_empty() {
            return 0;
        }
        if word.chars().count() > self.max_chars {
            return 1;
        }
        let mut pieces = 0;
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = false;
            while start < end {
                let piece = if start > 0 {
                    scratch.clear();
                    scratch.push_str(&self.prefix);
                    scratch.push_str(&word[start..end]);
                    scratch.as_str()
                } else {
                    &word[start..end]
                };
                if self.vocab.contains(piece) {
                    found = true;
                    break;
                }
                end -= word[start..end].chars().last().map_or(1, char::len_utf8);
            }
            if !found {
                return 1;
            }
            pieces += 1;
            start = end;
        }
        pieces
    }
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}
