//! API keys: `zk_<id>_<secret>`, shown once when created. The store keeps the id in clear (to
//! find the key) and only a SHA-256 of the secret; a presented key is checked by comparing
//! hashes in constant time, so neither the table nor the timing of a failed check gives the
//! secret away. Secrets are 256 random bits, which is why a plain hash (no slow KDF) suffices.
//!
//! A key carries scopes (what it may be used for, on top of what its user may do) and may
//! expire; an expired or revoked key, or one whose account is disabled, stops working at once.

use crate::CachedRow;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{now, Error, Result, Store};

const PREFIX: &str = "zk_";

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Search, ask, chat, embeddings; read documents the user may read.
    Read,
    /// Also change knowledge bases and documents where the user's role allows it.
    Write,
    /// Act as an administrator: everything, everywhere.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Scope::Read, Scope::Write, Scope::Admin].into_iter().find(|x| x.as_str() == s).ok_or_else(|| Error::Invalid {
            what: "key scope",
            value: s.to_string(),
            rule: "use read, write or admin",
        })
    }
}

fn scopes_to_text(scopes: &[Scope]) -> String {
    let mut sorted = scopes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

fn scopes_from_text(text: &str) -> Vec<Scope> {
    // An unknown scope (written by a newer version) grants nothing here.
    text.split(',').filter_map(|s| s.parse().ok()).collect()
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub user: String,
    /// Has the `admin` scope: reads everything, manages everything.
    pub admin: bool,
    pub scopes: Vec<Scope>,
    /// Unix seconds after which the key no longer works.
    pub expires_at: Option<i64>,
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
const COLUMNS: &str = "id, name, user_name, scopes, expires_at, created_at, last_used_at, revoked_at IS NOT NULL";

fn key_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyInfo> {
    let scopes = scopes_from_text(&r.get::<_, String>(3)?);
    Ok(ApiKeyInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        admin: scopes.contains(&Scope::Admin),
        scopes,
        expires_at: r.get(4)?,
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked: r.get(7)?,
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
    /// Creates a key named `name` that acts as `user` within `scopes`, working until
    /// `expires_at` (Unix seconds) if given.
    pub fn create_api_key(&self, name: &str, user: &str, scopes: &[Scope], expires_at: Option<i64>) -> Result<ApiKey> {
        for (what, value) in [("key name", name), ("user name", user)] {
            if !valid_name(value) {
                return Err(Error::Invalid { what, value: value.to_string(), rule: "use letters, digits and _ - . @ (at most 64)" });
            }
        }
        if scopes.is_empty() {
            return Err(Error::Invalid { what: "key scopes", value: String::new(), rule: "give at least one of read, write, admin" });
        }
        let created_at = now();
        if expires_at.is_some_and(|t| t <= created_at) {
            return Err(Error::Invalid { what: "key expiry", value: format!("{expires_at:?}"), rule: "it must lie in the future" });
        }
        let (id, secret) = (random_hex(6)?, random_hex(32)?);
        let admin = scopes.contains(&Scope::Admin);
        let scopes_text = scopes_to_text(scopes);
        self.conn().execute(
            "INSERT INTO api_key (id, name, user_name, secret_hash, admin, scopes, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![id, name, user, hash(&secret).as_slice(), admin, scopes_text, expires_at, created_at],
        )?;
        let info = ApiKeyInfo {
            id: id.clone(),
            name: name.to_string(),
            user: user.to_string(),
            admin,
            scopes: scopes_from_text(&scopes_text),
            expires_at,
            created_at,
            last_used_at: None,
            revoked: false,
        };
        Ok(ApiKey { info, key: format!("{PREFIX}{id}_{secret}") })
    }

    /// The key's record when `presented` is a live key, else `None` (malformed, unknown,
    /// wrong secret, revoked, expired or of a disabled account alike).
    pub fn verify_api_key(&self, presented: &str) -> Result<Option<ApiKeyInfo>> {
        let Some((id, secret)) = presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else { return Ok(None) };
        let conn = self.conn();
        let row: Option<(Vec<u8>, bool, ApiKeyInfo)> = conn
            .cached_row(
                &format!(
                    "SELECT {COLUMNS}, secret_hash, EXISTS (SELECT 1 FROM account a WHERE a.name = user_name AND a.disabled)
                     FROM api_key WHERE id = ?1"
                ),
                params![id],
                |r| Ok((r.get(8)?, r.get(9)?, key_info(r)?)),
            )
            .optional()?;
        // The hash is compared even for an unknown id, so the time taken does not tell ids apart.
        let (stored, disabled, info) = match row {
            Some(found) => found,
            None => (vec![0; 32], true, ApiKeyInfo { revoked: true, ..Default::default() }),
        };
        let at = now();
        let expired = info.expires_at.is_some_and(|t| t <= at);
        if !constant_time_eq(&stored, &hash(secret)) || info.revoked || expired || disabled {
            return Ok(None);
        }
        // Coarse (a minute) so that a busy key does not write on every request.
        if info.last_used_at.is_none_or(|t| at - t >= 60) {
            conn.execute("UPDATE api_key SET last_used_at = ?2 WHERE id = ?1", params![id, at])?;
        }
        Ok(Some(info))
    }

    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_key ORDER BY created_at, id"))?;
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
        let created = store.create_api_key("ci", "ann", &[Scope::Read, Scope::Write], None).unwrap();
        assert!(created.key.starts_with("zk_"));
        let info = store.verify_api_key(&created.key).unwrap().expect("live key");
        assert_eq!((info.name.as_str(), info.user.as_str(), info.admin), ("ci", "ann", false));

        let secret = created.key.rsplit('_').next().unwrap().to_string();
        let stored: Vec<u8> = store.conn().cached_row("SELECT secret_hash FROM api_key", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, hash(&secret).to_vec());
        let everything: String = store.conn().cached_row("SELECT id || name || user_name FROM api_key", [], |r| r.get(0)).unwrap();
        assert!(!everything.contains(&secret));

        let mut wrong = created.key.clone();
        wrong.pop();
        wrong.push(if created.key.ends_with('0') { '1' } else { '0' });
        for bad in [wrong.as_str(), "", "zk_", "zk_nope_x", "Bearer x", &created.key[3..]] {
            assert!(store.verify_api_key(bad).unwrap().is_none(), "{bad}");
        }
        let other = store.create_api_key("other", "bob", &[Scope::Admin], None).unwrap();
        assert!(store.verify_api_key(&other.key).unwrap().unwrap().admin);
        assert_ne!(other.key, created.key);
        assert_eq!(store.list_api_keys().unwrap().len(), 2);

        assert!(store.revoke_api_key(&created.info.id).unwrap());
        assert!(!store.revoke_api_key(&created.info.id).unwrap());
        assert!(store.verify_api_key(&created.key).unwrap().is_none());
        assert!(store.verify_api_key(&other.key).unwrap().is_some());
        assert!(matches!(store.create_api_key("bad name", "ann", &[Scope::Read], None), Err(Error::Invalid { .. })));
        assert!(matches!(store.create_api_key("none", "ann", &[], None), Err(Error::Invalid { .. })));
        assert!(matches!(store.create_api_key("past", "ann", &[Scope::Read], Some(now() - 1)), Err(Error::Invalid { .. })));
    }

    #[test]
    fn an_administrators_key_from_before_scopes_stays_an_administrators_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhiku.db");
        let secret = "0".repeat(64);
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE api_key (id TEXT PRIMARY KEY, name TEXT NOT NULL, user_name TEXT NOT NULL, secret_hash BLOB NOT NULL,
                 admin INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER)",
            )
            .unwrap();
            for (id, admin) in [("aaaaaa", 1), ("bbbbbb", 0)] {
                old.execute(
                    "INSERT INTO api_key (id, name, user_name, secret_hash, admin, created_at) VALUES (?1, 'k', 'root', ?2, ?3, 0)",
                    params![id, hash(&secret).as_slice(), admin],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let admin = store.verify_api_key(&format!("zk_aaaaaa_{secret}")).unwrap().unwrap();
        assert!(admin.admin && admin.scopes.contains(&Scope::Admin), "{admin:?}");
        let plain = store.verify_api_key(&format!("zk_bbbbbb_{secret}")).unwrap().unwrap();
        assert_eq!(plain.scopes, [Scope::Read, Scope::Write]);
    }

    #[test]
    fn expired_keys_and_disabled_accounts_stop_working() {
        let store = Store::open_in_memory().unwrap();
        let soon = store.create_api_key("soon", "ann", &[Scope::Read], Some(now() + 3600)).unwrap();
        assert_eq!(store.verify_api_key(&soon.key).unwrap().unwrap().scopes, [Scope::Read]);
        store.conn().execute("UPDATE api_key SET expires_at = ?1", params![now() - 1]).unwrap();
        assert!(store.verify_api_key(&soon.key).unwrap().is_none());

        let ann = store.create_api_key("ann", "ann", &[Scope::Read], None).unwrap();
        store.create_user("ann", None, false).unwrap();
        assert!(store.verify_api_key(&ann.key).unwrap().is_some());
        store.set_user_disabled("ann", true).unwrap();
        assert!(store.verify_api_key(&ann.key).unwrap().is_none());
        store.set_user_disabled("ann", false).unwrap();
        assert!(store.verify_api_key(&ann.key).unwrap().is_some());
    }
}
