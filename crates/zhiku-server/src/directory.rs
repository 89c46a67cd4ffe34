//! LDAP and Active Directory: passwords checked by binding to the directory as the user, and
//! accounts and group memberships taken from it — at each log-in, and for every user at once
//! with `zhiku ldap sync` (which also disables the accounts that left the directory).
//!
//! Directory group names become zhiku group names, with characters a principal may not hold
//! (spaces, commas) turned into `-`: "Domain Users" is `group:Domain-Users`. The directory is
//! the authority for its users' direct memberships; nested zhiku groups still apply on top.

use std::time::Duration;

use ldap3::{ldap_escape, LdapConn, LdapConnSettings, Scope, SearchEntry};
use zhiku_core::is_valid_name;
use zhiku_rag::accounts::Accounts;

/// Where the directory is and how to read it (`[ldap]` in the configuration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389`; empty: no directory.
    pub url: String,
    /// A service account that may search users and groups (empty: anonymous searches).
    pub bind_dn: String,
    /// Better given as ZHIKU_LDAP_BIND_PASSWORD than written into the file.
    pub bind_password: String,
    pub user_base: String,
    /// `{user}` is replaced by the escaped user name: `(uid={user})`, AD `(sAMAccountName={user})`.
    pub user_filter: String,
    /// The attribute holding the user name (`uid`, AD `sAMAccountName`).
    pub user_name_attribute: String,
    pub group_base: String,
    /// `{dn}` is the user's DN and `{user}` the name: `(|(member={dn})(memberUid={user}))`.
    pub group_filter: String,
    pub group_name_attribute: String,
    /// Members of this directory group administer zhiku.
    pub admin_group: String,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            bind_dn: String::new(),
            bind_password: String::new(),
            user_base: String::new(),
            user_filter: "(uid={user})".into(),
            user_name_attribute: "uid".into(),
            group_base: String::new(),
            group_filter: "(|(member={dn})(uniqueMember={dn})(memberUid={user}))".into(),
            group_name_attribute: "cn".into(),
            admin_group: String::new(),
        }
    }
}

/// A directory user as zhiku takes it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub name: String,
    pub dn: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory at {url} cannot be used: {reason}")]
    Unavailable { url: String, reason: String },
}

/// A directory group name as a zhiku group name; `None` when nothing usable is left.
pub fn group_name(raw: &str) -> Option<String> {
    let name: String = raw.trim().chars().map(|c| if c.is_alphanumeric() || "._-@".contains(c) { c } else { '-' }).collect();
    is_valid_name(&name).then_some(name)
}

