//! API keys in the shared database, so that a key made once works on every server replica.
//! Keys are `zk_<id>_<secret>` as in the embedded store; only the secret's SHA-256 is kept, and
//! it is compared in constant time.

use sha2::{Digest, Sha256};

use crate::{Error, PgStore, Result};

const PREFIX: &str = "zk_";

/// A key as verified: who it acts as and what for (`read`, `write`, `admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub id: String,
    pub user: String,
    pub scopes: Vec<String>,
}

impl KeyHolder {
    pub fn admin(&self) -> bool {
        self.scopes.iter().any(|s| s == "admin")
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Corrupt(format!("no randomness from the operating system: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Equal contents, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PgStore {
    /// Creates a key acting as `user` within `scopes`; returns its id and the key, which is
    /// shown this once.
    pub fn create_api_key(&mut self, name: &str, user: &str, scopes: &[&str], expires_in_seconds: Option<i64>) -> Result<(String, String)> {
        let (id, secret) = (random_hex(8)?, random_hex(32)?);
        self.client.execute(
            "INSERT INTO api_key (id, name, user_name, scopes, secret_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
            &[&id, &name, &user, &scopes, &hash(&secret), &expires_in_seconds.map(|s| s as f64)],
        )?;
        Ok((id.clone(), format!("{PREFIX}{id}_{secret}")))
    }

    /// The key's holder when `presented` is a live key; `None` for a malformed, unknown, wrong,
    /// revoked or expired one alike.
    pub fn verify_api_key(&mut self, presented: &str) -> Result<Option<KeyHolder>> {
        let Some((id, secret)) = presented.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')) else { return Ok(None) };
        let row = self.client.query_opt(
            "SELECT user_name, scopes, secret_hash, revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                    AND NOT EXISTS (SELECT 1 FROM account a WHERE a.name = api_key.user_name AND a.disabled)
             FROM api_key WHERE id = $1",
            &[&id],
        )?;
        // The hash is compared even for an unknown id, so the time taken does not tell ids apart.
        let (user, scopes, stored, live): (String, Vec<String>, Vec<u8>, bool) = match row {
            Some(r) => (r.get(0), r.get(1), r.get(2), r.get(3)),
            None => (String::new(), Vec::new(), vec![0; 32], false),
        };
        if !constant_time_eq(&stored, &hash(secret)) || !live {
            return Ok(None);
        }
        Ok(Some(KeyHolder { id: id.to_string(), user, scopes }))
    }

    pub fn revoke_api_key(&mut self, id: &str) -> Result<bool> {
        Ok(self.client.execute("UPDATE api_key SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])? == 1)
    }
}
