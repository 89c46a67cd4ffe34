//! The model registry: language models known by name, each a GGUF file (and what it is) or a
//! remote OpenAI-compatible server; one of them the default that answers questions when the
//! configuration names none, and each knowledge base may name the one that answers in it.

use crate::CachedRow;
use rusqlite::{params, OptionalExtension};

use crate::{now, Error, Result, Store};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub path: String,
    pub architecture: String,
    pub quantization: Option<String>,
    pub parameters: u64,
    pub context_length: Option<u64>,
    pub size_bytes: u64,
    pub sha256: String,
    pub added_at: i64,
    pub default: bool,
    /// Set for a model served by an OpenAI-compatible server instead of a local file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteModel>,
}

/// Where a remote model runs. Its API key is never stored: only the name of the environment
/// variable the server reads it from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RemoteModel {
    /// Up to and including `/v1`.
    pub url: String,
    /// The model's name on that server.
    pub model: String,
    pub api_key_env: Option<String>,
}

const COLUMNS: &str = "name, path, architecture, quantization, parameters, context_length, size_bytes, sha256, added_at, \
                       name = (SELECT value FROM store_meta WHERE key = 'default_llm'), url, remote_model, api_key_env";

fn model(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegisteredModel> {
    Ok(RegisteredModel {
        name: r.get(0)?,
        path: r.get(1)?,
        architecture: r.get(2)?,
        quantization: r.get(3)?,
        parameters: r.get::<_, i64>(4)? as u64,
        context_length: r.get::<_, Option<i64>>(5)?.map(|c| c as u64),
        size_bytes: r.get::<_, i64>(6)? as u64,
        sha256: r.get(7)?,
        added_at: r.get(8)?,
        default: r.get::<_, Option<bool>>(9)?.unwrap_or(false),
        remote: match r.get::<_, Option<String>>(10)? {
            Some(url) => Some(RemoteModel { url, model: r.get::<_, Option<String>>(11)?.unwrap_or_default(), api_key_env: r.get(12)? }),
            None => None,
        },
    })
}

impl Store {
    /// Registers (or re-registers) a model under `name`.
    pub fn add_model(&self, m: &RegisteredModel) -> Result<()> {
        if !zhiku_core::is_valid_name(&m.name) {
            return Err(Error::Invalid { what: "model name", value: m.name.clone(), rule: "use letters, digits and . _ - @" });
        }
        if let Some(env) = m.remote.as_ref().and_then(|r| r.api_key_env.as_deref()) {
            if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Invalid {
                    what: "API key variable",
                    value: env.to_string(),
                    rule: "name an environment variable: letters, digits and _",
                });
            }
        }
        let remote = m.remote.as_ref();
        self.conn().execute(
            "INSERT INTO model (name, path, architecture, quantization, parameters, context_length, size_bytes, sha256, added_at,
                                url, remote_model, api_key_env)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (name) DO UPDATE SET path = excluded.path, architecture = excluded.architecture,
               quantization = excluded.quantization, parameters = excluded.parameters, context_length = excluded.context_length,
               size_bytes = excluded.size_bytes, sha256 = excluded.sha256, url = excluded.url,
               remote_model = excluded.remote_model, api_key_env = excluded.api_key_env",
            params![
                m.name,
                m.path,
                m.architecture,
                m.quantization,
                m.parameters as i64,
                m.context_length.map(|c| c as i64),
                m.size_bytes as i64,
                m.sha256,
                now(),
                remote.map(|r| &r.url),
                remote.map(|r| &r.model),
                remote.and_then(|r| r.api_key_env.as_ref()),
            ],
        )?;
        Ok(())
    }

    pub fn models(&self) -> Result<Vec<RegisteredModel>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM model ORDER BY name"))?;
        let models = stmt.query_map([], model)?.collect::<rusqlite::Result<_>>()?;
        Ok(models)
    }

    pub fn registered_model(&self, name: &str) -> Result<Option<RegisteredModel>> {
        Ok(self.conn().cached_row(&format!("SELECT {COLUMNS} FROM model WHERE name = ?1"), params![name], model).optional()?)
    }

    /// The default language model, if one is set.
    pub fn default_model(&self) -> Result<Option<RegisteredModel>> {
        Ok(self.models()?.into_iter().find(|m| m.default))
    }

    pub fn set_default_model(&self, name: &str) -> Result<()> {
        if self.registered_model(name)?.is_none() {
            return Err(Error::Invalid { what: "model", value: name.to_string(), rule: "no such model (zhiku models add)" });
        }
        self.conn().execute(
            "INSERT INTO store_meta (key, value) VALUES ('default_llm', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![name],
        )?;
        Ok(())
    }

    /// Knowledge bases that answer with the model.
    pub fn kbs_using_model(&self, name: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name FROM kb WHERE model = ?1 ORDER BY name")?;
        let kbs = stmt.query_map(params![name], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(kbs)
    }

    /// Forgets a model (never its file). One in use (the default, or the model of a knowledge
    /// base) only with `force`, which leaves no default and those knowledge bases on it.
    pub fn remove_model(&self, name: &str, force: bool) -> Result<bool> {
        let Some(m) = self.registered_model(name)? else { return Ok(false) };
        let kbs = self.kbs_using_model(name)?;
        if !force {
            if m.default {
                return Err(Error::Invalid {
                    what: "model",
                    value: name.to_string(),
                    rule: "it is the default model: choose another first, or --force",
                });
            }
            if !kbs.is_empty() {
                return Err(Error::InUse {
                    what: format!("model {name}"),
                    users: kbs.join(", "),
                    hint: "set another model on them first, or --force",
                });
            }
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if m.default {
            tx.execute("DELETE FROM store_meta WHERE key = 'default_llm'", [])?;
        }
        tx.execute("UPDATE kb SET model = '' WHERE model = ?1", params![name])?;
        let removed = tx.execute("DELETE FROM model WHERE name = ?1", params![name])? == 1;
        tx.commit()?;
        Ok(removed)
    }

    /// The registered model answers in the knowledge base come from, if it names one.
    pub fn kb_model(&self, kb: &str) -> Result<Option<String>> {
        let value = self.kb_text(kb, "SELECT model FROM kb WHERE name = ?1")?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// Sets (or with `None` clears) the model that answers in the knowledge base; it must be
    /// registered.
    pub fn set_kb_model(&self, kb: &str, model: Option<&str>) -> Result<()> {
        if let Some(name) = model {
            if self.registered_model(name)?.is_none() {
                return Err(Error::Invalid { what: "model", value: name.to_string(), rule: "no such model (zhiku models list)" });
            }
        }
        self.update_kb(kb, "UPDATE kb SET model = ?2 WHERE name = ?1", model.unwrap_or_default())
    }
}

/// An adapter by name, at a version or the latest (`name` or `name@3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRef {
    pub name: String,
    pub version: Option<u32>,
}

impl std::str::FromStr for AdapterRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, version) = match s.rsplit_once('@') {
            Some((name, v)) => (name, Some(v.parse::<u32>().map_err(|_| format!("adapter '{s}': the version after @ must be a number"))?)),
            None => (s, None),
        };
        if !zhiku_core::is_valid_name(name) || name.contains('@') {
            return Err(format!("adapter name '{name}': use letters, digits and . _ -"));
        }
        Ok(Self { name: name.to_string(), version })
    }
}

