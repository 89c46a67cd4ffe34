//! Encryption at rest of the documents' text: with a key, each chunk's text and heading path is
//! stored as AES-256-GCM ciphertext (a fresh random nonce per value), so the database file alone
//! does not give the documents away. The knowledge graph's names, relations and attributes are
//! sealed the same way, and the keys entities are looked up by are keyed hashes. The key is 32
//! bytes, kept outside the data directory in a file of 64 hex digits (`openssl rand -hex 32`).
//!
//! The store remembers that it is encrypted, and a check value encrypted with its key: opening it
//! without the key, or with another one, is an error instead of unreadable text. Values written
//! before a key was set stay readable as they were (ingest the documents again to seal them).
//! Not covered: the full-text index's terms, the vectors, and uploaded originals — encrypt the
//! volume for those.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

use crate::{Error, Result};

const PREFIX: &str = "zkenc1:";
const CHECK: &str = "zhiku encryption check";

/// A 256-bit key, read from a file of 64 hex digits.
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(key))
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid {
            what: "encryption key file",
            value: path.display().to_string(),
            rule: if e.kind() == std::io::ErrorKind::NotFound { "it does not exist" } else { "it cannot be read" },
        })?;
        Self::from_hex(&text).ok_or_else(|| Error::Invalid {
            what: "encryption key file",
            value: path.display().to_string(),
            rule: "it must hold 64 hex digits (make one with: openssl rand -hex 32)",
        })
    }
}

/// Seals and opens values with one key.
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
    /// Derived from the key, for [`Sealer::blind`]: never the key itself.
    lookup: [u8; 32],
}

impl Sealer {
    pub fn new(key: &StoreKey) -> Self {
        use sha2::Digest;
        let lookup = sha2::Sha256::new().chain_update(b"zhiku lookup key\0").chain_update(key.0).finalize().into();
        Self { cipher: Aes256Gcm::new((&key.0).into()), lookup }
    }

    /// A value that must be found by equality (a knowledge-graph entity's key) yet not be read:
    /// a keyed hash, the same for the same value under the same key.
    pub fn blind(&self, value: &str) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::new().chain_update(self.lookup).chain_update(value.as_bytes()).finalize();
        format!("{PREFIX}{}", hex_lower(&hash))
    }

    pub fn seal(&self, plain: &str) -> Result<String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
        let sealed =
            self.cipher.encrypt(Nonce::from_slice(&nonce), plain.as_bytes()).map_err(|_| Error::Corrupt("encryption failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)))
    }

    pub fn open(&self, stored: &str) -> Result<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let bytes =
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded).map_err(|e| Error::Corrupt(format!("sealed value: {e}")))?;
        if bytes.len() < 12 {
            return Err(Error::Corrupt("sealed value too short".into()));
        }
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
            .map_err(|_| Error::Corrupt("a sealed value does not open with this key (tampered, or another key)".into()))?;
        String::from_utf8(plain).map_err(|e| Error::Corrupt(format!("sealed value: {e}")))
    }

    pub fn check_value(&self) -> Result<String> {
        self.seal(CHECK)
    }

    pub fn verifies(&self, check: &str) -> bool {
        self.open(check).is_ok_and(|v| v == CHECK)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a stored value is sealed (so a store without the key cannot read it).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use crate::CachedRow;
    use zhiku_core::Chunk;

    use super::*;
    use crate::{NewDocument, Store};

    #[test]
    fn sealed_text_is_unreadable_in_the_file_and_needs_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhiku.db");
        let key = StoreKey::from_hex(&"ab".repeat(32)).unwrap();
        let secret = "The merger code name is Bluebird.";
        {
            let store = Store::open_with_key(&path, Some(&key)).unwrap();
            store.ensure_kb("kb", &[]).unwrap();
            let chunk = Chunk {
                ordinal: 0,
                heading_path: vec!["Project Bluebird".into()],
                text: secret.into(),
                char_start: 0,
                char_end: 33,
                page: None,
            };
            let doc = NewDocument {
                source: "m.md",
                content_hash: "h",
                title: None,
                format: "markdown",
                language: "en",
                minhash: None,
                acl: &[],
                own_acl: false,
                chunks: &[(chunk, vec![1.0])],
                partial: false,
            };
            store.upsert_document("kb", &doc).unwrap();
            let stored: String = store.conn().cached_row("SELECT text || heading_path FROM chunk", [], |r| r.get(0)).unwrap();
            assert!(stored.starts_with(PREFIX) && !stored.contains("Bluebird"), "{stored}");
            let read = store.chunks("kb").unwrap();
            assert_eq!((read[0].chunk.text.as_str(), read[0].chunk.heading_path[0].as_str()), (secret, "Project Bluebird"));
            store.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            assert!(!bytes.windows(8).any(|w| w == b"Bluebird"), "plaintext on disk");
        }
        assert!(matches!(Store::open(&path), Err(Error::Invalid { what: "store", .. })));
        let other = StoreKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(matches!(Store::open_with_key(&path, Some(&other)), Err(Error::Invalid { what: "encryption key", .. })));
        assert_eq!(Store::open_with_key(&path, Some(&key)).unwrap().chunks("kb").unwrap()[0].chunk.text, secret);

        assert!(StoreKey::from_hex("abc").is_none() && StoreKey::from_hex(&"zz".repeat(32)).is_none());
        let sealer = Sealer::new(&key);
        let a = sealer.seal("same").unwrap();
        assert_ne!(a, sealer.seal("same").unwrap(), "a fresh nonce each time");
        let mut tampered = a.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(sealer.open(&String::from_utf8(tampered).unwrap()).is_err(), "tampering is detected");
    }
}
