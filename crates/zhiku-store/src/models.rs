//! The model registry: language models known by name (a GGUF file and what it is), one of them
//! the default that answers questions when the configuration names none.

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
}

const COLUMNS: &str = "name, path, architecture, quantization, parameters, context_length, size_bytes, sha256, added_at, \
                       name = (SELECT value FROM store_meta WHERE key = 'default_llm')";

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
    })
}

impl Store {
    /// Registers (or re-registers) a model under `name`.
    pub fn add_model(&self, m: &RegisteredModel) -> Result<()> {
        if !zhiku_core::is_valid_name(&m.name) {
            return Err(Error::Invalid { what: "model name", value: m.name.clone(), rule: "use letters, digits and . _ - @" });
        }
        self.conn().execute(
            "INSERT INTO model (name, path, architecture, quantization, parameters, context_length, size_bytes, sha256, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name) DO UPDATE SET path = excluded.path, architecture = excluded.architecture,
               quantization = excluded.quantization, parameters = excluded.parameters, context_length = excluded.context_length,
               size_bytes = excluded.size_bytes, sha256 = excluded.sha256",
            params![
                m.name,
                m.path,
                m.architecture,
                m.quantization,
                m.parameters as i64,
                m.context_length.map(|c| c as i64),
                m.size_bytes as i64,
                m.sha256,
                now()
            ],
        )?;
        Ok(())
    }

    pub fn models(&self) -> Result<Vec<RegisteredModel>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM model ORDER BY name"))?;
        let models = stmt.query_map([], model)?.collect::<rusqlite::Result<_>>()?;
        Ok(models)
    }

    pub fn registered_model(&self, name: &str) -> Result<Option<RegisteredModel>> {
        Ok(self.conn().query_row(&format!("SELECT {COLUMNS} FROM model WHERE name = ?1"), params![name], model).optional()?)
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

    /// Forgets a model (never its file). The default one only with `force`, which leaves no default.
    pub fn remove_model(&self, name: &str, force: bool) -> Result<bool> {
        let Some(m) = self.registered_model(name)? else { return Ok(false) };
        if m.default && !force {
            return Err(Error::Invalid {
                what: "model",
                value: name.to_string(),
                rule: "it is the default model: choose another first, or --force",
            });
        }
        let conn = self.conn();
        if m.default {
            conn.execute("DELETE FROM store_meta WHERE key = 'default_llm'", [])?;
        }
        Ok(conn.execute("DELETE FROM model WHERE name = ?1", params![name])? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
