//! Training data made from a knowledge base: the pure part — the shape a model must answer
//! in, the checks a generated pair must pass, near-duplicate questions, the train/validation
//! split and the record formats of the common fine-tuning tools. No I/O: the knowledge base
//! walk and the model calls live in `zhiku-rag`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The output grammar (GBNF) of the question writer: one JSON object, bounded lengths, so even
/// a 135M-parameter model answers in a parseable shape.
pub const PAIR_GRAMMAR: &str = r#"
root ::= "{" ws "\"question\":" ws question ws "," ws "\"answer\":" ws answer ws "}"
question ::= "\"" char{8,200} "\""
answer ::= "\"" char{1,600} "\""
char ::= [^"\\\x00-\x1f] | "\\" ["\\/nt]
ws ::= [ \t\n]{0,2}
"#;

/// The instructions of the question writer.
pub const PAIR_SYSTEM: &str = "You write training data from a passage of a company's documents. Write one question \
that a colleague could ask and that the passage answers, and the answer, using only facts stated in the passage. \
Reply with JSON: {\"question\": \"...\", \"answer\": \"...\"}.";

/// The user message asking for a pair about `passage`.
pub fn pair_prompt(passage: &str, source: &str) -> String {
    format!("Document: {source}\n\nPassage:\n{passage}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaPair {
    pub question: String,
    pub answer: String,
}

/// Why a generated pair was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The model's reply is not the JSON asked for.
    Unparseable,
    TooShort,
    TooLong,
    /// The "question" is a statement.
    NotAQuestion,
    /// Too few of the answer's words are in the passage: the model made it up.
    Ungrounded,
    /// The question gives its own answer away.
    AnswerInQuestion,
    /// A question asked already, in other words.
    NearDuplicate,
    /// The knowledge base drops chunks with personal data, and the pair has some.
    PersonalData,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unparseable => "unparseable",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::NotAQuestion => "not_a_question",
            Self::Ungrounded => "ungrounded",
            Self::AnswerInQuestion => "answer_in_question",
            Self::NearDuplicate => "near_duplicate",
            Self::PersonalData => "personal_data",
        }
    }
}

/// Bounds a pair must keep to (characters).
#[derive(Debug, Clone, PartialEq)]
pub struct PairLimits {
    pub min_question: usize,
    pub max_question: usize,
    pub min_answer: usize,
    pub max_answer: usize,
    /// The share of the answer's words that must occur in the passage.
    pub min_grounding: f64,
}

impl Default for PairLimits {
    fn default() -> Self {
        Self { min_question: 8, max_question: 200, min_answer: 2, max_answer: 600, min_grounding: 0.7 }
    }
}

/// Reads the model's reply; `None` when it is not a question/answer object.
pub fn parse_pair(reply: &str) -> Option<QaPair> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    let pair: QaPair = serde_json::from_str(reply.get(start..=end)?).ok()?;
    let clean = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(QaPair { question: clean(&pair.question), answer: clean(&pair.answer) })
}

/// Checks a pair against its passage.
pub fn check_pair(pair: &QaPair, passage: &str, limits: &PairLimits) -> Result<(), Rejection> {
    let (q, a) = (pair.question.chars().count(), pair.answer.chars().count());
    if q < limits.min_question || a < limits.min_answer {
        return Err(Rejection::TooShort);
    }
    if q > limits.max_question || a > limits.max_answer {
        return Err(Rejection::TooLong);
    }
    if !pair.question.contains(['?', '？']) {
        return Err(Rejection::NotAQuestion);
    }
    if grounding(&pair.answer, passage) < limits.min_grounding {
        return Err(Rejection::Ungrounded);
    }
    let answer_words = words(&pair.answer);
    if answer_words.len() >= 3 && words(&pair.question).windows(answer_words.len()).any(|w| w == answer_words.as_slice()) {
        return Err(Rejection::AnswerInQuestion);
    }
    Ok(())
}

/// The share of the answer's words (Han characters one by one, other scripts by word) that
/// the passage contains; 0 for an answer without words.
pub fn grounding(answer: &str, passage: &str) -> f64 {
    let answer_words = words(answer);
    if answer_words.is_empty() {
        return 0.0;
    }
    let passage_words: HashSet<String> = words(passage).into_iter().collect();
    answer_words.iter().filter(|w| passage_words.contains(*w)).count() as f64 / answer_words.len() as f64
}

