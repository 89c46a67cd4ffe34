//! `zhiku quantize` runs llama.cpp's quantizer: SmolLM2 (Q4_1) taken to f16, then to Q4_K_M,
//! which loads and generates; re-quantizing needs to be asked for.

mod common;

use common::{models_dir, Zhiku};

#[test]
fn a_model_is_quantized_by_llama_cpp_and_still_generates() {
    let z = Zhiku::new();
    let original = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let dir = z.data.path();
    let (f16, q4km) = (dir.join("smol-f16.gguf"), dir.join("smol-q4_k_m.gguf"));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    let refused = z.run(&["quantize", "--input", &path(&original), "--out", &path(&dir.join("q8.gguf")), "--type", "q8_0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("re-quantizing"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!dir.join("q8.gguf").exists(), "no half-written output is left");

    let widened = z.json(&["quantize", "--input", &path(&original), "--out", &path(&f16), "--type", "f16", "--allow-requantize", "--json"]);
    let narrowed = z.json(&["quantize", "--input", &path(&f16), "--out", &path(&q4km), "--type", "q4_k_m", "--json"]);
    assert!(widened["output_bytes"].as_u64().unwrap() > 2 * narrowed["output_bytes"].as_u64().unwrap(), "{widened} {narrowed}");
    let info = z.json(&["models", "info", &path(&q4km), "--json"]);
    assert_eq!((info["architecture"].as_str(), info["quantization"].as_str()), (Some("llama"), Some("Q4_K_M")), "{info}");
    let out = z.json(&["generate", "--model", &path(&q4km), "--prompt", "What is Debian?", "--max-tokens", "16", "--json"]);
    assert!(out["generated_tokens"].as_u64().unwrap() > 0 && !out["text"].as_str().unwrap().trim().is_empty(), "{out}");
    let unknown = z.run(&["quantize", "--input", &path(&f16), "--out", &path(&dir.join("x.gguf")), "--type", "q9_9"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("q4_k_m"));
}
