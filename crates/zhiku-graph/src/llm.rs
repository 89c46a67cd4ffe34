//! The model-based extractor: asks a language model for a chunk's triples as JSON, constrained by
//! a grammar so that even a small model writes the right shape, then validates them against the
//! chunk (both ends must be named in it: a model that invents is not believed), retries once, and
//! falls back to the local extractor for a chunk it cannot read. Answers are cached by the chunk's
//! text, so re-ingesting a document asks the model only about what changed.

use crate::local::{extract_text, relation_name};
use crate::{structured, DocumentText, EntityKind, EntityRef, Extraction, Extractor};

/// A language model as the extractor needs it.
pub trait TripleModel: Send + Sync {
    /// Names the model, for the cache: answers of another model are not reused.
    fn id(&self) -> String;
    /// The model's answer to `user` under `system`, following the GBNF `grammar`; `attempt` is 0,
    /// then 1 for the retry (which may sample differently).
    fn complete(&self, system: &str, user: &str, grammar: &str, attempt: u32) -> Result<String, String>;
}

/// Where answers are kept between runs (the store), by key.
pub trait ExtractionCache: Send + Sync {
    fn get(&self, key: &str) -> Option<Extraction>;
    fn put(&self, key: &str, extraction: &Extraction);
}

/// The answer's shape: `{"triples": [{"subject": …, "relation": …, "object": …}, …]}`, at most
/// 12 triples of short strings.
pub const GRAMMAR: &str = r#"
root ::= "{" ws "\"triples\":" ws "[" ws ( triple ( ws "," ws triple ){0,11} )? ws "]" ws "}"
triple ::= "{" ws "\"subject\":" ws str ws "," ws "\"relation\":" ws str ws "," ws "\"object\":" ws str ws "}"
str ::= "\"" char{1,60} "\""
char ::= [^"\\\x00-\x1f] | "\\" ["\\/nt]
ws ::= [ \t\n]{0,2}
"#;

pub const SYSTEM: &str = "You extract facts from text for a knowledge graph. Answer with JSON only.";

/// The prompt for one chunk.
pub fn prompt(text: &str) -> String {
    format!(
        "List the facts this text states, as triples of subject, relation and object. Subjects and objects are names or \
         short noun phrases copied from the text; relations are short verbs such as depends_on, owns, is_a, part_of, \
         located_in, manages, uses. Example: \"Atlas depends on Borealis.\" gives \
         {{\"triples\": [{{\"subject\": \"Atlas\", \"relation\": \"depends_on\", \"object\": \"Borealis\"}}]}}.\n\nText:\n{text}"
    )
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not the JSON asked for: {0}")]
    Shape(String),
    #[error("'{0}' is not named in the text")]
    Unsupported(String),
    #[error("no triple")]
    Empty,
}

fn named_in(text: &str, phrase: &str) -> bool {
    let (text, phrase) = (text.to_lowercase(), phrase.trim().to_lowercase());
    !phrase.is_empty() && text.contains(&phrase)
}

/// The kind an answer's entity gets: a name when capitalised (or CJK), a concept otherwise.
fn kind_of(name: &str) -> EntityKind {
    match name.chars().next() {
        Some(c) if c.is_uppercase() || crate::words::has_cjk(name) => EntityKind::Name,
        _ => EntityKind::Concept,
    }
}

/// A name as the local extractor would have it: "The Atlas service" is Atlas.
fn canonical(name: &str) -> String {
    let mut words: Vec<&str> = name.split_whitespace().collect();
    if words.len() > 1 && ["the", "a", "an"].contains(&words[0].to_lowercase().as_str()) {
        words.remove(0);
    }
    let named = |w: &&str| w.chars().next().is_some_and(char::is_uppercase);
    if words.len() > 1 {
        let last = words[words.len() - 1];
        if crate::local::GENERIC_HEADS.contains(&last) && words[..words.len() - 1].iter().all(named) {
            words.pop();
        }
    }
    words.join(" ")
}

