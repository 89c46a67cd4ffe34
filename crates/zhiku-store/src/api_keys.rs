//! API keys: `zk_<id>_<secret>`, shown once when created. The store keeps the id in clear (to
//! find the key) and only a SHA-256 of the secret; a presented key is checked by comparing
//! hashes in constant time, so neither the table nor the timing of a failed check gives the
//! secret away. Secrets are 256 random bits, which is why a plain hash (no slow KDF) suffices.

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{now, Error, Result, Store};

const PREFIX: &str = "zk_";

/// A key as listed: never its secret.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub user: String,
    /// Acts as an administrator: reads everything, manages knowledge bases and documents.
    pub admin: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

/// A newly created key, with the one copy of its full text.
#[derive(Debug)]
pub struct ApiKey {
    pub info: ApiKeyInfo,
    pub key: String,
}

/// The listed columns, in the order [`key_info`] reads them.
const COLUMNS: &str = "id, name, user_name, admin, created_at, last_used_at, revoked_at IS NOT NULL";

fn key_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        admin: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked: r.get(6)?,
    })
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal contents, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
}

impl Store {
    /// Creates a key named `name` that acts as `user` (as an administrator when `admin`).
    pub fn create_api_key(&self, name: &str, user: &str, admin: bool) -> Result<ApiKey> {
        for (what, value) in [("key name", name), ("user name", user)] {
            if !valid_name(value) {
                return Err(Error::Invalid { what, value: value.to_string(), rule: "use letters, digits and _ - . @ (at most 64)" });
            }
        }
        let (id, secret) = (random_hex(6)?, random_hex(32)?);
        let created_at = now();
        self.conn().execute(
            "INSERT INTO api_key (id, name, user_name, secret_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, name, user, hash(&secret).as_slice(), admin, created_at],
        )?;
        let info = ApiKeyInfo {
            id: id.clone(),
            name: name.to_string(),
            user: user.to_string(),
            admin,
            created_at,
            last_used_at: None,
            revoked: false,
        };
        Ok(ApiKey { info, key: format!("{PREFIX}{id}_{secret}") })
    }

    /// The key's record when `presented` is a live key, else `None` (malformed, unknown,
    /// wrong secret or revoked alike).
    pub fn verify_api_key(&self, presented: &str) -> Result<Option<ApiKeyInfo>> {
        let Some((id, secret)) = presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else { return Ok(None) };
        let conn = self.conn();
        let row: Option<(Vec<u8>, ApiKeyInfo)> = conn
            .query_row(&format!("SELECT {COLUMNS}, secret_hash FROM api_key WHERE id = ?1"), params![id], |r| Ok((r.get(7)?, key_info(r)?)))
            .optional()?;
        // The hash is compared even for an unknown id, so the time taken does not tell ids apart.
        let (stored, info) = match row {
            Some(found) => found,
            None => (vec![0; 32], ApiKeyInfo { revoked: true, ..Default::default() }),
        };
        if !constant_time_eq(&stored, &hash(secret)) || info.revoked {
            return Ok(None);
        }
        // Coarse (a minute) so that a busy key does not write on every request.
        let at = now();
        if info.last_used_at.is_none_or(|t| at - t >= 60) {
            conn.execute("UPDATE api_key SET last_used_at = ?2 WHERE id = ?1", params![id, at])?;
        }
        Ok(Some(info))
    }

    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM api_key ORDER BY created_at, id"))?;
        let keys = stmt.query_map([], key_info)?.collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    /// Revokes the key with this id; false when there is none (or it was revoked already).
    pub fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(self.conn().execute("UPDATE api_key SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![id, now()])? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_verifies_until_revoked_and_only_its_hash_is_stored() {
        let store = Store::open_in_memory().unwrap();
        let created = store.create_api_key("ci", "ann", false).unwrap();
        assert!(created.key.starts_with("zk_"));
        let info = store.verify_api_key(&created.key).unwrap().expect("live key");
        assert_eq!((info.name.as_str(), info.user.as_str(), info.admin), ("ci", "ann", false));

        let secret = created.key.rsplit('_').next().unwrap().to_string();
        let stored: Vec<u8> = store.conn().query_row("SELECT secret_hash FROM api_key", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, hash(&secret).to_vec());
        let everything: String = store.conn().query_row("SELECT id || name || user_name FROM api_key", [], |r| r.get(0)).unwrap();
        assert!(!everything.contains(&secret));

        let mut wrong = created.key.clone();
        wrong.pop();
        wrong.push(if created.key.ends_with('0') { '1' } else { '0' });
        for bad in [wrong.as_str(), "", "zk_", "zk_nope_x", "Bearer x", &created.key[3..]] {
            assert!(store.verify_api_key(bad).unwrap().is_none(), "{bad}");
        }
        let other = store.create_api_key("other", "bob", true).unwrap();
        assert!(store.verify_api_key(&other.key).unwrap().unwrap().admin);
        assert_ne!(other.key, created.key);
        assert_eq!(store.list_api_keys().unwrap().len(), 2);

        assert!(store.revoke_api_key(&created.info.id).unwrap());
        assert!(!store.revoke_api_key(&created.info.id).unwrap());
        assert!(store.verify_api_key(&created.key).unwrap().is_none());
        assert!(store.verify_api_key(&other.key).unwrap().is_some());
        assert!(matches!(store.create_api_key("bad name", "ann", false), Err(Error::Invalid { .. })));
    }
}