/// Lower-cased words; each Han character is a word of its own (Chinese has no spaces, and the
/// characters carry the meaning).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if is_han(c) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Keeps questions that differ from every one kept before: word-bigram Jaccard similarity
/// below `threshold` ("How do I set the proxy?" and "How do I set a proxy?" are one question).
pub struct NearDuplicates {
    threshold: f64,
    kept: Vec<HashSet<(String, String)>>,
}

impl NearDuplicates {
    pub fn new(threshold: f64) -> Self {
        Self { threshold, kept: Vec::new() }
    }

    /// True (and remembered) when `question` is new.
    pub fn admit(&mut self, question: &str) -> bool {
        let shingles = bigrams(question);
        let duplicate = self.kept.iter().any(|seen| {
            let shared = seen.intersection(&shingles).count() as f64;
            let union = (seen.len() + shingles.len()) as f64 - shared;
            union > 0.0 && shared / union >= self.threshold
        });
        if !duplicate {
            self.kept.push(shingles);
        }
        !duplicate
    }
}

fn bigrams(text: &str) -> HashSet<(String, String)> {
    let mut w = words(text);
    // A one-word question still needs a shingle to compare.
    if w.len() == 1 {
        w.push(String::new());
    }
    w.windows(2).map(|p| (p[0].clone(), p[1].clone())).collect()
}

/// Which pairs go to validation: the `fraction` (at least one when there are two or more)
/// whose keys hash lowest. The same keys always split the same way, whatever their order,
/// and adding pairs moves none of the others across.
pub fn validation_keys<'a>(keys: impl IntoIterator<Item = &'a str>, fraction: f64) -> HashSet<String> {
    let mut hashed: Vec<(String, &str)> = keys.into_iter().map(|k| (hex::encode(Sha256::digest(k.as_bytes())), k)).collect();
    if hashed.len() < 2 || fraction <= 0.0 {
        return HashSet::new();
    }
    hashed.sort();
    let count = ((hashed.len() as f64 * fraction).ceil() as usize).clamp(1, hashed.len() - 1);
    hashed.into_iter().take(count).map(|(_, k)| k.to_string()).collect()
}

/// The record formats of the usual fine-tuning tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"messages": [{"role", "content"}]}` (OpenAI, TRL, Axolotl "chat_template").
    OpenAi,
    /// `{"instruction", "input", "output"}` (Alpaca, LLaMA-Factory).
    Alpaca,
    /// `{"conversations": [{"from", "value"}]}` (ShareGPT, FastChat, Axolotl).
    ShareGpt,
    /// `{"prompt", "chosen", "rejected"}` preference pairs (TRL's DPOTrainer).
    Dpo,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openai" => Ok(Self::OpenAi),
            "alpaca" => Ok(Self::Alpaca),
            "sharegpt" => Ok(Self::ShareGpt),
            "dpo" => Ok(Self::Dpo),
            other => Err(format!("unknown dataset format '{other}': use openai, alpaca, sharegpt or dpo")),
        }
    }
}

/// One supervised record; `provenance` travels in a `zhiku` field the tools ignore.
pub fn sft_record(format: Format, system: Option<&str>, pair: &QaPair, provenance: &Value) -> Value {
    let mut record = match format {
        Format::OpenAi | Format::Dpo => {
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": pair.question}));
            messages.push(json!({"role": "assistant", "content": pair.answer}));
            json!({ "messages": messages })
        }
        Format::Alpaca => json!({"instruction": pair.question, "input": "", "output": pair.answer}),
        Format::ShareGpt => {
            let mut turns = Vec::new();
            if let Some(system) = system {
                turns.push(json!({"from": "system", "value": system}));
            }
            turns.push(json!({"from": "human", "value": pair.question}));
            turns.push(json!({"from": "gpt", "value": pair.answer}));
            json!({ "conversations": turns })
        }
    };
    record["zhiku"] = provenance.clone();
    record
}

