//! End to end through the real binary: real documents (the Debian Reference), the real
//! embedding model and the real local LLM.

mod common;

use common::{debian_reference, write, Zhiku};

#[test]
fn ingest_search_and_ask_on_the_debian_reference() {
    let z = Zhiku::new();
    let docs = debian_reference();
    let files = ["ch03.en.html", "ch04.en.html", "ch08.en.html", "ch04.zh-cn.html"].map(|f| docs.join(f));
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let report = z.ingest("debref", &paths, &["group:staff"]);
    assert_eq!(report["ingested"], 4, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["chunks"].as_u64().unwrap() > 50, "{report}");

    // Every hit carries the contract fields; the source is the path as given.
    let hits = z.search("debref", "How do I change the password of a user account?", None, 5);
    assert_eq!(hits.len(), 5);
    for h in &hits {
        assert!(h["chunk_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(h["score"].as_f64().is_some());
        assert!(!h["text"].as_str().unwrap().is_empty());
    }
    let top = hits[0]["source"].as_str().unwrap();
    assert_eq!(top, files[1].to_str().unwrap(), "password question should hit the authentication chapter first");

    // Chinese query: jieba-segmented BM25 finds the Chinese chapter on the same topic.
    let hits = z.search("debref", "如何修改用户的密码", None, 3);
    assert!(
        Zhiku::sources(&hits).iter().any(|s| s.ends_with("ch04.zh-cn.html")),
        "{:?}",
        Zhiku::sources(&hits)
    );

    let answer = z.json(&["ask", "Which command changes a user's password?", "--kb", "debref", "--json"]);
    assert_eq!(answer["abstained"], false, "{answer}");
    assert!(!answer["answer"].as_str().unwrap().trim().is_empty());
    let citations = answer["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "expected citations: {answer}");
    let cited: Vec<&str> = citations.iter().map(|c| c["source"].as_str().unwrap()).collect();
    assert!(cited.iter().any(|s| s.ends_with("ch04.en.html")), "citations should point at the authentication chapter: {answer}");
    for c in citations {
        let n = c["n"].as_u64().unwrap();
        assert!(answer["answer"].as_str().unwrap().contains(&format!("[{n}]")) || answer["answer"].as_str().unwrap().contains(&format!("{n},")));
        assert!(c["chunk_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn abstains_when_nothing_relevant_is_found() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let doc = write(dir.path(), "leave.md", "# Leave\n\nFull-time employees receive 27 days of paid annual leave per year.\n");
    z.ingest("kb", &[&doc], &[]);
    let answer = z.json(&["ask", "What is the boiling point of liquid nitrogen on Jupiter's moons?", "--kb", "kb", "--json"]);
    assert_eq!(answer["abstained"], true, "{answer}");
    assert_eq!(answer["citations"].as_array().unwrap().len(), 0);
    assert!(answer["answer"].as_str().unwrap().to_lowercase().contains("not found"), "{answer}");

    // The same knowledge base does answer what it knows.
    let answer = z.json(&["ask", "How many days of annual leave do full-time employees get?", "--kb", "kb", "--json"]);
    assert_eq!(answer["abstained"], false, "{answer}");
    assert_eq!(answer["citations"][0]["source"], doc.to_str().unwrap(), "{answer}");
}

#[test]
fn user_without_access_gets_abstention_not_the_document() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let doc = write(dir.path(), "salaries.md", "# Salaries\n\nThe CEO's salary is 450000 euros per year.\n");
    z.ingest("hr", &[&doc], &["group:board"]);
    let answer = z.json(&["ask", "What is the CEO's salary?", "--kb", "hr", "--as", "mallory", "--json"]);
    assert_eq!(answer["abstained"], true, "{answer}");
    assert!(!answer["answer"].as_str().unwrap().contains("450"), "{answer}");
}