/// Checks an answer against the schema and the chunk; its triples as an extraction.
pub fn parse(answer: &str, text: &str) -> Result<Extraction, Invalid> {
    let value: serde_json::Value = serde_json::from_str(answer.trim()).map_err(|e| Invalid::Shape(e.to_string()))?;
    let triples = value.get("triples").and_then(|t| t.as_array()).ok_or_else(|| Invalid::Shape("no \"triples\" array".into()))?;
    let mut out = Extraction::default();
    for t in triples {
        let field = |name: &str| -> Result<String, Invalid> {
            t.get(name)
                .and_then(|v| v.as_str())
                .map(|s| s.trim().to_string())
                .ok_or_else(|| Invalid::Shape(format!("a triple without \"{name}\"")))
        };
        let (subject, relation, object) = (field("subject")?, field("relation")?, field("object")?);
        for end in [&subject, &object] {
            if !named_in(text, end) {
                return Err(Invalid::Unsupported(end.clone()));
            }
        }
        let relation = relation_name(&relation);
        let (subject, object) = (canonical(&subject), canonical(&object));
        out.relate(EntityRef::new(subject.as_str(), kind_of(&subject)), &relation, EntityRef::new(object.as_str(), kind_of(&object)), 1.0);
    }
    if out.relations.is_empty() {
        return Err(Invalid::Empty);
    }
    Ok(out)
}

/// What the model-based extractor did with the chunks it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmStats {
    /// Read by the model (its first or second answer taken).
    pub read: usize,
    /// Answered from the cache.
    pub cached: usize,
    /// Read by the local extractor instead: two answers not taken, or the model failed.
    pub fallback: usize,
}

pub struct LlmExtractor<'a> {
    pub model: &'a dyn TripleModel,
    pub cache: &'a dyn ExtractionCache,
    pub keys: structured::Keys,
    stats: std::sync::Mutex<LlmStats>,
}

impl<'a> LlmExtractor<'a> {
    pub fn new(model: &'a dyn TripleModel, cache: &'a dyn ExtractionCache, keys: structured::Keys) -> Self {
        Self { model, cache, keys, stats: Default::default() }
    }