/// One preference record: the answer users preferred over the one they did not.
pub fn dpo_record(prompt: &str, chosen: &str, rejected: &str, provenance: &Value) -> Value {
    json!({"prompt": prompt, "chosen": chosen, "rejected": rejected, "zhiku": provenance})
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSAGE: &str = "The archive server Bluefin-7 listens on port 7741 and is backed up every six hours.";

    fn pair(q: &str, a: &str) -> QaPair {
        QaPair { question: q.into(), answer: a.into() }
    }

    #[test]
    fn reads_the_reply_and_tidies_its_spaces() {
        let reply = "Sure: {\"question\": \"Which  port does\\nBluefin-7 use?\", \"answer\": \"Port 7741.\"}";
        assert_eq!(parse_pair(reply), Some(pair("Which port does Bluefin-7 use?", "Port 7741.")));
        assert_eq!(parse_pair("{\"question\": \"x\"}"), None);
        assert_eq!(parse_pair("no json"), None);
    }

    #[test]
    fn keeps_grounded_pairs_and_says_why_others_go() {
        let limits = PairLimits::default();
        assert_eq!(check_pair(&pair("Which port does Bluefin-7 listen on?", "Port 7741."), PASSAGE, &limits), Ok(()));
        assert_eq!(
            check_pair(&pair("Which port does Bluefin-7 listen on?", "It uses port 8080 on the gateway."), PASSAGE, &limits),
            Err(Rejection::Ungrounded)
        );
        assert_eq!(check_pair(&pair("Port?", "7741"), PASSAGE, &limits), Err(Rejection::TooShort));
        assert_eq!(check_pair(&pair("Bluefin-7 listens on a port.", "Port 7741."), PASSAGE, &limits), Err(Rejection::NotAQuestion));
        assert_eq!(check_pair(&pair("Bluefin-7 用哪个端口？", "7741"), PASSAGE, &limits), Ok(()));
        assert_eq!(
            check_pair(&pair("Which port does Bluefin-7 listen on?", &"port ".repeat(200)), PASSAGE, &limits),
            Err(Rejection::TooLong)
        );
        assert_eq!(
            check_pair(&pair("Is Bluefin-7 backed up every six hours?", "backed up every six hours"), PASSAGE, &limits),
            Err(Rejection::AnswerInQuestion)
        );
    }

    #[test]
    fn grounding_counts_han_characters_one_by_one() {
        let passage = "知库把数据留在公司内部。";
        assert!((grounding("数据留在公司内部", passage) - 1.0).abs() < 1e-9);
        assert!(grounding("数据发到云端", passage) < 0.5);
        assert_eq!(words("Hello, 知库 World"), ["hello", "知", "库", "world"]);
    }

    #[test]
    fn near_duplicate_questions_are_kept_once() {
        let mut seen = NearDuplicates::new(0.5);
        assert!(seen.admit("How do I set the HTTP proxy for apt?"));
        assert!(!seen.admit("How do I set the HTTP proxy for APT"));
        assert!(seen.admit("Which port does Bluefin-7 listen on?"));
        assert!(seen.admit("Why?"));
        assert!(!seen.admit("why"));
    }

    #[test]
    fn the_split_is_stable_and_never_empty_on_either_side() {
        let keys: Vec<String> = (0..40).map(|i| format!("chunk-{i}")).collect();
        let validation = validation_keys(keys.iter().map(String::as_str), 0.1);
        assert_eq!(validation.len(), 4);
        let reversed = validation_keys(keys.iter().rev().map(String::as_str), 0.1);
        assert_eq!(validation, reversed);
        assert_eq!(validation_keys(["a", "b"], 0.1).len(), 1);
        assert_eq!(validation_keys(["a", "b"], 0.9).len(), 1, "training keeps at least one");
        assert!(validation_keys(["a"], 0.5).is_empty());
    }

    #[test]
    fn formats_carry_the_same_pair() {
        let p = pair("Which port?", "7741");
        let provenance = json!({"chunk_id": 3, "source": "ops.md"});
        let openai = sft_record(Format::OpenAi, Some("Be brief."), &p, &provenance);
        assert_eq!(openai["messages"][2]["content"], "7741");
        assert_eq!(openai["zhiku"]["source"], "ops.md");
        assert_eq!(sft_record(Format::Alpaca, None, &p, &provenance)["output"], "7741");
        assert_eq!(sft_record(Format::ShareGpt, None, &p, &provenance)["conversations"][0]["from"], "human");
        assert_eq!("dpo".parse::<Format>(), Ok(Format::Dpo));
        assert!("csv".parse::<Format>().unwrap_err().contains("openai"));
    }
}
