//! Accounts and web sessions over either backend: the embedded store, or the shared database
//! every replica reads (so that a session opened through one replica holds on all of them).

use zhiku_core::password::{hash_password, Session, UserInfo};
use zhiku_store::Store;

use crate::cluster::ClusterEngine;
use crate::Result;

pub trait Accounts: Send + Sync {
    /// Creates a local account; false when the name is taken.
    fn create_user(&self, name: &str, password: Option<&str>, admin: bool) -> Result<bool>;
    fn user(&self, name: &str) -> Result<Option<UserInfo>>;
    fn users(&self) -> Result<Vec<UserInfo>>;
    /// A new password; the account's sessions end.
    fn set_password(&self, name: &str, password: &str) -> Result<()>;
    fn set_user_admin(&self, name: &str, admin: bool) -> Result<()>;
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()>;
    /// Deletes an account with its memberships and sessions, revoking its keys.
    fn delete_user(&self, name: &str) -> Result<bool>;
    /// The account when the password is right and it may log in.
    fn check_password(&self, name: &str, password: &str) -> Result<Option<UserInfo>>;
    fn create_session(&self, user: &str, seconds: i64) -> Result<(String, Session)>;
    fn session(&self, token: &str) -> Result<Option<Session>>;
    fn end_session(&self, token: &str) -> Result<bool>;
    /// Takes a directory's user over: its account (origin `ldap`, no password here) enabled,
    /// its administrator flag and exactly its groups, as the directory says.
    fn adopt_directory_user(&self, name: &str, admin: bool, groups: &[String]) -> Result<()>;
}

impl Accounts for Store {
    fn create_user(&self, name: &str, password: Option<&str>, admin: bool) -> Result<bool> {
        Ok(Store::create_user(self, name, password, admin)?)
    }
    fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(Store::user(self, name)?)
    }
    fn users(&self) -> Result<Vec<UserInfo>> {
        Ok(Store::users(self)?)
    }
    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        Ok(Store::set_password(self, name, password)?)
    }
    fn set_user_admin(&self, name: &str, admin: bool) -> Result<()> {
        Ok(Store::set_user_admin(self, name, admin)?)
    }
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        Store::set_user_disabled(self, name, disabled)?;
        if disabled {
            self.end_sessions_of(name)?;
        }
        Ok(())
    }
    fn delete_user(&self, name: &str) -> Result<bool> {
        Ok(Store::delete_user(self, name)?)
    }
    fn check_password(&self, name: &str, password: &str) -> Result<Option<UserInfo>> {
        Ok(Store::check_password(self, name, password)?)
    }
    fn create_session(&self, user: &str, seconds: i64) -> Result<(String, Session)> {
        Ok(Store::create_session(self, user, seconds)?)
    }
    fn session(&self, token: &str) -> Result<Option<Session>> {
        Ok(Store::session(self, token)?)
    }
    fn end_session(&self, token: &str) -> Result<bool> {
        Ok(Store::end_session(self, token)?)
    }
    fn adopt_directory_user(&self, name: &str, admin: bool, groups: &[String]) -> Result<()> {
        self.create_user_from(name, None, admin, "ldap")?;
        Store::set_user_admin(self, name, admin)?;
        Store::set_user_disabled(self, name, false)?;
        Ok(self.set_groups_of(name, groups)?)
    }
}

impl Accounts for ClusterEngine {
    fn create_user(&self, name: &str, password: Option<&str>, admin: bool) -> Result<bool> {
        let hash = password.map(hash_password).transpose()?;
        Ok(self.db()?.create_user(name, hash.as_deref(), admin, "local")?)
    }
    fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self.db()?.user(name)?)
    }
    fn users(&self) -> Result<Vec<UserInfo>> {
        Ok(self.db()?.users()?)
    }
    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let hash = hash_password(password)?;
        Ok(self.db()?.set_password_hash(name, &hash)?)
    }
    fn set_user_admin(&self, name: &str, admin: bool) -> Result<()> {
        Ok(self.db()?.set_user_admin(name, admin)?)
    }
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        Ok(self.db()?.set_user_disabled(name, disabled)?)
    }
    fn delete_user(&self, name: &str) -> Result<bool> {
        Ok(self.db()?.delete_user(name)?)
    }
    fn check_password(&self, name: &str, password: &str) -> Result<Option<UserInfo>> {
        Ok(self.db()?.check_password(name, password)?)
    }
    fn create_session(&self, user: &str, seconds: i64) -> Result<(String, Session)> {
        Ok(self.db()?.create_session(user, seconds)?)
    }
    fn session(&self, token: &str) -> Result<Option<Session>> {
        Ok(self.db()?.session(token)?)
    }
    fn end_session(&self, token: &str) -> Result<bool> {
        Ok(self.db()?.end_session(token)?)
    }
    fn adopt_directory_user(&self, name: &str, admin: bool, groups: &[String]) -> Result<()> {
        let mut db = self.db()?;
        db.create_user(name, None, admin, "ldap")?;
        db.set_user_admin(name, admin)?;
        db.set_user_disabled(name, false)?;
        Ok(db.set_groups_of(name, groups)?)
    }
}
