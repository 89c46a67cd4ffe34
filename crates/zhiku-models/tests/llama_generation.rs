//! Real generation with SmolLM2-135M-Instruct (Q4_1 GGUF) through llama.cpp.

mod common;

use zhiku_models::{ChatMessage, GenerationOptions, LlamaGenerator};

fn model() -> LlamaGenerator {
    LlamaGenerator::load(&common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap()
}

#[test]
fn chat_template_comes_from_the_gguf() {
    let llm = model();
    let prompt = llm.render_chat(&[ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")]).unwrap();
    assert!(prompt.contains("<|im_start|>system\nBe brief.<|im_end|>"), "{prompt}");
    assert!(prompt.trim_end().ends_with("<|im_start|>assistant"), "{prompt}");
}

#[test]
fn greedy_generation_is_deterministic_and_streams() {
    let llm = model();
    let options = GenerationOptions { max_tokens: 24, temperature: 0.0, context_tokens: 512, ..Default::default() };
    let messages = [ChatMessage::new("user", "What is the capital of France?")];
    let mut streamed = String::new();
    let first = llm
        .generate(&messages, &options, &mut |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert!(first.generated_tokens > 0 && first.generated_tokens <= 24);
    assert_eq!(streamed, first.text);
    assert!(first.text.contains("Paris"), "{:?}", first.text);
    let second = llm.generate(&messages, &options, &mut |_| true).unwrap();
    assert_eq!(first.text, second.text);
}

#[test]
fn stop_callback_ends_generation_early() {
    let llm = model();
    let options = GenerationOptions { max_tokens: 64, context_tokens: 512, ..Default::default() };
    let mut pieces = 0;
    let out = llm
        .generate(&[ChatMessage::new("user", "Count from one to fifty.")], &options, &mut |_| {
            pieces += 1;
            pieces < 3
        })
        .unwrap();
    assert_eq!(pieces, 3);
    assert!(out.generated_tokens <= 4);
}

#[test]
fn prompt_longer_than_context_is_an_error() {
    let llm = model();
    let options = GenerationOptions { max_tokens: 8, context_tokens: 64, ..Default::default() };
    let long = "word ".repeat(200);
    let err = llm.generate(&[ChatMessage::new("user", long)], &options, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn missing_or_invalid_gguf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    assert!(LlamaGenerator::load(&missing).err().unwrap().to_string().contains("zhiku setup"));
    let bogus = dir.path().join("bogus.gguf");
    std::fs::write(&bogus, b"not a gguf file at all").unwrap();
    let err = LlamaGenerator::load(&bogus).err().unwrap().to_string();
    assert!(err.contains("bogus.gguf"), "{err}");
}
