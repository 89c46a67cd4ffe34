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
    assert!(Zhiku::sources(&hits).iter().any(|s| s.ends_with("ch04.zh-cn.html")), "{:?}", Zhiku::sources(&hits));

    let answer = z.json(&["ask", "Which command changes a user's password?", "--kb", "debref", "--json"]);
    assert_eq!(answer["abstained"], false, "{answer}");
    assert!(!answer["answer"].as_str().unwrap().trim().is_empty());
    let citations = answer["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "expected citations: {answer}");
    let cited: Vec<&str> = citations.iter().map(|c| c["source"].as_str().unwrap()).collect();
    assert!(cited.iter().any(|s| s.ends_with("ch04.en.html")), "citations should point at the authentication chapter: {answer}");
    for c in citations {
        let n = c["n"].as_u64().unwrap();
        assert!(
            answer["answer"].as_str().unwrap().contains(&format!("[{n}]")) || answer["answer"].as_str().unwrap().contains(&format!("{n},"))
        );
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

#[test]
fn pdf_pages_are_ingested_with_page_provenance() {
    // Pages 60-66 of the Debian Reference PDF, cut out with lopdf so the test stays fast.
    let full = debian_reference().join("debian-reference.en.pdf");
    let mut pdf = lopdf::Document::load(&full).unwrap();
    let total = pdf.get_pages().len() as u32;
    let drop: Vec<u32> = (1..=total).filter(|p| !(60..=66).contains(p)).collect();
    pdf.delete_pages(&drop);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("excerpt.pdf");
    pdf.save(&path).unwrap();

    let z = Zhiku::new();
    let report = z.ingest("pdf", &[&path], &[]);
    assert_eq!(report["ingested"], 1, "{report}");
    let hits = z.search("pdf", "replace all instances of FROM_REGEX with TO_TEXT using sed", None, 3);
    // The passage is at the foot of the book's page 61 and the head of page 62: pages 2 and 3 of
    // the excerpt. A chunk reports the page it starts on.
    let page = hits[0]["page"].as_u64().unwrap();
    assert!(page == 2 || page == 3, "{hits:?}");
    assert!(hits[0]["text"].as_str().unwrap().contains("The sed(1) command can replace"), "{hits:?}");
    for h in &hits {
        let page = h["page"].as_u64().unwrap();
        assert!((1..=7).contains(&page), "{hits:?}");
        // The running header "Debian Reference NN / 233" is gone.
        assert!(!h["text"].as_str().unwrap().contains("/ 233"), "{}", h["text"]);
    }
}