impl std::fmt::Display for AdapterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What registering an adapter records.
pub struct NewAdapter<'a> {
    pub name: &'a str,
    pub path: &'a str,
    /// The GGUF file of the model it was trained on.
    pub base_path: &'a str,
    /// The knowledge base whose data trained it, if one did.
    pub kb: Option<&'a str>,
    pub rank: u32,
    pub alpha: f64,
    pub eval_loss_before: Option<f64>,
    pub eval_loss_after: Option<f64>,
    pub sha256: &'a str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegisteredAdapter {
    pub name: String,
    pub version: u32,
    pub path: String,
    pub base_path: String,
    pub kb: Option<String>,
    pub rank: u32,
    pub alpha: f64,
    pub eval_loss_before: Option<f64>,
    pub eval_loss_after: Option<f64>,
    pub sha256: String,
    pub created_at: i64,
}

const ADAPTER_COLUMNS: &str = "name, version, path, base_path, kb, rank, alpha, eval_loss_before, eval_loss_after, sha256, created_at";

fn adapter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegisteredAdapter> {
    Ok(RegisteredAdapter {
        name: r.get(0)?,
        version: r.get(1)?,
        path: r.get(2)?,
        base_path: r.get(3)?,
        kb: r.get(4)?,
        rank: r.get(5)?,
        alpha: r.get(6)?,
        eval_loss_before: r.get(7)?,
        eval_loss_after: r.get(8)?,
        sha256: r.get(9)?,
        created_at: r.get(10)?,
    })
}

