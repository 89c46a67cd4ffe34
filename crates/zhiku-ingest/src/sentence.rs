use std::ops::Range;

/// Splits text into sentences, returned as byte ranges with surrounding whitespace trimmed.
///
/// Chinese and Japanese end sentences with 。！？ (and, after NFKC, ASCII `!` `?`) with no space
/// after them; English ends them with `.`, `!` or `?` followed by whitespace. A `.` with no space
/// after it (`3.14`, `e.g.x`, `example.com`) does not end a sentence. Closing quotes and brackets
/// stay with the sentence they close.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = 0usize;
    let mut iter = text.char_indices().peekable();
    while let Some((i, ch)) = iter.next() {
        let ends = match ch {
            '。' | '！' | '？' | '!' | '?' | '．' | '…' => true,
            // A paragraph break inside a block always ends the sentence.
            '\n' => matches!(iter.peek(), Some((_, '\n'))),
            '.' | ';' | '；' => match iter.peek() {
                None => true,
                Some((_, next)) => next.is_whitespace() || (ch != '.' && zhiku_core::is_cjk(*next)),
            },
            _ => false,
        };
        if !ends {
            continue;
        }
        let mut end = i + ch.len_utf8();
        while let Some(&(j, next)) = iter.peek() {
            if is_closing(next) || matches!(next, '。' | '！' | '？' | '!' | '?' | '…') {
                end = j + next.len_utf8();
                iter.next();
            } else {
                break;
            }
        }
        push_trimmed(text, start..end, &mut spans);
        start = end;
    }
    push_trimmed(text, start..text.len(), &mut spans);
    spans
}

fn is_closing(ch: char) -> bool {
    matches!(ch, '"' | '\'' | ')' | ']' | '”' | '’' | '）' | '」' | '』' | '】' | '》')
}

fn push_trimmed(text: &str, range: Range<usize>, spans: &mut Vec<Range<usize>>) {
    let piece = &text[range.clone()];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead + trail < piece.len() {
        spans.push(range.start + lead..range.end - trail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        split_sentences(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn english_sentences_keep_decimals_and_domains() {
        assert_eq!(
            sentences("Pi is 3.14 roughly. See example.com for more!  Really? Yes."),
            vec!["Pi is 3.14 roughly.", "See example.com for more!", "Really?", "Yes."]
        );
    }

    #[test]
    fn chinese_sentences_split_without_spaces() {
        assert_eq!(
            sentences("知库是一个知识库。它在本地运行！真的吗？“是的。”结束"),
            vec!["知库是一个知识库。", "它在本地运行！", "真的吗？", "“是的。”", "结束"]
        );
    }

    #[test]
    fn nfkc_punctuation_and_ellipsis_runs() {
        assert_eq!(sentences("你好!再见?!好的"), vec!["你好!", "再见?!", "好的"]);
        assert_eq!(sentences("Wait... what"), vec!["Wait...", "what"]);
    }

    #[test]
    fn empty_and_whitespace() {
        assert!(split_sentences("").is_empty());
        assert!(split_sentences("   ").is_empty());
    }
}
