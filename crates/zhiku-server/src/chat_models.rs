//! The language models the server answers with: the configured default, loaded at start and
//! kept, and every model of the registry (`zhiku models add`), loaded when a request or a
//! knowledge base first names it and unloaded, least recently used first, when the models
//! memory budget needs room. Adapters are models of their own in the same budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zhiku_models::pool::{ModelPool, PoolStats};
use zhiku_models::{ChatModel, LlamaGenerator, RemoteChat, RemoteEndpoint, RemotePool};
use zhiku_store::{RegisteredModel, RemoteModel, Store};

use crate::ApiError;

/// The model the server starts with.
pub struct DefaultModel {
    /// What clients ask for it by.
    pub id: String,
    pub model: Arc<dyn ChatModel>,
    /// The GGUF file, for adapters and for the registry's entries of the same file (`None`:
    /// a remote model).
    pub path: Option<PathBuf>,
}

/// How remote models are called.
#[derive(Debug, Clone, Copy)]
pub struct RemoteSettings {
    pub timeout: Duration,
    pub retries: u32,
}

/// A model chosen for a request.
pub struct Chosen {
    /// Its name: the default's id or the registered name.
    pub id: String,
    pub model: Arc<dyn ChatModel>,
    /// The GGUF file adapters apply to (`None`: remote).
    pub path: Option<PathBuf>,
}

pub struct ChatModels {
    default: Option<DefaultModel>,
    pool: ModelPool<dyn ChatModel>,
    remote: RemoteSettings,
}

fn file_key(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    format!("file:{}", path.display())
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl ChatModels {
    /// `budget_bytes` covers every loaded model, the default included (0: no limit).
    pub fn new(default: Option<DefaultModel>, budget_bytes: u64, remote: RemoteSettings) -> Self {
        let pool = ModelPool::new(budget_bytes);
        if let Some(d) = &default {
            match &d.path {
                Some(path) => pool.pin(&file_key(path), d.model.clone(), file_bytes(path)),
                None => pool.pin("remote:default", d.model.clone(), 0),
            }
        }
        Self { default, pool, remote }
    }

    pub fn default_model(&self) -> Option<&DefaultModel> {
        self.default.as_ref()
    }

    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    fn default_chosen(&self) -> Option<Chosen> {
        self.default.as_ref().map(|d| Chosen { id: d.id.clone(), model: d.model.clone(), path: d.path.clone() })
    }

    /// The model a request names: the default's id or a registered name. `Ok(None)`: no such
    /// model.
    pub fn named(&self, store: &Store, name: &str) -> Result<Option<Chosen>, ApiError> {
        if let Some(chosen) = self.default_chosen().filter(|d| d.id == name) {
            return Ok(Some(chosen));
        }
        match store.registered_model(name)? {
            Some(registered) => self.load(&registered).map(Some),
            None => Ok(None),
        }
    }

    /// The model that answers in a knowledge base: the one it names, else the default.
    pub fn for_kb(&self, store: &Store, kb: &str) -> Result<Chosen, ApiError> {
        if let Some(name) = store.kb_model(kb)? {
            return match store.registered_model(&name)? {
                Some(registered) => self.load(&registered),
                None => Err(ApiError::unavailable(format!(
                    "knowledge base '{kb}' answers with model '{name}', which is no longer registered; set another (zhiku kb set {kb} --model NAME)"
                ))),
            };
        }
        self.default_chosen().ok_or_else(no_model)
    }

    fn load(&self, registered: &RegisteredModel) -> Result<Chosen, ApiError> {
        let name = registered.name.clone();
        let busy = |e: zhiku_models::Error| match e {
            e @ zhiku_models::Error::MemoryBudget { .. } => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(format!("cannot load the model {name}: {e}")),
        };
        match &registered.remote {
            Some(remote) => {
                let endpoint = remote_endpoint(&name, remote, self.remote).map_err(ApiError::unavailable)?;
                // Keyed by what it calls, so that re-registering the name elsewhere is a new model.
                let key = format!("remote:{name}:{}:{}", remote.url, remote.model);
                let model = self
                    .pool
                    .get_or_load(&key, 0, || Ok(Arc::new(RemoteChat::new(RemotePool::new(vec![endpoint]))) as Arc<dyn ChatModel>))
                    .map_err(busy)?;
                Ok(Chosen { id: registered.name.clone(), model, path: None })
            }
            None => {
                let path = PathBuf::from(&registered.path);
                let model = self
                    .pool
                    .get_or_load(&file_key(&path), file_bytes(&path), || {
                        tracing::info!(model = %registered.name, "loading a registered model");
                        Ok(Arc::new(LlamaGenerator::load(&path)?) as Arc<dyn ChatModel>)
                    })
                    .map_err(busy)?;
                Ok(Chosen { id: registered.name.clone(), model, path: Some(path) })
            }
        }
    }

    /// `base` (a local model) with a LoRA adapter file applied: the weights are mapped from
    /// the same file, so the adapter is what it adds to memory.
    pub fn with_adapter(&self, base: &Path, adapter: &Path) -> Result<Arc<dyn ChatModel>, ApiError> {
        let key = format!("{}+lora:{}", file_key(base), adapter.display());
        self.pool
            .get_or_load(&key, file_bytes(adapter), || {
                Ok(Arc::new(LlamaGenerator::load(base)?.with_lora(adapter, 1.0)?) as Arc<dyn ChatModel>)
            })
            .map_err(|e| match e {
                e @ zhiku_models::Error::MemoryBudget { .. } => ApiError::unavailable(e.to_string()),
                e => ApiError::internal(e),
            })
    }
}

/// How to call a registered remote model, its API key read from the environment variable it
/// names (the key itself is never stored).
pub fn remote_endpoint(name: &str, remote: &RemoteModel, settings: RemoteSettings) -> Result<RemoteEndpoint, String> {
    let api_key = match &remote.api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .map_err(|_| format!("model {name} reads its API key from the environment variable {var}, which is not set here"))?,
        ),
        None => None,
    };
    Ok(RemoteEndpoint {
        base_url: remote.url.clone(),
        api_key,
        model: remote.model.clone(),
        timeout: settings.timeout,
        retries: settings.retries,
    })
}

pub fn no_model() -> ApiError {
    ApiError::unavailable("no language model is installed; run `zhiku setup`")
}