impl Store {
    /// The version `add_adapter` will give the next adapter of this name.
    pub fn next_adapter_version(&self, name: &str) -> Result<u32> {
        let max: Option<u32> = self.conn().cached_row("SELECT max(version) FROM adapter WHERE name = ?1", params![name], |r| r.get(0))?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// Registers an adapter as the next version of its name; returns that version.
    pub fn add_adapter(&self, a: &NewAdapter<'_>, version: u32) -> Result<u32> {
        let parsed: AdapterRef = a.name.parse().map_err(|_: String| Error::Invalid {
            what: "adapter name",
            value: a.name.to_string(),
            rule: "use letters, digits and . _ - (a version comes from registering)",
        })?;
        if parsed.version.is_some() {
            return Err(Error::Invalid {
                what: "adapter name",
                value: a.name.to_string(),
                rule: "versions are given by registering; drop the @",
            });
        }
        self.conn().execute(
            "INSERT INTO adapter (name, version, path, base_path, kb, rank, alpha, eval_loss_before, eval_loss_after, sha256, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                parsed.name,
                version,
                a.path,
                a.base_path,
                a.kb,
                a.rank,
                a.alpha,
                a.eval_loss_before,
                a.eval_loss_after,
                a.sha256,
                now()
            ],
        )?;
        Ok(version)
    }

