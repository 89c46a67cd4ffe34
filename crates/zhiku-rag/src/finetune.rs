//! Fine-tuning data from what zhiku holds: question/answer pairs a model writes from the
//! chunks of a knowledge base (into the review queue), and preference pairs from users'
//! ratings of answers. Everything is read as a caller: a dataset made for someone contains
//! only what that person may read.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Value};
use zhiku_core::{Caller, PiiPolicy};
use zhiku_models::{ChatMessage, ChatModel, GenerationOptions};
use zhiku_store::{PairStatus, Store, StoredPair};
use zhiku_tune::dataset::{self, Format, NearDuplicates, PairLimits, QaPair, Rejection};

use crate::Result;

/// The model that writes pairs, and the name its work is recorded under.
pub struct PairWriter<'a> {
    pub model: &'a dyn ChatModel,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// New chunks to read in this run at most (`None`: all).
    pub max_chunks: Option<usize>,
    /// Shorter chunks say too little to ask about.
    pub min_chunk_chars: usize,
    pub limits: PairLimits,
    /// Word-bigram similarity at which two questions count as one.
    pub duplicate_threshold: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_chunks: None, min_chunk_chars: 200, limits: PairLimits::default(), duplicate_threshold: 0.7 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerateReport {
    /// Chunks the model read in this run.
    pub read: usize,
    /// Pairs added to the review queue.
    pub kept: usize,
    /// Why the others were left out, by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Visible chunks skipped as too short.
    pub too_short_chunks: usize,
}

/// Reads the caller's visible chunks that `writer` has not read yet, asks it for one
/// question/answer pair each, and queues those that pass the checks (grounded in the chunk,
/// within bounds, a new question, the knowledge base's PII policy).
pub fn generate_pairs(
    store: &Store,
    kb: &str,
    caller: &Caller,
    writer: &PairWriter<'_>,
    options: &GenerateOptions,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<GenerateReport> {
    if !store.kb_exists(kb)? {
        return Err(zhiku_store::Error::UnknownKb(kb.to_string()).into());
    }
    let pii = store.kb_pii_policy(kb)?;
    let attempted = store.finetune_attempted(kb, &writer.id)?;
    let mut questions = NearDuplicates::new(options.duplicate_threshold);
    for pair in store.finetune_pairs(kb)? {
        questions.admit(&pair.question);
    }
    let mut report = GenerateReport::default();
    let mut todo = Vec::new();
    for chunk in store.chunks(kb)? {
        if !caller.can_read(&chunk.acl) || attempted.contains(&chunk.id) {
            continue;
        }
        if chunk.chunk.text.chars().count() < options.min_chunk_chars {
            report.too_short_chunks += 1;
            continue;
        }
        todo.push(chunk);
    }
    if let Some(max) = options.max_chunks {
        todo.truncate(max);
    }
    let generation = GenerationOptions {
        max_tokens: 300,
        temperature: 0.0,
        repeat_penalty: 1.1,
        context_tokens: 2048,
        grammar: Some(dataset::PAIR_GRAMMAR.to_string()),
        ..GenerationOptions::default()
    };
    for (index, chunk) in todo.iter().enumerate() {
        on_chunk(index, todo.len());
        let messages = [
            ChatMessage::new("system", dataset::PAIR_SYSTEM),
            ChatMessage::new("user", dataset::pair_prompt(&chunk.chunk.text, &chunk.source)),
        ];
        let reply = match writer.model.generate(&messages, &generation, &mut |_| true) {
            Ok(g) => g.text,
            // A passage too long for the model's context is that chunk's problem, not the run's.
            Err(zhiku_models::Error::PromptTooLong { .. }) => {
                store.record_finetune_attempt(chunk.id, &writer.id, "too_long_for_model", None)?;
                *report.rejected.entry("too_long_for_model".into()).or_default() += 1;
                report.read += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        report.read += 1;
        tracing::debug!(chunk = chunk.id, reply = %reply, "pair writer replied");
        let outcome = dataset::parse_pair(&reply)
            .ok_or(Rejection::Unparseable)
            .and_then(|pair| dataset::check_pair(&pair, &chunk.chunk.text, &options.limits).map(|()| pair))
            .and_then(|pair| apply_pii_policy(pair, pii))
            .and_then(|pair| if questions.admit(&pair.question) { Ok(pair) } else { Err(Rejection::NearDuplicate) });
        match outcome {
            Ok(pair) => {
                if store.record_finetune_attempt(chunk.id, &writer.id, "kept", Some((&pair.question, &pair.answer)))?.is_some() {
                    report.kept += 1;
                }
            }
            Err(why) => {
                store.record_finetune_attempt(chunk.id, &writer.id, why.as_str(), None)?;
                *report.rejected.entry(why.as_str().into()).or_default() += 1;
            }
        }
    }
    on_chunk(todo.len(), todo.len());
    Ok(report)
}

/// The generated text may carry personal data the chunk had (a policy of `keep`) or that the
/// model made up: the knowledge base's policy applies to it as to the chunks.
fn apply_pii_policy(pair: QaPair, policy: PiiPolicy) -> std::result::Result<QaPair, Rejection> {
    let question = zhiku_ingest::pii::detect(&pair.question);
    let answer = zhiku_ingest::pii::detect(&pair.answer);
    match policy {
        PiiPolicy::Keep => Ok(pair),
        PiiPolicy::DropChunk if !question.is_empty() || !answer.is_empty() => Err(Rejection::PersonalData),
        PiiPolicy::DropChunk => Ok(pair),
        PiiPolicy::Mask => Ok(QaPair {
            question: zhiku_ingest::pii::mask(&pair.question, &question),
            answer: zhiku_ingest::pii::mask(&pair.answer, &answer),
        }),
    }
}

/// The review queue as the caller sees it (pairs from chunks they may read).
pub fn review_queue(store: &Store, kb: &str, caller: &Caller, status: Option<PairStatus>) -> Result<Vec<StoredPair>> {
    if !store.kb_exists(kb)? {
        return Err(zhiku_store::Error::UnknownKb(kb.to_string()).into());
    }
    Ok(store.finetune_pairs(kb)?.into_iter().filter(|p| caller.can_read(&p.acl) && status.is_none_or(|s| p.status == s)).collect())
}

/// A reviewer's decision on one pair, with the corrected text if they edited it.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub pair: i64,
    pub status: PairStatus,
    pub question: Option<&'a str>,
    pub answer: Option<&'a str>,
}

/// Records a decision; false when the caller sees no such pair.
pub fn review(store: &Store, kb: &str, caller: &Caller, decision: Decision<'_>, reviewer: &str) -> Result<bool> {
    let visible = review_queue(store, kb, caller, None)?.iter().any(|p| p.id == decision.pair);
    if !visible {
        return Ok(false);
    }
    Ok(store.review_finetune_pair(kb, decision.pair, decision.status, decision.question, decision.answer, reviewer)?)
}

/// Why an adapter cannot serve with a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterProblem {
    Unknown(String),
    OtherBase { adapter: String, trained_for: String, serving: String },
}

impl std::fmt::Display for AdapterProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(which) => write!(f, "no adapter {which} is registered (zhiku finetune adapters lists them)"),
            Self::OtherBase { adapter, trained_for, serving } => {
                write!(f, "adapter {adapter} was trained for {trained_for}, not {serving}")
            }
        }
    }
}

