//! zhiku-core: the vocabulary every other zhiku crate speaks.
//!
//! It owns the types that flow through the pipeline — a parsed document ([`ParsedDocument`]),
//! a [`Chunk`] with its provenance, the access-control types ([`Principal`], [`Caller`]) — and
//! the small traits that the pipeline stages plug into: [`Parser`] (bytes → structured text),
//! [`TokenCounter`] (how long is this text for the embedding model) and [`Embedder`]. It does no
//! I/O, so everything here is cheap to test. [`audit`] holds the audit chain's rules, the same
//! for every backend.
//!
//! Access control is deny-by-default: a [`Caller`] sees a document only if one of its principals
//! is on the document's ACL, except the local administrator who sees everything.
//!
//! ```
//! use zhiku_core::{Caller, Principal};
//!
//! let acl = vec![Principal::parse("group:hr").unwrap()];
//! let alice = Caller::user("alice", ["hr"]).unwrap();
//! let bob = Caller::user("bob", Vec::<String>::new()).unwrap();
//! assert!(alice.can_read(&acl));
//! assert!(!bob.can_read(&acl));
//! assert!(Caller::Admin.can_read(&acl));
//! ```

mod access;
pub mod audit;
pub mod calendar;
mod document;
mod error;
pub mod history;
pub mod password;
mod policy;
pub mod random;

pub use access::{is_valid_name, Caller, Principal, Role};
pub use document::{Block, BlockKind, Chunk, EmbeddedFile, ParsedDocument, StoredChunk};
pub use error::{Error, Result};
pub use policy::{DuplicatePolicy, PiiPolicy};

/// A knowledge base's name is a path component and a URL segment: letters, digits, `_` and `-`,
/// at most 64.
pub fn is_valid_kb_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Turns the bytes of one file into structured text. One implementation per format; a new
/// format touches one file in `zhiku-ingest`.
pub trait Parser: Send + Sync {
    /// Short format name used in reports and errors (`"html"`, `"markdown"`).
    fn format(&self) -> &'static str;
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument>;
}

/// Counts tokens the way the embedding model will see them, so chunks fit its window.
pub trait TokenCounter: Send + Sync {
    fn count_tokens(&self, text: &str) -> usize;
}

/// Maps texts to unit-length vectors whose dot product is their cosine similarity.
pub trait Embedder: TokenCounter {
    fn dimension(&self) -> usize;
    /// Embeds passages (what is stored and searched).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Embeds search queries. Models trained with asymmetric prefixes (e5: "query: " and
    /// "passage: ") embed the two differently; the others alike.
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed(texts)
    }
}

/// A rough counter for places where no model is loaded (tests, estimates): CJK characters count
/// one token each, other words about 1.3 tokens, which is close to WordPiece on English prose.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApproxTokenCounter;

impl TokenCounter for ApproxTokenCounter {
    fn count_tokens(&self, text: &str) -> usize {
        let mut tokens = 0usize;
        let mut word_chars = 0usize;
        let mut words = 0usize;
        for ch in text.chars() {
            if is_cjk(ch) {
                tokens += 1;
                if word_chars > 0 {
                    words += 1;
                    word_chars = 0;
                }
            } else if ch.is_alphanumeric() {
                word_chars += 1;
            } else {
                if word_chars > 0 {
                    words += 1;
                    word_chars = 0;
                }
                if !ch.is_whitespace() {
                    tokens += 1;
                }
            }
        }
        if word_chars > 0 {
            words += 1;
        }
        tokens + (words * 13).div_ceil(10)
    }
}

/// True for characters of the CJK scripts that are written without spaces between words.
pub fn is_cjk(ch: char) -> bool {
    matches!(ch as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F // Extensions B–F, compatibility supplement
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approx_counter_counts_cjk_per_char_and_words() {
        let c = ApproxTokenCounter;
        assert_eq!(c.count_tokens("知识库"), 3);
        assert_eq!(c.count_tokens(""), 0);
        let en = c.count_tokens("the quick brown fox");
        assert!((4..=6).contains(&en), "{en}");
    }

    #[test]
    fn cjk_detection() {
        assert!(is_cjk('知'));
        assert!(!is_cjk('a'));
        assert!(!is_cjk('。'));
    }
}