impl LdapConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Unavailable { url: self.url.clone(), reason: reason.to_string() }
    }

    fn open(&self) -> Result<LdapConn, DirectoryError> {
        let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
        LdapConn::with_settings(settings, &self.url).map_err(|e| self.unavailable(e))
    }

    /// A connection bound as the service account.
    fn service(&self) -> Result<LdapConn, DirectoryError> {
        let mut conn = self.open()?;
        if !self.bind_dn.is_empty() {
            conn.simple_bind(&self.bind_dn, &self.bind_password)
                .and_then(|r| r.success())
                .map_err(|e| self.unavailable(format!("the service account cannot bind: {e}")))?;
        }
        Ok(conn)
    }

    fn search(&self, conn: &mut LdapConn, base: &str, filter: &str, attrs: Vec<&str>) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (entries, _) = conn
            .search(base, Scope::Subtree, filter, attrs)
            .and_then(|r| r.success())
            .map_err(|e| self.unavailable(format!("searching {base} for {filter}: {e}")))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    fn groups_of(&self, conn: &mut LdapConn, user: &str, dn: &str) -> Result<Vec<String>, DirectoryError> {
        if self.group_base.is_empty() {
            return Ok(Vec::new());
        }
        let filter = self.group_filter.replace("{dn}", &ldap_escape(dn)).replace("{user}", &ldap_escape(user));
        let mut groups: Vec<String> = self
            .search(conn, &self.group_base, &filter, vec![self.group_name_attribute.as_str()])?
            .into_iter()
            .filter_map(|e| e.attrs.get(&self.group_name_attribute).and_then(|v| v.first()).and_then(|n| group_name(n)))
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    fn user_from(&self, conn: &mut LdapConn, name: &str, dn: String) -> Result<DirectoryUser, DirectoryError> {
        let raw_groups = self.groups_of(conn, name, &dn)?;
        let admin = group_name(&self.admin_group).is_some_and(|g| raw_groups.contains(&g));
        Ok(DirectoryUser { name: name.to_string(), dn, groups: raw_groups, admin })
    }

    /// The user when `password` is theirs in the directory, else `None`. An empty password is
    /// refused before asking: LDAP takes a bind without one as an anonymous bind that succeeds.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        if password.is_empty() || !is_valid_name(user) {
            return Ok(None);
        }
        let mut conn = self.service()?;
        let filter = self.user_filter.replace("{user}", &ldap_escape(user));
        let found = self.search(&mut conn, &self.user_base, &filter, vec![self.user_name_attribute.as_str()])?;
        let [entry] = found.as_slice() else { return Ok(None) };
        let mut as_user = self.open()?;
        let accepted = as_user.simple_bind(&entry.dn, password).map_err(|e| self.unavailable(e))?.success().is_ok();
        let _ = as_user.unbind();
        if !accepted {
            return Ok(None);
        }
        self.user_from(&mut conn, user, entry.dn.clone()).map(Some)
    }

    /// Every user the filter matches (with `{user}` as `*`), with their groups.
    pub fn users(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let mut conn = self.service()?;
        let filter = self.user_filter.replace("{user}", "*");
        let entries = self.search(&mut conn, &self.user_base, &filter, vec![self.user_name_attribute.as_str()])?;
        let mut users = Vec::new();
        for entry in entries {
            let Some(name) = entry.attrs.get(&self.user_name_attribute).and_then(|v| v.first()).filter(|n| is_valid_name(n)) else {
                tracing::warn!(dn = %entry.dn, "directory user without a usable name; skipped");
                continue;
            };
            users.push(self.user_from(&mut conn, &name.clone(), entry.dn)?);
        }
        Ok(users)
    }
}

/// Makes the store's account of a directory user match the directory: created if new (without
/// a password: it logs in through the directory), enabled, administrator or not, with the
/// directory's groups as its direct memberships.
pub fn take_over(accounts: &dyn Accounts, user: &DirectoryUser) -> zhiku_rag::Result<()> {
    accounts.adopt_directory_user(&user.name, user.admin, &user.groups)
}

/// What a full synchronisation did.
#[derive(Debug, Default, serde::Serialize)]
pub struct SyncReport {
    pub users: usize,
    pub created: Vec<String>,
    pub disabled: Vec<String>,
}

/// Takes over every directory user and disables the directory accounts no longer in it (in
/// the embedded store, or in the shared database every replica reads).
pub fn sync(accounts: &dyn Accounts, ldap: &LdapConfig) -> Result<SyncReport, Box<dyn std::error::Error + Send + Sync>> {
    let users = ldap.users()?;
    let mut report = SyncReport { users: users.len(), ..Default::default() };
    for user in &users {
        match accounts.user(&user.name)? {
            None => report.created.push(user.name.clone()),
            Some(local) if local.origin != "ldap" => {
                tracing::warn!(user = %user.name, "a local account has this directory user's name; left as it is");
                continue;
            }
            Some(_) => {}
        }
        take_over(accounts, user)?;
    }
    for account in accounts.users()? {
        if account.origin == "ldap" && !account.disabled && !users.iter().any(|u| u.name == account.name) {
            accounts.set_user_disabled(&account.name, true)?;
            report.disabled.push(account.name);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_group_names_become_principal_names() {
        assert_eq!(group_name("Domain Users").as_deref(), Some("Domain-Users"));
        assert_eq!(group_name("finance").as_deref(), Some("finance"));
        assert_eq!(group_name("研发部").as_deref(), Some("研发部"));
        assert_eq!(group_name("  "), None);
    }
}
