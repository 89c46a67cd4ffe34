//! The fast WordPiece counter against the `tokenizers` pipeline it stands in for: the same count
//! for every line of real English and Chinese documents (the Debian Reference HTML, markup and
//! all) and for the corners of BERT normalisation.

mod common;

use std::path::PathBuf;

use zhiku_core::TokenCounter;
use zhiku_models::WordPieceCounter;

fn debian_reference() -> PathBuf {
    std::env::var_os("ZHIKU_TEST_DEBIAN_REFERENCE")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_DEBIAN_REFERENCE is not set: run the tests through scripts/test.sh")
}

#[test]
fn fast_counts_equal_tokenizers_counts() {
    let counter = WordPieceCounter::load(&common::models_dir().join("all-MiniLM-L6-v2")).unwrap();
    assert!(counter.is_fast(), "all-MiniLM's tokenizer is plain BERT WordPiece");
    let mut lines: Vec<String> = [
        "Café Ñandú naïve façade",
        "İstanbul ǅemal ﬁnance ﬂow Straße",
        "[CLS] hello [SEP] world [MASK][UNK]",
        "emoji 🚀🎉 and zero\u{200b}width and soft\u{ad}hyphen",
        "control\u{1}chars\u{7f} and \u{fffd} and \u{0} nul",
        "全角标点，。！？「」『』（）",
        "ひらがなカタカナ 한국어 العربية हिन्दी ไทย",
        "e\u{301}\u{323} stacked combining marks",
        "unbelievablyunbelievablyunbelievablyunbelievablyunbelievablyunbelievablyunbelievablyunbelievablyunbelievablyx",
        "x1234567890abcdefghijklmnopqrstuvwxyz the gcc-12 --with-arch=x86-64-v3 flag",
        "",
        "   \t\n  ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for name in ["ch01.en.html", "ch04.en.html", "ch01.zh-cn.html", "ch04.zh-cn.html"] {
        let text = std::fs::read_to_string(debian_reference().join(name)).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    assert!(lines.len() > 5000, "{} lines", lines.len());
    let mut mismatches = Vec::new();
    for line in &lines {
        let (fast, reference) = (counter.count_tokens(line), counter.count_with_tokenizers(line));
        if fast != reference {
            mismatches.push(format!("{fast} != {reference}: {line:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} lines differ: {:#?}", mismatches.len(), lines.len(), &mismatches[..mismatches.len().min(10)]);
}
