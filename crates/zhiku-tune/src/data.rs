//! Training examples: read from JSONL in the common chat formats, rendered with the base
//! model's own chat template and tokenized with its own tokenizer, so the model trains on
//! exactly what it will see when serving.

use std::path::Path;

use serde_json::Value;
use zhiku_models::{ChatMessage, LlamaGenerator};

use crate::{Error, Result};

/// A conversation to learn from; the loss covers the assistant turns only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub messages: Vec<ChatMessage>,
}

/// Reads one conversation per line. Accepted shapes, detected per line:
/// OpenAI `{"messages": [{"role", "content"}]}`, Alpaca `{"instruction", "input"?, "output"}`,
/// ShareGPT `{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}`.
pub fn read_jsonl(path: &Path) -> Result<Vec<Conversation>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::Data { path: path.to_path_buf(), line: index + 1, reason };
        let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let conversation = parse_record(&value).map_err(bad)?;
        out.push(conversation);
    }
    if out.is_empty() {
        return Err(Error::Data { path: path.to_path_buf(), line: 0, reason: "no examples in the file".into() });
    }
    Ok(out)
}

fn parse_record(value: &Value) -> std::result::Result<Conversation, String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let messages = if let Some(messages) = value.get("messages").and_then(Value::as_array) {
        messages
            .iter()
            .map(|m| match (text(m, "role"), text(m, "content")) {
                (Some(role), Some(content)) => Ok(ChatMessage::new(&role, content)),
                _ => Err("each message needs string \"role\" and \"content\"".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else if let Some(turns) = value.get("conversations").and_then(Value::as_array) {
        turns
            .iter()
            .map(|t| {
                let role = match text(t, "from").as_deref() {
                    Some("human" | "user") => "user",
                    Some("gpt" | "assistant") => "assistant",
                    Some("system") => "system",
                    other => return Err(format!("unknown ShareGPT speaker {other:?} (human, gpt or system)")),
                };
                text(t, "value").map(|v| ChatMessage::new(role, v)).ok_or_else(|| "each ShareGPT turn needs a string \"value\"".to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else if let (Some(instruction), Some(output)) = (text(value, "instruction"), text(value, "output")) {
        let input = text(value, "input").unwrap_or_default();
        let user = if input.trim().is_empty() { instruction } else { format!("{instruction}\n\n{input}") };
        vec![ChatMessage::new("user", user), ChatMessage::new("assistant", output)]
    } else {
        return Err("expected an OpenAI (\"messages\"), Alpaca (\"instruction\"/\"output\") or ShareGPT (\"conversations\") record".into());
    };
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("the conversation has no assistant turn to learn".into());
    }
    Ok(Conversation { messages })
}

/// A tokenized example: `targets` are the positions j whose next token `tokens[j + 1]` belongs
/// to an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Tokenizes a conversation, marking the assistant turns (their text and end-of-turn marker)
/// as targets; cut at `max_tokens`. `None` when no target token survives the cut.
pub fn tokenize(model: &LlamaGenerator, conversation: &Conversation, max_tokens: usize) -> Result<Option<Example>> {
    let render = |messages: &[ChatMessage], open: bool| model.render_conversation(messages, open).map_err(Error::Model);
    let encode = |text: &str| model.tokenize(text, model.adds_bos() && !text.starts_with("<s>"), true);
    let full = render(&conversation.messages, false)?;
    let tokens = encode(&full);
    let mut is_target = vec![false; tokens.len()];
    for (i, message) in conversation.messages.iter().enumerate() {
        if message.role != "assistant" {
            continue;
        }
        // Templates render a conversation as the concatenation of its turns, so the tokens
        // of the turn are those between the prompt ending in an open assistant header and the
        // conversation through this turn.
        let start = encode(&render(&conversation.messages[..i], true)?).len();
        let end = encode(&render(&conversation.messages[..=i], false)?).len();
        for flag in is_target.iter_mut().take(end.min(tokens.len())).skip(start) {
            *flag = true;
        }
    }
    let keep = tokens.len().min(max_tokens);
    let targets: Vec<u32> = (1..keep).filter(|&t| is_target[t]).map(|t| (t - 1) as u32).collect();
    if targets.is_empty() {
        return Ok(None);
    }
    Ok(Some(Example { tokens: tokens[..keep].to_vec(), targets }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_chat_formats_alike() {
        let openai = serde_json::json!({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]});
        let alpaca = serde_json::json!({"instruction": "Q", "output": "A"});
        let sharegpt = serde_json::json!({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]});
        let expected = parse_record(&openai).unwrap();
        assert_eq!(expected.messages.len(), 2);
        assert_eq!(parse_record(&alpaca).unwrap(), expected);
        assert_eq!(parse_record(&sharegpt).unwrap(), expected);
    }

    #[test]
    fn alpaca_input_joins_the_instruction() {
        let record = serde_json::json!({"instruction": "Translate", "input": "知库", "output": "knowledge store"});
        assert_eq!(parse_record(&record).unwrap().messages[0].content, "Translate\n\n知库");
    }

    #[test]
    fn rejects_records_without_an_answer_to_learn() {
        let record = serde_json::json!({"messages": [{"role": "user", "content": "Q"}]});
        assert!(parse_record(&record).unwrap_err().contains("no assistant turn"));
        assert!(parse_record(&serde_json::json!({"text": "x"})).unwrap_err().contains("expected"));
        let speaker = serde_json::json!({"conversations": [{"from": "bot", "value": "A"}]});
        assert!(parse_record(&speaker).unwrap_err().contains("bot"));
    }
}
