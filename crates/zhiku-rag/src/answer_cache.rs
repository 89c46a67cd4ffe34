//! The semantic answer cache (opt-in per knowledge base): a question whose embedding is nearly
//! the same as one answered before reuses that answer — but only for a caller holding exactly
//! the same principals (so the same documents are readable), with the same generation settings,
//! and while the knowledge base is at the same store generation (any ingestion, deletion or ACL
//! change moves it on, which retires every answer cached before).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use zhiku_core::Caller;

use crate::Answer;

/// Cosine similarity from which two questions count as the same question.
pub const SAME_QUESTION: f32 = 0.97;
/// Answers kept at most, the oldest dropped first.
const CAPACITY: usize = 2048;

/// A question as the cache compares it: lower case, words only (punctuation and spacing are
/// not a different question), so "How many days?" and "how many days" meet exactly.
pub fn normalize(question: &str) -> String {
    let cleaned: String = question.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect::<String>().to_lowercase();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What must be equal for an answer to be reused, besides the question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub kb: String,
    pub generation: u64,
    /// The caller's principals, sorted (`*` for the administrator).
    pub principals: String,
    /// The generation settings that shaped the answer.
    pub settings: String,
}

impl Scope {
    pub fn new(kb: &str, generation: u64, caller: &Caller, settings: String) -> Self {
        let principals = match caller.principals() {
            None => "*".to_string(),
            Some(held) => held.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
        };
        Self { kb: kb.to_string(), generation, principals, settings }
    }
}

#[derive(Default)]
pub struct AnswerCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_scope: HashMap<Scope, Vec<(Vec<f32>, Answer)>>,
    /// Insertion order, for dropping the oldest.
    order: VecDeque<Scope>,
}

impl AnswerCache {
    /// A cached answer to a question with this (unit-length) embedding, if there is one.
    pub fn get(&self, scope: &Scope, question: &[f32]) -> Option<Answer> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Answers of an older generation of this knowledge base can never be used again.
        entries.by_scope.retain(|s, _| s.kb != scope.kb || s.generation >= scope.generation);
        let candidates = entries.by_scope.get(scope)?;
        candidates
            .iter()
            .map(|(q, a)| (q.iter().zip(question).map(|(x, y)| x * y).sum::<f32>(), a))
            .filter(|(similarity, _)| *similarity >= SAME_QUESTION)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, answer)| answer.clone())
    }

    pub fn put(&self, scope: Scope, question: Vec<f32>, answer: Answer) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.by_scope.entry(scope.clone()).or_default().push((question, answer));
        entries.order.push_back(scope);
        while entries.order.len() > CAPACITY {
            let Some(oldest) = entries.order.pop_front() else { break };
            if let Some(list) = entries.by_scope.get_mut(&oldest) {
                if !list.is_empty() {
                    list.remove(0);
                }
                if list.is_empty() {
                    entries.by_scope.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer {
        Answer { answer: text.into(), citations: Vec::new(), abstained: false, generated: true, cached: false, rewrites: Vec::new() }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn reused_only_for_the_same_question_principals_settings_and_generation() {
        let cache = AnswerCache::default();
        let alice = Caller::user("alice", ["staff"]).unwrap();
        let bob = Caller::user("bob", ["staff"]).unwrap();
        let scope = Scope::new("hr", 3, &alice, "greedy".into());
        let q = unit(&[1.0, 0.2, 0.0]);
        cache.put(scope.clone(), q.clone(), answer("five days"));
        assert_eq!(cache.get(&scope, &unit(&[1.0, 0.21, 0.0])).unwrap().answer, "five days");
        assert!(cache.get(&scope, &unit(&[0.2, 1.0, 0.0])).is_none(), "another question");
        assert!(cache.get(&Scope::new("hr", 3, &bob, "greedy".into()), &q).is_none(), "other principals");
        assert!(cache.get(&Scope::new("hr", 3, &alice, "t=0.7".into()), &q).is_none(), "other settings");
        assert!(cache.get(&Scope::new("hr", 4, &alice, "greedy".into()), &q).is_none(), "the knowledge base changed");
        assert!(cache.get(&scope, &q).is_none(), "and the old generation's answers are gone for good");
    }

    #[test]
    fn questions_differing_in_case_spacing_or_punctuation_are_the_same() {
        assert_eq!(normalize("How many days?  "), normalize("how many DAYS"));
        assert_eq!(normalize("年假有几天？"), normalize("年假有几天"));
        assert_ne!(normalize("How many days of leave?"), normalize("How many days of sick leave?"));
    }

    #[test]
    fn the_oldest_answers_go_first() {
        let cache = AnswerCache::default();
        let scope = Scope::new("kb", 1, &Caller::Admin, String::new());
        for i in 0..CAPACITY + 5 {
            let mut v = vec![0.0; CAPACITY + 5];
            v[i] = 1.0;
            cache.put(scope.clone(), v, answer(&i.to_string()));
        }
        let probe = |i: usize| {
            let mut v = vec![0.0; CAPACITY + 5];
            v[i] = 1.0;
            cache.get(&scope, &v)
        };
        assert!(probe(0).is_none() && probe(4).is_none());
        assert_eq!(probe(5).unwrap().answer, "5");
        assert_eq!(probe(CAPACITY + 4).unwrap().answer, (CAPACITY + 4).to_string());
    }
}
