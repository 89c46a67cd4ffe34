//! Knowledge bases choose their embedding model. multilingual-e5-small answers English
//! questions from Chinese chapters that share no word with them (so keyword search cannot help);
//! a knowledge base moved from MiniLM to e5 gets every chunk embedded again (its chunks kept)
//! and then scores passages as e5 does.

mod common;

use std::collections::HashSet;

use common::{debian_reference, http, Zhiku};
use serde_json::Value;

/// English questions whose words occur nowhere in the four Chinese chapters, with the chapter
/// that answers them.
const QUESTIONS: [(&str, &str); 5] = [
    ("forgotten passphrase recovery", "ch04.zh-cn.html"),
    ("who may become superuser", "ch04.zh-cn.html"),
    ("passphrase expiry", "ch04.zh-cn.html"),
    ("wlan hotspot laptop", "ch05.zh-cn.html"),
    ("handwriting chinese input", "ch07.zh-cn.html"),
];
/// System initialisation, authentication, network setup, the desktop.
const CHAPTERS: [&str; 4] = ["ch03.zh-cn.html", "ch04.zh-cn.html", "ch05.zh-cn.html", "ch07.zh-cn.html"];

/// The top hit of each question: (source, similarity).
fn top_hits(z: &Zhiku, kb: &str) -> Vec<(String, f64)> {
    QUESTIONS
        .iter()
        .map(|(q, _)| {
            let hits: Vec<Value> = z.search(kb, q, None, 3);
            (hits[0]["source"].as_str().unwrap().to_string(), hits[0]["similarity"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn an_english_question_finds_chinese_documents_through_multilingual_embeddings() {
    let z = Zhiku::new();
    let docs = debian_reference();
    let files = CHAPTERS.map(|c| docs.join(c));
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let raw: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap().to_lowercase()).collect();
    let words: HashSet<&str> = raw.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    for (question, _) in QUESTIONS {
        assert!(question.split(' ').all(|w| !words.contains(w)), "'{question}' shares a word with the chapters");
    }

    let mut args = vec!["ingest"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--kb", "e5", "--embedding-model", "multilingual-e5-small", "--json"]);
    let made = z.json(&args);
    assert_eq!(made["ingested"], 4, "{made}");
    let e5 = top_hits(&z, "e5");
    for ((question, chapter), (source, _)) in QUESTIONS.iter().zip(&e5) {
        assert!(source.ends_with(chapter), "{question}: {source}");
    }

    // The same chapters under MiniLM, then moved to e5: every chunk embedded again (the chunks
    // themselves stay as MiniLM's tokenizer cut them). The best passages then score as in the
    // knowledge base made with e5, which they did not before.
    let minilm_made = z.ingest("moved", &paths, &[]);
    let before = top_hits(&z, "moved");
    let out = z.run(&["kb", "create", "moved", "--embedding-model", "multilingual-e5-small"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{} chunks re-embedded", minilm_made["chunks"])), "{stderr}");
    let after = top_hits(&z, "moved");
    for (i, (question, chapter)) in QUESTIONS.iter().enumerate() {
        assert!(after[i].0.ends_with(chapter), "{question} after the move: {}", after[i].0);
        assert!((after[i].1 - e5[i].1).abs() < 0.02, "{question}: {} after the move, {} under e5", after[i].1, e5[i].1);
        assert!((before[i].1 - e5[i].1).abs() > 0.2, "{question}: MiniLM's {} already like e5's {}", before[i].1, e5[i].1);
    }
    // Asking again for the model it has changes nothing; an unknown model is refused by name.
    let again = z.run(&["kb", "create", "moved", "--embedding-model", "multilingual-e5-small"]);
    assert!(again.status.success() && !String::from_utf8_lossy(&again.stderr).contains("re-embedded"));
    let unknown = z.run(&["kb", "create", "moved", "--embedding-model", "word2vec"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("word2vec"));

    // Over HTTP, an administrator moves it back: the same re-embedding, the model reported.
    let admin = z.json(&["key", "create", "--name", "root", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();
    let auth = format!("Bearer {admin}");
    let patch =
        |body: &str| http(&server.url, "PATCH", "/api/kbs/moved", &[("Authorization", &auth), ("Content-Type", "application/json")], body);
    let refused = patch(r#"{"embedding_model": "word2vec"}"#);
    assert_eq!(refused.status, 400, "{}", refused.body);
    let moved_back = patch(r#"{"embedding_model": "minilm"}"#);
    assert_eq!(moved_back.status, 200, "{}", moved_back.body);
    let settings: Value = serde_json::from_str(&moved_back.body).unwrap();
    assert_eq!((settings["embedding_model"].as_str(), settings["reembedded"].as_u64()), (Some("minilm"), minilm_made["chunks"].as_u64()));
    drop(server);
    let again = top_hits(&z, "moved");
    for (i, (question, _)) in QUESTIONS.iter().enumerate() {
        assert!((again[i].1 - before[i].1).abs() < 1e-4, "{question}: {} back under MiniLM, {} before", again[i].1, before[i].1);
    }
}
