//! Which models stay loaded: a memory budget over every loaded model, filled on demand and
//! emptied least-recently-used first. A model answering a request (someone still holds its
//! `Arc`) or pinned (the server's default) is never unloaded; a model that cannot fit beside
//! those is refused with the numbers, not loaded over the budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

struct Resident<T: ?Sized> {
    model: Arc<T>,
    bytes: u64,
    last_used: u64,
    pinned: bool,
}

struct State<T: ?Sized> {
    resident: HashMap<String, Resident<T>>,
    clock: u64,
    loads: u64,
    evictions: u64,
}

/// Loaded models by key (whatever names one model's weights: a file, a file with an adapter,
/// a remote endpoint), within `budget_bytes` together.
pub struct ModelPool<T: ?Sized> {
    budget_bytes: u64,
    state: Mutex<State<T>>,
}

/// What the pool holds, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub loaded: usize,
    pub resident_bytes: u64,
    pub budget_bytes: u64,
    pub loads: u64,
    pub evictions: u64,
}

impl<T: ?Sized> ModelPool<T> {
    pub fn new(budget_bytes: u64) -> Self {
        Self { budget_bytes, state: Mutex::new(State { resident: HashMap::new(), clock: 0, loads: 0, evictions: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a model loaded elsewhere that must stay loaded (counted against the budget all the
    /// same, so that what is left for the others is true).
    pub fn pin(&self, key: &str, model: Arc<T>, bytes: u64) {
        let mut state = self.lock();
        state.clock += 1;
        let last_used = state.clock;
        state.resident.insert(key.to_string(), Resident { model, bytes, last_used, pinned: true });
    }

    /// The model under `key`, loaded with `load` (which needs `bytes` of memory) when it is
    /// not resident, after unloading idle models as the budget requires. Loading holds the
    /// pool, so that two first requests for one model load it once.
    pub fn get_or_load(&self, key: &str, bytes: u64, load: impl FnOnce() -> Result<Arc<T>>) -> Result<Arc<T>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some(resident) = state.resident.get_mut(key) {
            resident.last_used = now;
            return Ok(resident.model.clone());
        }
        if self.budget_bytes > 0 {
            let mut used: u64 = state.resident.values().map(|r| r.bytes).sum();
            let held: u64 = state.resident.values().filter(|r| r.pinned || Arc::strong_count(&r.model) > 1).map(|r| r.bytes).sum();
            // Nothing is unloaded for a model that would not fit even then.
            if held.saturating_add(bytes) > self.budget_bytes {
                return Err(Error::MemoryBudget { model: key.to_string(), needed: bytes, budget: self.budget_bytes, held });
            }
            while used + bytes > self.budget_bytes {
                let idle = state
                    .resident
                    .iter()
                    .filter(|(_, r)| !r.pinned && Arc::strong_count(&r.model) == 1)
                    .min_by_key(|(_, r)| r.last_used)
                    .map(|(k, _)| k.clone());
                let Some(idle) = idle else { break };
                if let Some(evicted) = state.resident.remove(&idle) {
                    used -= evicted.bytes;
                    state.evictions += 1;
                    tracing::info!(model = %idle, mib = evicted.bytes >> 20, "unloaded the least recently used model to make room");
                }
            }
        }
        let model = load()?;
        state.loads += 1;
        state.resident.insert(key.to_string(), Resident { model: model.clone(), bytes, last_used: now, pinned: false });
        Ok(model)
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            loaded: state.resident.len(),
            resident_bytes: state.resident.values().map(|r| r.bytes).sum(),
            budget_bytes: self.budget_bytes,
            loads: state.loads,
            evictions: state.evictions,
        }
    }

    /// Keys of the loaded models, most recently used first.
    pub fn loaded(&self) -> Vec<String> {
        let state = self.lock();
        let mut keys: Vec<(&String, u64)> = state.resident.iter().map(|(k, r)| (k, r.last_used)).collect();
        keys.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
        keys.into_iter().map(|(k, _)| k.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> impl FnOnce() -> Result<Arc<str>> + '_ {
        move || Ok(Arc::from(text))
    }

    #[test]
    fn loads_once_and_unloads_the_least_recently_used_idle_model() {
        let pool: ModelPool<str> = ModelPool::new(100);
        let a = pool.get_or_load("a", 40, load("A")).unwrap();
        drop(a);
        pool.get_or_load("b", 40, load("B")).unwrap();
        // "a" used again: "b" is now the least recently used.
        let again = pool.get_or_load("a", 40, || panic!("a is resident")).unwrap();
        assert_eq!(&*again, "A");
        drop(again);
        pool.get_or_load("c", 40, load("C")).unwrap();
        assert_eq!(pool.loaded(), ["c", "a"]);
        let stats = pool.stats();
        assert_eq!((stats.loaded, stats.resident_bytes, stats.loads, stats.evictions), (2, 80, 3, 1));
    }

    #[test]
    fn a_model_in_use_or_pinned_stays_and_what_cannot_fit_is_refused() {
        let pool: ModelPool<str> = ModelPool::new(100);
        pool.pin("default", Arc::from("D"), 50);
        let busy = pool.get_or_load("busy", 40, load("B")).unwrap();
        let refused = pool.get_or_load("big", 30, load("X")).unwrap_err();
        match refused {
            Error::MemoryBudget { model, needed, budget, held } => assert_eq!((model.as_str(), needed, budget, held), ("big", 30, 100, 90)),
            other => panic!("{other}"),
        }
        assert!(pool.get_or_load("big", 30, load("X")).unwrap_err().to_string().contains("memory budget"));
        // Once the request holding "busy" is done, it can go.
        drop(busy);
        assert_eq!(&*pool.get_or_load("big", 30, load("X")).unwrap(), "X");
        assert_eq!(pool.loaded(), ["big", "default"]);
        // Larger than what the pinned model leaves: refused, and nothing unloaded for it.
        assert!(matches!(pool.get_or_load("huge", 51, load("H")), Err(Error::MemoryBudget { .. })));
        assert_eq!(pool.stats().evictions, 1);
    }

    #[test]
    fn a_failed_load_leaves_nothing_behind_and_no_budget_means_no_unloading() {
        let pool: ModelPool<str> = ModelPool::new(0);
        let failed = pool.get_or_load("bad", 10, || Err(Error::Inference("broken file".into())));
        assert!(failed.is_err());
        for name in ["a", "b", "c"] {
            pool.get_or_load(name, u64::MAX / 8, load(name)).unwrap();
        }
        let stats = pool.stats();
        assert_eq!((stats.loaded, stats.evictions, stats.loads), (3, 0, 3));
    }
}
