//! `zhiku eval retrieval` on the Debian Reference: each retriever scored on questions whose
//! answering chapter is known, the caller's ACLs applied.

mod common;

use common::{debian_reference, write, Zhiku};
use serde_json::Value;

const QUESTIONS: [(&str, &str); 6] = [
    ("How do I change the password of a user account?", "ch04.en.html"),
    ("What does PAM do during authentication?", "ch04.en.html"),
    ("How is the network interface configured with ifupdown?", "ch05.en.html"),
    ("How does systemd start services at boot time?", "ch03.en.html"),
    ("How do I set the locale and character encoding?", "ch08.en.html"),
    ("Which program runs first when the system boots?", "ch03.en.html"),
];

#[test]
fn each_retriever_is_scored_on_questions_with_known_answers() {
    let z = Zhiku::new();
    let docs = debian_reference();
    let files = ["ch03.en.html", "ch04.en.html", "ch05.en.html", "ch08.en.html"].map(|f| docs.join(f));
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    z.ingest("ref", &paths, &["group:staff"]);
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    let lines: Vec<String> =
        QUESTIONS.iter().map(|(q, chapter)| serde_json::json!({"query": q, "relevant": [chapter]}).to_string()).collect();
    let qa = write(z.data.path(), "qa.jsonl", lines.join("\n"));
    let eval = |file: &std::path::Path, as_user: Option<&str>| -> Value {
        let mut args = vec!["eval", "retrieval", "--kb", "ref", "--qa", file.to_str().unwrap(), "--json"];
        if let Some(user) = as_user {
            args.extend(["--as", user]);
        }
        z.json(&args)
    };
    let report = eval(&qa, Some("ann"));
    assert_eq!(report["queries"], 6);
    for retriever in ["vector", "bm25", "hybrid"] {
        let s = &report["retrievers"][retriever];
        let metric = |m: &str| s[m].as_f64().unwrap_or_else(|| panic!("{retriever} {m} missing: {report}"));
        for m in ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"] {
            assert!((0.0..=1.0).contains(&metric(m)), "{retriever} {m}: {report}");
        }
        assert!(metric("recall@1") <= metric("recall@5") && metric("recall@5") <= metric("recall@10"), "{report}");
        assert!(metric("mrr@10") >= metric("recall@1"), "{report}");
    }
    let hybrid = &report["retrievers"]["hybrid"];
    assert!(hybrid["recall@5"].as_f64().unwrap() >= 0.8, "the chapters should be found: {report}");

    // Documents nobody can find score nothing; nor does a user who may read none of them.
    let missing = write(z.data.path(), "missing.jsonl", r#"{"query": "How do I change a password?", "relevant": ["ch99.en.html"]}"#);
    assert_eq!(eval(&missing, None)["retrievers"]["hybrid"]["recall@10"], 0.0);
    assert_eq!(eval(&qa, Some("eve"))["retrievers"]["hybrid"]["recall@10"], 0.0);
    let broken = write(z.data.path(), "broken.jsonl", r#"{"question": "no query field"}"#);
    let out = z.run(&["eval", "retrieval", "--kb", "ref", "--qa", broken.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[test]
fn weighted_fusion_reranking_and_question_rewrites_are_configurable() {
    let docs = debian_reference();
    let files = ["ch04.en.html", "ch05.en.html"].map(|f| docs.join(f));
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let question = "Which command changes a user's password?";

    // Weighted fusion: normalised scores, each at most 1 (the two weights sum to 1); re-ranking
    // by similarity orders the hits by it.
    let z = Zhiku::new().with_env("ZHIKU_RETRIEVAL_FUSION", "weighted").with_env("ZHIKU_RETRIEVAL_RERANK", "similarity");
    z.ingest("ref", &paths, &[]);
    let hits = z.search("ref", question, None, 5);
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| (0.0..=1.0 + 1e-6).contains(&h["score"].as_f64().unwrap())), "{hits:?}");
    let similarities: Vec<f64> = hits.iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(similarities.windows(2).all(|w| w[0] >= w[1]), "{similarities:?}");
    assert!(hits[0]["source"].as_str().unwrap().ends_with("ch04.en.html"));
    let plain = Zhiku::new();
    plain.ingest("ref", &paths, &[]);
    let rrf: Vec<f64> = plain.search("ref", question, None, 5).iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(rrf.iter().all(|s| *s < 0.05), "RRF scores are 1/(60 + rank) sums: {rrf:?}");

    // RAG-Fusion: the model's rewordings are searched too, and reported.
    let fused = Zhiku::new().with_env("ZHIKU_RETRIEVAL_REWRITES", "2");
    fused.ingest("ref", &paths, &[]);
    let answer = fused.json(&["ask", question, "--kb", "ref", "--json"]);
    let rewrites = answer["rewrites"].as_array().unwrap_or_else(|| panic!("no rewrites: {answer}"));
    assert!(!rewrites.is_empty() && rewrites.len() <= 2, "{answer}");
    assert!(rewrites.iter().all(|r| !r.as_str().unwrap().trim().is_empty() && r.as_str().unwrap() != question), "{answer}");
    assert_eq!(answer["abstained"], false, "{answer}");
    assert!(answer["citations"].as_array().unwrap().iter().any(|c| c["source"].as_str().unwrap().ends_with("ch04.en.html")), "{answer}");
    assert!(plain.json(&["ask", question, "--kb", "ref", "--json"]).get("rewrites").is_none(), "off by default");
}

#[test]
fn generated_answers_are_scored_for_abstention_citations_and_terms() {
    let z = Zhiku::new();
    let docs = debian_reference();
    let files = ["ch04.en.html", "ch05.en.html"].map(|f| docs.join(f));
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    z.ingest("ref", &paths, &[]);
    let lines = [
        serde_json::json!({"query": "Which command changes a user's password?", "expected": ["passwd"], "relevant": ["ch04.en.html"]}),
        serde_json::json!({"query": "What is the boiling point of liquid nitrogen on Jupiter's moons?", "answerable": false}),
    ];
    let qa = write(z.data.path(), "answers.jsonl", lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"));
    let report = z.json(&["eval", "answers", "--kb", "ref", "--qa", qa.to_str().unwrap(), "--json"]);
    assert_eq!(report["queries"], 2, "{report}");
    assert_eq!(report["citations_valid"], 1.0, "{report}");
    assert_eq!(report["wrongly_answered"], 0.0, "the unanswerable question is not answered: {report}");
    assert_eq!(report["wrongly_abstained"], 0.0, "{report}");
    assert_eq!(report["cites_relevant"], 1.0, "{report}");
    for share in ["wrongly_abstained", "wrongly_answered", "citations_valid", "expected_terms", "cites_relevant"] {
        assert!((0.0..=1.0).contains(&report[share].as_f64().unwrap()), "{share}: {report}");
    }
}
