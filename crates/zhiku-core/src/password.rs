//! Accounts and their passwords, the same for every backend: argon2id hashes in PHC form, at
//! least eight characters, a check that takes as long for a name without an account as for one
//! with, and web sessions whose tokens are kept only as their SHA-256.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// An account as listed: never its password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    pub name: String,
    /// Administers everything: users, groups, keys, every knowledge base.
    pub admin: bool,
    /// Cannot log in; its keys stop working.
    pub disabled: bool,
    pub has_password: bool,
    /// `local`, or the directory it was synchronised from (`ldap`).
    pub origin: String,
    pub created_at: i64,
}

/// A live web session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    /// Echoed by the page in `X-CSRF-Token` on every request that changes something.
    pub csrf: String,
    pub expires_at: i64,
}

/// What session tokens start with.
pub const SESSION_PREFIX: &str = "zs_";

/// A new session token (for the cookie), its SHA-256 (for the database) and a CSRF token.
pub fn new_session_token() -> Result<(String, [u8; 32], String), PasswordError> {
    let token = format!("{SESSION_PREFIX}{}", random_hex(32)?);
    let hash = session_token_hash(&token);
    Ok((token, hash, random_hex(16)?))
}

pub fn session_token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn random_hex(bytes: usize) -> Result<String, PasswordError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| PasswordError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password is too short: use at least 8 characters")]
    TooShort,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("unreadable password hash: {0}")]
    Hash(String),
}

/// A new salted argon2id hash of `password`.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < 8 {
        return Err(PasswordError::TooShort);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| PasswordError::Hash(e.to_string()))?.to_string())
}

/// A hash of nothing anybody knows, checked against when there is no account, so that the time
/// a failed login takes does not tell whether the name exists.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// Whether `password` matches the stored hash; with no hash (no account, or one without a
/// password) the decoy is checked all the same and the answer is no.
pub fn verify_password(stored: Option<&str>, password: &str) -> Result<bool, PasswordError> {
    let hash = stored.unwrap_or_else(|| decoy_hash());
    let parsed = PasswordHash::new(hash).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    Ok(matches && stored.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
        assert_eq!(verify_password(Some(&hash), "correct horse"), Ok(true));
        assert_eq!(verify_password(Some(&hash), "correct hors"), Ok(false));
        assert_eq!(verify_password(None, "decoy password, never valid"), Ok(false));
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        assert!(verify_password(Some("not a hash"), "x").is_err());
    }
}
