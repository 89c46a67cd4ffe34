//! Sentences and words, just enough for the extraction patterns.

/// A word with the punctuation that bounds it removed and remembered.
#[derive(Debug, Clone, Copy)]
pub struct Word<'a> {
    pub text: &'a str,
    /// Punctuation before the word (`(`, a quote): nothing before it belongs to its phrase.
    pub opens: bool,
    /// Punctuation after it (`,`, `;`, `)`, a quote): its phrase ends here.
    pub closes: bool,
    /// The first punctuation mark after it (`,` in `Borealis,`).
    pub after: Option<char>,
    /// Wrapped in parentheses of its own: `(Postgres)`.
    pub parenthesised: bool,
    /// Quoted with backticks: code.
    pub backticked: bool,
}

impl Word<'_> {
    pub fn lower(&self) -> String {
        self.text.to_lowercase()
    }
}

const OPENING: &[char] = &['(', '[', '{', '"', '\'', '“', '‘', '`', '<', '«'];
const CLOSING: &[char] = &[')', ']', '}', '"', '\'', '”', '’', '`', '>', '»', ',', ';', ':', '.', '!', '?'];

pub fn words(sentence: &str) -> Vec<Word<'_>> {
    sentence
        .split_whitespace()
        .filter_map(|raw| {
            let backticked = raw.starts_with('`');
            let parenthesised = raw.starts_with('(') && raw.trim_end_matches([',', ';', '.', ':']).ends_with(')');
            let body = raw.trim_start_matches(OPENING);
            let opens = body.len() != raw.len();
            let text = body.trim_end_matches(CLOSING);
            // `apt.conf` keeps its dot, `end.` loses it; `Node.js` is a name.
            let closes = text.len() != body.len();
            let after = body[text.len()..].chars().next();
            (!text.is_empty()).then_some(Word { text, opens, closes, after, parenthesised, backticked })
        })
        .collect()
}

const ABBREVIATIONS: &[&str] =
    &["e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "no", "fig", "cf", "approx", "inc", "ltd", "st"];

/// Sentences of a line of text: split after `.`, `!`, `?` (and their CJK forms) that end a word
/// and are not an abbreviation's dot.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let end = at + c.len_utf8();
        let cut = match c {
            '。' | '！' | '？' | '；' | '\n' => true,
            '.' | '!' | '?' => {
                let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
                let word = text[start..at].rsplit(char::is_whitespace).next().unwrap_or("");
                let abbreviation = c == '.' && ABBREVIATIONS.contains(&word.trim_start_matches(OPENING).to_lowercase().as_str());
                let initial = c == '.' && word.chars().count() == 1 && word.chars().all(char::is_uppercase);
                next_is_space && !abbreviation && !initial
            }
            _ => false,
        };
        if cut {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

pub fn has_cjk(text: &str) -> bool {
    text.chars().any(|c| matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_stops_but_not_at_abbreviations_or_dotted_names() {
        assert_eq!(
            sentences("Atlas uses Node.js, e.g. for the UI. It runs on Debian! 知库是一个系统。它很快"),
            vec!["Atlas uses Node.js, e.g. for the UI.", "It runs on Debian!", "知库是一个系统。", "它很快"]
        );
    }

    #[test]
    fn words_remember_their_punctuation() {
        let w = words("PostgreSQL (Postgres), `apt.conf` end.");
        assert_eq!(w.iter().map(|w| w.text).collect::<Vec<_>>(), vec!["PostgreSQL", "Postgres", "apt.conf", "end"]);
        assert!(w[1].parenthesised && w[1].closes && w[2].backticked && w[3].closes && !w[0].closes);
    }
}