    /// Every adapter version, by name then version.
    pub fn adapters(&self) -> Result<Vec<RegisteredAdapter>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {ADAPTER_COLUMNS} FROM adapter ORDER BY name, version"))?;
        let rows = stmt.query_map([], adapter_row)?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The adapter at the version asked, or the latest version of the name.
    pub fn adapter(&self, which: &AdapterRef) -> Result<Option<RegisteredAdapter>> {
        let conn = self.conn();
        Ok(match which.version {
            Some(v) => conn
                .cached_row(
                    &format!("SELECT {ADAPTER_COLUMNS} FROM adapter WHERE name = ?1 AND version = ?2"),
                    params![which.name, v],
                    adapter_row,
                )
                .optional()?,
            None => conn
                .cached_row(
                    &format!("SELECT {ADAPTER_COLUMNS} FROM adapter WHERE name = ?1 ORDER BY version DESC LIMIT 1"),
                    params![which.name],
                    adapter_row,
                )
                .optional()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_are_versioned_by_name_and_chosen_per_knowledge_base() {
        let store = Store::open_in_memory().unwrap();
        let new = |path: &'static str| NewAdapter {
            name: "hr-tone",
            path,
            base_path: "/m/smol.gguf",
            kb: Some("hr"),
            rank: 8,
            alpha: 16.0,
            eval_loss_before: Some(2.0),
            eval_loss_after: Some(1.5),
            sha256: "00",
        };
        assert_eq!(store.next_adapter_version("hr-tone").unwrap(), 1);
        store.add_adapter(&new("/a/v1.gguf"), 1).unwrap();
        store.add_adapter(&new("/a/v2.gguf"), store.next_adapter_version("hr-tone").unwrap()).unwrap();
        let latest = store.adapter(&"hr-tone".parse().unwrap()).unwrap().unwrap();
        assert_eq!((latest.version, latest.path.as_str()), (2, "/a/v2.gguf"));
        assert_eq!(store.adapter(&"hr-tone@1".parse().unwrap()).unwrap().unwrap().path, "/a/v1.gguf");
        assert!(store.adapter(&"hr-tone@3".parse().unwrap()).unwrap().is_none());
        assert!("bad name@x".parse::<AdapterRef>().is_err());

        store.ensure_kb("hr", &[]).unwrap();
        assert_eq!(store.kb_adapter("hr").unwrap(), None);
        store.set_kb_adapter("hr", Some(&"hr-tone@1".parse().unwrap())).unwrap();
        assert_eq!(store.kb_adapter("hr").unwrap().map(|a| a.to_string()), Some("hr-tone@1".to_string()));
        assert!(store.set_kb_adapter("hr", Some(&"other".parse().unwrap())).is_err(), "only registered adapters");
        store.set_kb_adapter("hr", None).unwrap();
        assert_eq!(store.kb_adapter("hr").unwrap(), None);
    }

    fn m(name: &str) -> RegisteredModel {
        RegisteredModel {
            name: name.into(),
            path: format!("/models/{name}.gguf"),
            architecture: "llama".into(),
            quantization: Some("Q4_K_M".into()),
            parameters: 1_000_000,
            context_length: Some(4096),
            size_bytes: 10,
            sha256: "ab".repeat(32),
            added_at: 0,
            default: false,
            remote: None,
        }
    }

    #[test]
    fn one_default_which_is_kept_from_removal_unless_forced() {
        let s = Store::open_in_memory().unwrap();
        s.add_model(&m("small")).unwrap();
        s.add_model(&m("big")).unwrap();
        assert!(s.default_model().unwrap().is_none());
        s.set_default_model("big").unwrap();
        assert_eq!(s.default_model().unwrap().unwrap().name, "big");
        assert!(s.set_default_model("nope").is_err());
        assert!(matches!(s.remove_model("big", false), Err(Error::Invalid { .. })));
        assert!(s.remove_model("small", false).unwrap());
        assert!(s.remove_model("big", true).unwrap());
        assert!(s.default_model().unwrap().is_none() && s.models().unwrap().is_empty());
        assert!(s.add_model(&m("bad name")).is_err());
    }

    #[test]
    fn remote_models_and_the_knowledge_bases_that_use_a_model() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("hr", &[]).unwrap();
        let remote = RegisteredModel {
            remote: Some(RemoteModel { url: "http://gpu-1:8000/v1".into(), model: "qwen3-8b".into(), api_key_env: Some("GPU_KEY".into()) }),
            path: String::new(),
            ..m("gpu")
        };
        s.add_model(&remote).unwrap();
        assert_eq!(s.registered_model("gpu").unwrap().unwrap().remote, remote.remote);
        assert_eq!(s.registered_model("gpu").unwrap().unwrap().remote.unwrap().api_key_env.as_deref(), Some("GPU_KEY"));
        let bad_env = RegisteredModel {
            remote: Some(RemoteModel { api_key_env: Some("$(x)".into()), ..remote.remote.clone().unwrap() }),
            ..m("bad")
        };
        assert!(s.add_model(&bad_env).is_err());

        assert_eq!(s.kb_model("hr").unwrap(), None);
        assert!(s.set_kb_model("hr", Some("nope")).is_err());
        assert!(s.set_kb_model("absent", Some("gpu")).is_err());
        s.set_kb_model("hr", Some("gpu")).unwrap();
        assert_eq!(s.kb_model("hr").unwrap().as_deref(), Some("gpu"));
        assert_eq!(s.kbs_using_model("gpu").unwrap(), ["hr"]);
        let refused = s.remove_model("gpu", false).unwrap_err().to_string();
        assert!(refused.contains("hr"), "{refused}");
        assert!(s.remove_model("gpu", true).unwrap());
        assert_eq!(s.kb_model("hr").unwrap(), None);
        s.set_kb_model("hr", None).unwrap();
    }
}