/// The registered adapter `which` names, if it was made for the model file `base`.
pub fn resolve_adapter(
    store: &Store,
    which: &zhiku_store::AdapterRef,
    base: &std::path::Path,
) -> Result<std::result::Result<zhiku_store::RegisteredAdapter, AdapterProblem>> {
    let Some(adapter) = store.adapter(which)? else { return Ok(Err(AdapterProblem::Unknown(which.to_string()))) };
    let serving = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    if std::path::Path::new(&adapter.base_path) != serving {
        return Ok(Err(AdapterProblem::OtherBase {
            adapter: format!("{}@{}", adapter.name, adapter.version),
            trained_for: adapter.base_path,
            serving: serving.display().to_string(),
        }));
    }
    Ok(Ok(adapter))
}

/// The adapter to answer with: the one asked for (`none`: no adapter), else the knowledge
/// base's own, if any.
pub fn chosen_adapter(
    store: &Store,
    requested: Option<&str>,
    kb: Option<&str>,
) -> Result<std::result::Result<Option<zhiku_store::AdapterRef>, String>> {
    match requested {
        Some("none") => Ok(Ok(None)),
        Some(named) => Ok(named.parse().map(Some)),
        None => match kb {
            Some(kb) => Ok(Ok(store.kb_adapter(kb)?)),
            None => Ok(Ok(None)),
        },
    }
}

#[derive(Debug, Clone)]
pub struct DatasetOptions {
    pub format: Format,
    /// Only pairs a reviewer accepted (else every pair not rejected).
    pub accepted_only: bool,
    pub validation_fraction: f64,
    /// A system message to put in each record.
    pub system: Option<String>,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        Self { format: Format::OpenAi, accepted_only: false, validation_fraction: 0.1, system: None }
    }
}

