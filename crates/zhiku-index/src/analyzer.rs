use std::sync::LazyLock;

use jieba_rs::Jieba;
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer};

/// jieba's dictionary takes a moment to load; share one instance across every index.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Segments mixed Chinese/English text with jieba in search mode (long words also yield their
/// dictionary sub-words, so 中华人民共和国 matches 共和国), keeping only tokens with a letter
/// or digit.
#[derive(Clone, Default)]
pub struct JiebaTokenizer;

pub struct JiebaTokenStream {
    tokens: Vec<Token>,
    index: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream {
        let tokens = JIEBA
            .cut_for_search(text, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .enumerate()
            .map(|(position, t)| Token {
                offset_from: t.byte_start,
                offset_to: t.byte_end,
                position,
                text: t.word.to_string(),
                position_length: 1,
            })
            .collect();
        JiebaTokenStream { tokens, index: 0 }
    }
}

impl TokenStream for JiebaTokenStream {
    fn advance(&mut self) -> bool {
        if self.index < self.tokens.len() {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

/// The analyzer used for both indexing and querying.
pub(crate) fn text_analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(JiebaTokenizer).filter(RemoveLongFilter::limit(64)).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter(stop).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

/// The index terms of a text, in order (for tests, debugging and query building).
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = text_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_segmented_into_words() {
        let terms = analyze("我们使用知识库来管理公司文档");
        for expected in ["我们", "使用", "知识", "知识库", "管理", "公司", "文档"] {
            assert!(terms.contains(&expected.to_string()), "missing {expected} in {terms:?}");
        }
        // Not one token per character and not the whole sentence as one token.
        assert!(terms.len() < 15, "{terms:?}");
        assert!(!terms.iter().any(|t| t.chars().count() > 4), "{terms:?}");
    }

    #[test]
    fn search_mode_yields_sub_words() {
        let terms = analyze("中华人民共和国");
        assert!(terms.contains(&"共和国".to_string()), "{terms:?}");
    }

    #[test]
    fn english_is_lowercased_stemmed_and_stopped() {
        assert_eq!(analyze("The Running Dogs, and a Cat!"), vec!["run", "dog", "cat"]);
    }

    #[test]
    fn mixed_text_keeps_both_scripts() {
        let terms = analyze("在Debian上安装PostgreSQL数据库");
        assert!(terms.contains(&"debian".to_string()), "{terms:?}");
        assert!(terms.contains(&"postgresql".to_string()), "{terms:?}");
        assert!(terms.contains(&"数据库".to_string()), "{terms:?}");
    }
}
