//! Web sessions after a password (or directory) login: a random token in an HttpOnly cookie,
//! stored only as its SHA-256, with a CSRF token the page must echo on every change. Sessions
//! end at their expiry, at logout, and when the account is disabled or removed.

use crate::CachedRow;
use rusqlite::{params, OptionalExtension};

use crate::{now, Error, Result, Store};

pub use zhiku_core::password::Session;
use zhiku_core::password::{new_session_token, session_token_hash as token_hash, SESSION_PREFIX as PREFIX};

impl Store {
    /// Opens a session for `user` lasting `seconds`; returns the cookie token and the session.
    pub fn create_session(&self, user: &str, seconds: i64) -> Result<(String, Session)> {
        let (token, hash, csrf) = new_session_token().map_err(|e| Error::Random(e.to_string()))?;
        let session = Session { user: user.to_string(), csrf, expires_at: now() + seconds };
        self.conn().execute(
            "INSERT INTO web_session (token_hash, user_name, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash.as_slice(), user, session.csrf, now(), session.expires_at],
        )?;
        Ok((token, session))
    }

    /// The session for a cookie token, if it is live and its account may still log in.
    pub fn session(&self, token: &str) -> Result<Option<Session>> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        let conn = self.conn();
        let found: Option<Session> = conn
            .cached_row(
                "SELECT s.user_name, s.csrf, s.expires_at FROM web_session s
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2
                   AND NOT EXISTS (SELECT 1 FROM account a WHERE a.name = s.user_name AND a.disabled)",
                params![token_hash(token).as_slice(), now()],
                |r| Ok(Session { user: r.get(0)?, csrf: r.get(1)?, expires_at: r.get(2)? }),
            )
            .optional()?;
        Ok(found)
    }

    /// Ends a session; false when there was none.
    pub fn end_session(&self, token: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM web_session WHERE token_hash = ?1", params![token_hash(token).as_slice()])? == 1)
    }

    /// Ends every session of a user (password changed, account disabled) and expired ones.
    pub fn end_sessions_of(&self, user: &str) -> Result<usize> {
        let conn = self.conn();
        conn.execute("DELETE FROM web_session WHERE expires_at <= ?1", params![now()])?;
        Ok(conn.execute("DELETE FROM web_session WHERE user_name = ?1", params![user])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_until_ended_expired_or_disabled_and_only_hashes_are_kept() {
        let s = Store::open_in_memory().unwrap();
        let (token, session) = s.create_session("ann", 3600).unwrap();
        assert_eq!(s.session(&token).unwrap(), Some(session.clone()));
        assert_eq!(session.csrf.len(), 32);
        let stored: Vec<u8> = s.conn().cached_row("SELECT token_hash FROM web_session", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, token_hash(&token).to_vec());
        assert!(s.session("zs_00").unwrap().is_none() && s.session(&token[3..]).unwrap().is_none());

        s.create_user("ann", None, false).unwrap();
        s.set_user_disabled("ann", true).unwrap();
        assert!(s.session(&token).unwrap().is_none());
        s.set_user_disabled("ann", false).unwrap();
        assert!(s.session(&token).unwrap().is_some());
        assert!(s.end_session(&token).unwrap());
        assert!(s.session(&token).unwrap().is_none());

        let (old, _) = s.create_session("ann", 3600).unwrap();
        s.conn().execute("UPDATE web_session SET expires_at = 1", []).unwrap();
        assert!(s.session(&old).unwrap().is_none());
        let (other, _) = s.create_session("ann", 3600).unwrap();
        assert_eq!(s.end_sessions_of("ann").unwrap(), 1);
        assert!(s.session(&other).unwrap().is_none());
    }
}
