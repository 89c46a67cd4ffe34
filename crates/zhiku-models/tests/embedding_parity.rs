//! Our candle BERT must reproduce sentence-transformers' vectors for all-MiniLM-L6-v2. The
//! reference vectors were produced once by scripts/make-embedding-fixture.py.

mod common;

use serde_json::Value;
use zhiku_core::{Embedder, TokenCounter};
use zhiku_models::BertEmbedder;

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let text = include_str!("fixtures/minilm-reference.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let sentences = v["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let vectors = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    (sentences, vectors)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_sentence_transformers() {
    let embedder = BertEmbedder::load(&common::models_dir().join("all-MiniLM-L6-v2")).unwrap();
    assert_eq!(embedder.dimension(), 384);
    let (sentences, expected) = reference();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    // All at once (mixed lengths padded in one batch) and one by one must both match.
    let batched = embedder.embed(&refs).unwrap();
    for (i, (got, want)) in batched.iter().zip(&expected).enumerate() {
        let c = cosine(got, want);
        assert!(c >= 0.999, "sentence {i} {:?}: cosine {c}", sentences[i]);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
    }
    for (i, s) in refs.iter().enumerate() {
        let single = embedder.embed(&[s]).unwrap();
        assert!(cosine(&single[0], &expected[i]) >= 0.999, "sentence {i} alone");
    }
}

#[test]
fn token_counts_are_untruncated_wordpiece_counts() {
    let embedder = BertEmbedder::load(&common::models_dir().join("all-MiniLM-L6-v2")).unwrap();
    assert_eq!(embedder.count_tokens("hello world"), 2);
    let long = "word ".repeat(1000);
    assert_eq!(embedder.count_tokens(&long), 1000, "counting must not truncate at the model window");
    // The model reads the first 254 words and [SEP], as sentence-transformers' 256-token window.
    let [embedded, window, shorter] = embedder.embed(&[&long, &"word ".repeat(254), &"word ".repeat(200)]).unwrap().try_into().unwrap();
    assert!(cosine(&embedded, &window) > 0.99999, "{}", cosine(&embedded, &window));
    assert!(cosine(&embedded, &shorter) < 0.99999);
}

#[test]
fn missing_model_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = BertEmbedder::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.json") && err.contains("zhiku setup"), "{err}");
}