    pub fn stats(&self) -> LlmStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_key(&self, text: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(self.model.id().as_bytes())
            .chain_update([0])
            .chain_update(self.name().as_bytes())
            .chain_update([0])
            .chain_update(text.as_bytes())
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn read(&self, text: &str) -> Extraction {
        let key = self.cache_key(text);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = self.cache.get(&key) {
            stats.cached += 1;
            return found;
        }
        drop(stats);
        let user = prompt(text);
        let mut answered = None;
        for attempt in 0..2 {
            match self.model.complete(SYSTEM, &user, GRAMMAR, attempt) {
                Ok(answer) => match parse(&answer, text) {
                    Ok(found) => {
                        answered = Some(found);
                        break;
                    }
                    Err(why) => tracing::debug!(attempt, %why, "model answer not taken"),
                },
                Err(why) => {
                    tracing::warn!(%why, "the model failed; reading the chunk locally");
                    break;
                }
            }
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        match answered {
            Some(mut found) => {
                stats.read += 1;
                // The names the model missed are still mentions.
                for m in extract_text(text).mentions {
                    found.mention(&m);
                }
                self.cache.put(&key, &found);
                found
            }
            None => {
                stats.fallback += 1;
                // The same model fails the same text again: remembered too.
                let local = extract_text(text);
                self.cache.put(&key, &local);
                local
            }
        }
    }
}

impl Extractor for LlmExtractor<'_> {
    fn name(&self) -> &str {
        "llm-1"
    }

    fn extract(&self, doc: &DocumentText<'_>) -> Vec<Extraction> {
        if doc.is_structured() {
            // Rows have their columns: nothing for a model to add.
            return structured::extract(doc, &self.keys);
        }
        doc.chunks.iter().map(|c| self.read(c.text)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    const TEXT: &str = "The Atlas service depends on Borealis. Borealis is run by the Payments Team.";

    #[test]
    fn answers_are_checked_against_the_schema_and_the_text() {
        let good = r#"{"triples": [{"subject": "The Atlas service", "relation": "depends on", "object": "Borealis"},
                                   {"subject": "Payments Team", "relation": "runs", "object": "Borealis"}]}"#;
        let found = parse(good, TEXT).unwrap();
        let r: Vec<_> = found.relations.iter().map(|r| (r.subject.name.as_str(), r.relation.as_str(), r.object.name.as_str())).collect();
        assert_eq!(r, vec![("Atlas", "depends_on", "Borealis"), ("Payments Team", "runs", "Borealis")]);
        assert_eq!(
            parse(r#"{"triples": [{"subject": "Atlas", "relation": "uses", "object": "Kafka"}]}"#, TEXT),
            Err(Invalid::Unsupported("Kafka".into()))
        );
        assert!(matches!(parse(r#"{"facts": []}"#, TEXT), Err(Invalid::Shape(_))));
        assert!(matches!(parse("Atlas depends on Borealis", TEXT), Err(Invalid::Shape(_))));
        assert_eq!(parse(r#"{"triples": []}"#, TEXT), Err(Invalid::Empty));
    }

    struct Scripted {
        answers: Mutex<Vec<String>>,
        calls: Mutex<usize>,
    }

    impl TripleModel for Scripted {
        fn id(&self) -> String {
            "scripted".into()
        }
        fn complete(&self, _: &str, user: &str, grammar: &str, _: u32) -> Result<String, String> {
            assert!(user.contains(TEXT) && grammar.contains("root ::="));
            *self.calls.lock().unwrap() += 1;
            self.answers.lock().unwrap().pop().ok_or_else(|| "no more".to_string())
        }
    }

    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, Extraction>>);

    impl ExtractionCache for Memory {
        fn get(&self, key: &str) -> Option<Extraction> {
            self.0.lock().unwrap().get(key).cloned()
        }
        fn put(&self, key: &str, extraction: &Extraction) {
            self.0.lock().unwrap().insert(key.to_string(), extraction.clone());
        }
    }

    #[test]
    fn an_invented_answer_is_retried_once_then_the_chunk_is_read_locally_and_good_answers_are_cached() {
        let invented = r#"{"triples": [{"subject": "Atlas", "relation": "uses", "object": "Kafka"}]}"#.to_string();
        let good = r#"{"triples": [{"subject": "Atlas", "relation": "depends_on", "object": "Borealis"}]}"#.to_string();
        // Answers are popped from the end: first the invented one, then the good one.
        let model = Scripted { answers: Mutex::new(vec![good, invented.clone()]), calls: Mutex::new(0) };
        let cache = Memory::default();
        let extractor = LlmExtractor::new(&model, &cache, Default::default());
        let doc = DocumentText::plain("text", "en", &[TEXT]);
        let found = extractor.extract(&doc);
        assert_eq!(found[0].relations.len(), 1);
        assert!(found[0].mentions.iter().any(|m| m.name == "Payments Team"), "names the model left out are mentioned");
        assert_eq!((*model.calls.lock().unwrap(), extractor.stats().read), (2, 1));
        // The same text again: from the cache, the model not asked.
        assert_eq!(extractor.extract(&doc), found);
        assert_eq!((*model.calls.lock().unwrap(), extractor.stats().cached), (2, 1));
        // Two invented answers: the local extractor reads the chunk.
        let model = Scripted { answers: Mutex::new(vec![invented.clone(), invented]), calls: Mutex::new(0) };
        let empty = Memory::default();
        let extractor = LlmExtractor::new(&model, &empty, Default::default());
        let local = extractor.extract(&doc);
        assert_eq!(local[0], extract_text(TEXT));
        assert_eq!(extractor.stats().fallback, 1);
    }
}
