//! User accounts and web sessions in the shared database, so that a user logs in once and any
//! replica behind the load balancer knows the session. The rules (argon2id hashes, token
//! hashes only, disabled accounts locked out) are [`zhiku_core::password`]'s, as in the
//! embedded store.

use zhiku_core::password::{new_session_token, session_token_hash, verify_password, Session, UserInfo, SESSION_PREFIX};

use crate::{Error, PgStore, Result};

const USER_COLUMNS: &str = "name, admin, disabled, password_hash IS NOT NULL, origin, created_at";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn user_info(r: &postgres::Row) -> UserInfo {
    UserInfo { name: r.get(0), admin: r.get(1), disabled: r.get(2), has_password: r.get(3), origin: r.get(4), created_at: r.get(5) }
}

impl PgStore {
    /// Creates an account (`password_hash` from [`zhiku_core::password::hash_password`]);
    /// false when the name is taken (nothing changes then).
    pub fn create_user(&mut self, name: &str, password_hash: Option<&str>, admin: bool, origin: &str) -> Result<bool> {
        if !zhiku_core::is_valid_name(name) {
            return Err(Error::Invalid { what: "user name", value: name.to_string() });
        }
        let n = self.client.execute(
            "INSERT INTO account (name, password_hash, admin, origin, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            &[&name, &password_hash, &admin, &origin, &now()],
        )?;
        Ok(n == 1)
    }

    pub fn user(&mut self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self.client.query_opt(&format!("SELECT {USER_COLUMNS} FROM account WHERE name = $1"), &[&name])?.as_ref().map(user_info))
    }

    pub fn users(&mut self) -> Result<Vec<UserInfo>> {
        Ok(self.client.query(&format!("SELECT {USER_COLUMNS} FROM account ORDER BY name"), &[])?.iter().map(user_info).collect())
    }

    fn update_user(&mut self, name: &str, sql: &str, value: &(dyn postgres::types::ToSql + Sync)) -> Result<()> {
        if self.client.execute(sql, &[&name, value])? == 0 {
            return Err(Error::Invalid { what: "user", value: name.to_string() });
        }
        Ok(())
    }

    /// Sets a new password hash; the account's web sessions end.
    pub fn set_password_hash(&mut self, name: &str, password_hash: &str) -> Result<()> {
        self.update_user(name, "UPDATE account SET password_hash = $2 WHERE name = $1", &password_hash)?;
        self.client.execute("DELETE FROM web_session WHERE user_name = $1", &[&name])?;
        Ok(())
    }

    pub fn set_user_admin(&mut self, name: &str, admin: bool) -> Result<()> {
        self.update_user(name, "UPDATE account SET admin = $2 WHERE name = $1", &admin)
    }

    /// A disabled account cannot log in, its sessions end and its keys stop working.
    pub fn set_user_disabled(&mut self, name: &str, disabled: bool) -> Result<()> {
        self.update_user(name, "UPDATE account SET disabled = $2 WHERE name = $1", &disabled)?;
        if disabled {
            self.client.execute("DELETE FROM web_session WHERE user_name = $1", &[&name])?;
        }
        Ok(())
    }

    /// Deletes an account with its group memberships and sessions, and revokes its keys;
    /// false when there was none.
    pub fn delete_user(&mut self, name: &str) -> Result<bool> {
        let mut tx = self.client.transaction()?;
        let n = tx.execute("DELETE FROM account WHERE name = $1", &[&name])?;
        tx.execute("DELETE FROM member WHERE member = $1", &[&format!("user:{name}")])?;
        tx.execute("DELETE FROM web_session WHERE user_name = $1", &[&name])?;
        tx.execute("UPDATE api_key SET revoked_at = now() WHERE user_name = $1 AND revoked_at IS NULL", &[&name])?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// The account when `password` is its password and it may log in, else `None`; as slow for
    /// a name without an account as for one with.
    pub fn check_password(&mut self, name: &str, password: &str) -> Result<Option<UserInfo>> {
        let row = self.client.query_opt(&format!("SELECT {USER_COLUMNS}, password_hash FROM account WHERE name = $1"), &[&name])?;
        let (stored, info): (Option<String>, Option<UserInfo>) = match &row {
            Some(r) => (r.get(6), Some(user_info(r))),
            None => (None, None),
        };
        let matches =
            verify_password(stored.as_deref(), password).map_err(|e| Error::Corrupt(format!("password hash of '{name}': {e}")))?;
        Ok(info.filter(|i| matches && !i.disabled))
    }

    /// Opens a session for `user` lasting `seconds`; returns the cookie token and the session.
    pub fn create_session(&mut self, user: &str, seconds: i64) -> Result<(String, Session)> {
        let (token, hash, csrf) = new_session_token().map_err(|e| Error::Corrupt(e.to_string()))?;
        let session = Session { user: user.to_string(), csrf, expires_at: now() + seconds };
        self.client.execute(
            "INSERT INTO web_session (token_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&hash.as_slice(), &user, &session.csrf, &now(), &session.expires_at],
        )?;
        Ok((token, session))
    }

    /// The session for a cookie token, if it is live and its account may still log in.
    pub fn session(&mut self, token: &str) -> Result<Option<Session>> {
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(None);
        }
        let row = self.client.query_opt(
            "SELECT s.user_name, s.csrf, s.expires_at FROM web_session s
             WHERE s.token_hash = $1 AND s.expires_at > $2
               AND NOT EXISTS (SELECT 1 FROM account a WHERE a.name = s.user_name AND a.disabled)",
            &[&session_token_hash(token).as_slice(), &now()],
        )?;
        Ok(row.map(|r| Session { user: r.get(0), csrf: r.get(1), expires_at: r.get(2) }))
    }

    /// Ends a session (and any that have expired); false when there was none.
    pub fn end_session(&mut self, token: &str) -> Result<bool> {
        self.client.execute("DELETE FROM web_session WHERE expires_at <= $1", &[&now()])?;
        Ok(self.client.execute("DELETE FROM web_session WHERE token_hash = $1", &[&session_token_hash(token).as_slice()])? == 1)
    }

    /// Copies an account from another backend as it is (its password hash included); false
    /// when the name is taken here.
    pub fn import_user(&mut self, user: &UserInfo, password_hash: Option<&str>) -> Result<bool> {
        let n = self.client.execute(
            "INSERT INTO account (name, password_hash, admin, disabled, origin, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO NOTHING",
            &[&user.name, &password_hash, &user.admin, &user.disabled, &user.origin, &user.created_at],
        )?;
        Ok(n == 1)
    }
}