/// Records split for training and validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub train: Vec<Value>,
    pub validation: Vec<Value>,
}

/// The supervised dataset from the review queue, as the caller may see it. Pairs of one chunk
/// land on the same side of the split, so validation asks about passages training never saw.
pub fn sft_dataset(store: &Store, kb: &str, caller: &Caller, options: &DatasetOptions) -> Result<Dataset> {
    let pairs: Vec<StoredPair> = review_queue(store, kb, caller, None)?
        .into_iter()
        .filter(|p| if options.accepted_only { p.status == PairStatus::Accepted } else { p.status != PairStatus::Rejected })
        .collect();
    let keys: Vec<String> = pairs.iter().map(|p| p.chunk_id.to_string()).collect();
    let validation = dataset::validation_keys(keys.iter().map(String::as_str), options.validation_fraction);
    let mut out = Dataset::default();
    for (pair, key) in pairs.iter().zip(&keys) {
        let provenance = json!({"kb": kb, "pair_id": pair.id, "chunk_id": pair.chunk_id, "source": pair.source, "status": pair.status});
        let qa = QaPair { question: pair.question.clone(), answer: pair.answer.clone() };
        let record = dataset::sft_record(options.format, options.system.as_deref(), &qa, &provenance);
        if validation.contains(key) {
            out.validation.push(record);
        } else {
            out.train.push(record);
        }
    }
    Ok(out)
}

/// Preference pairs from rated answers of the knowledge base: a correction is preferred to the
/// answer it corrects, and a helpful answer to an unhelpful one to the same question. An
/// exchange counts only when the caller may read every passage it cited.
pub fn dpo_dataset(store: &Store, kb: &str, caller: &Caller, validation_fraction: f64) -> Result<Dataset> {
    let mut visible = Vec::new();
    for exchange in store.rated_exchanges()? {
        if exchange.kb.as_deref() != Some(kb) {
            continue;
        }
        let cited: Vec<u64> = exchange
            .citations
            .as_array()
            .map(|c| {
                c.iter().filter_map(|c| c.get("chunk_id").and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))).collect()
            })
            .unwrap_or_default();
        let readable = match caller {
            Caller::Admin => true,
            _ if cited.is_empty() => false,
            _ => {
                let chunks = store.chunks_by_id(kb, &cited)?;
                chunks.len() == cited.len() && chunks.iter().all(|c| caller.can_read(&c.acl))
            }
        };
        if readable {
            visible.push(exchange);
        }
    }
    let normalise = |q: &str| dataset::words(q).join(" ");
    let mut records: Vec<(String, Value)> = Vec::new();
    let mut helpful: HashMap<String, Vec<&zhiku_store::Exchange>> = HashMap::new();
    for e in visible.iter().filter(|e| e.rating == Some(1)) {
        helpful.entry(normalise(&e.question)).or_default().push(e);
    }
    for e in &visible {
        let provenance = |chosen_from: &str| json!({"kb": kb, "completion_id": e.completion_id, "chosen_from": chosen_from});
        if let Some(correction) = e.correction.as_deref().filter(|c| !c.trim().is_empty() && c.trim() != e.answer.trim()) {
            records.push((e.completion_id.clone(), dataset::dpo_record(&e.question, correction, &e.answer, &provenance("correction"))));
        } else if e.rating == Some(-1) {
            let preferred = helpful.get(&normalise(&e.question)).and_then(|h| h.iter().rev().find(|h| h.answer.trim() != e.answer.trim()));
            if let Some(better) = preferred {
                records.push((
                    e.completion_id.clone(),
                    dataset::dpo_record(&e.question, &better.answer, &e.answer, &provenance(&better.completion_id)),
                ));
            }
        }
    }
    let validation = dataset::validation_keys(records.iter().map(|(k, _)| k.as_str()), validation_fraction);
    let mut out = Dataset::default();
    for (key, record) in records {
        if validation.contains(&key) {
            out.validation.push(record);
        } else {
            out.train.push(record);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pii_policy_applies_to_generated_text() {
        let pair = QaPair { question: "Who do I write to about leave?".into(), answer: "Write to ann.lee@example.com.".into() };
        assert_eq!(apply_pii_policy(pair.clone(), PiiPolicy::Keep), Ok(pair.clone()));
        assert_eq!(apply_pii_policy(pair.clone(), PiiPolicy::DropChunk), Err(Rejection::PersonalData));
        let masked = apply_pii_policy(pair, PiiPolicy::Mask).unwrap();
        assert!(!masked.answer.contains("ann.lee") && masked.answer.contains('['), "{}", masked.answer);
    }
}
