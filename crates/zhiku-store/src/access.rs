//! Who is who and who may do what: user accounts (argon2id password hashes), groups that
//! contain users and other groups, roles per knowledge base, and document ACLs.
//!
//! A knowledge base's roles are also its ACL: every principal holding a role reads the documents
//! that inherit the knowledge base's ACL. A role change therefore rewrites the ACL of those
//! documents in the same transaction (bumping the generation), and returns what changed so that
//! the caller can update the derived indexes in place — no document is parsed or embedded again.

use crate::CachedRow;
use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use zhiku_core::password::PasswordError;
use zhiku_core::{is_valid_name, Caller, Principal, Role};

use crate::{acl_from_json, acl_to_json, now, Error, Result, Store, StoredChunk};

pub use zhiku_core::password::UserInfo;

/// Documents whose ACL a role or ACL change rewrote, with the generation that change made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AclChange {
    pub generation: u64,
    pub documents: Vec<(i64, Vec<Principal>)>,
}

const USER_COLUMNS: &str = "name, admin, disabled, password_hash IS NOT NULL, origin, created_at";

fn user_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        name: r.get(0)?,
        admin: r.get(1)?,
        disabled: r.get(2)?,
        has_password: r.get(3)?,
        origin: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn check_name(what: &'static str, name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::Invalid { what, value: name.to_string(), rule: "use letters, digits and . _ - @ (at most 128)" })
    }
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): OWASP's recommended minimum.
fn hash_password(password: &str) -> Result<String> {
    zhiku_core::password::hash_password(password).map_err(|e| match e {
        PasswordError::TooShort => Error::Invalid { what: "password", value: "(hidden)".into(), rule: "use at least 8 characters" },
        PasswordError::Random(reason) => Error::Random(reason),
        PasswordError::Hash(reason) => Error::Corrupt(format!("password hash: {reason}")),
    })
}

/// The principals holding any role on the knowledge base: its inherited ACL.
fn kb_readers(conn: &Connection, kb: &str) -> Result<Vec<Principal>> {
    let mut stmt = conn.prepare_cached("SELECT principal FROM kb_role WHERE kb = ?1 ORDER BY principal")?;
    let names: Vec<String> = stmt.query_map(params![kb], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    names.iter().map(|n| Principal::parse(n).map_err(|e| Error::Corrupt(e.to_string()))).collect()
}

/// Rewrites the ACL of the knowledge base's inheriting documents to its readers, bumping the
/// generation when any changed. Runs inside the caller's transaction.
fn propagate_kb_acl(tx: &Connection, kb: &str) -> Result<AclChange> {
    let readers = kb_readers(tx, kb)?;
    let json = acl_to_json(&readers);
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare_cached("SELECT id FROM document WHERE kb = ?1 AND acl_inherited = 1 AND acl <> ?2 ORDER BY id")?;
        let ids = stmt.query_map(params![kb, json], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        ids
    };
    if !ids.is_empty() {
        tx.execute("UPDATE document SET acl = ?2 WHERE kb = ?1 AND acl_inherited = 1", params![kb, json])?;
        tx.execute("UPDATE kb SET generation = generation + 1 WHERE name = ?1", params![kb])?;
    }
    let generation: i64 = tx.cached_row("SELECT generation FROM kb WHERE name = ?1", params![kb], |r| r.get(0))?;
    Ok(AclChange { generation: generation as u64, documents: ids.into_iter().map(|id| (id, readers.clone())).collect() })
}

/// Earlier versions kept a knowledge base's default ACL as a list; its principals become viewers.
pub(crate) fn migrate_default_acls(conn: &Connection) -> Result<()> {
    let rows: Vec<(String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT name, default_acl FROM kb WHERE default_acl <> '[]' AND NOT EXISTS (SELECT 1 FROM kb_role r WHERE r.kb = kb.name)",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        rows
    };
    for (kb, acl) in rows {
        for p in acl_from_json(&acl)? {
            conn.execute("INSERT OR IGNORE INTO kb_role (kb, principal, role) VALUES (?1, ?2, 'viewer')", params![kb, p.as_str()])?;
        }
        conn.execute("UPDATE kb SET default_acl = '[]' WHERE name = ?1", params![kb])?;
    }
    Ok(())
}

impl Store {
    /// Creates a local account; false when the name is taken (nothing changes then).
    pub fn create_user(&self, name: &str, password: Option<&str>, admin: bool) -> Result<bool> {
        self.create_user_from(name, password, admin, "local")
    }

    /// Creates an account synchronised from a directory (`origin`, e.g. `ldap`), which holds no
    /// password here; an existing account is left as it is.
    pub fn create_user_from(&self, name: &str, password: Option<&str>, admin: bool, origin: &str) -> Result<bool> {
        check_name("user name", name)?;
        let hash = password.map(hash_password).transpose()?;
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO account (name, password_hash, admin, origin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, hash, admin, origin, now()],
        )?;
        Ok(n == 1)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self.conn().cached_row(&format!("SELECT {USER_COLUMNS} FROM account WHERE name = ?1"), params![name], user_info).optional()?)
    }

    pub fn users(&self) -> Result<Vec<UserInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM account ORDER BY name"))?;
        let users = stmt.query_map([], user_info)?.collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    fn update_user(&self, name: &str, sql: &'static str, value: &dyn rusqlite::ToSql) -> Result<()> {
        if self.conn().execute(sql, params![name, value])? == 0 {
            return Err(Error::Invalid { what: "user", value: name.to_string(), rule: "no such account (zhiku user add)" });
        }
        Ok(())
    }

    /// Sets a new password; the account's web sessions end.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let hash = hash_password(password)?;
        self.update_user(name, "UPDATE account SET password_hash = ?2 WHERE name = ?1", &hash)?;
        self.end_sessions_of(name)?;
        Ok(())
    }

    pub fn set_user_admin(&self, name: &str, admin: bool) -> Result<()> {
        self.update_user(name, "UPDATE account SET admin = ?2 WHERE name = ?1", &admin)
    }

    pub fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        self.update_user(name, "UPDATE account SET disabled = ?2 WHERE name = ?1", &disabled)
    }

    /// Whether the name belongs to a disabled account. Names without an account (users known
    /// only from ACLs and keys) are not disabled.
    pub fn is_disabled(&self, name: &str) -> Result<bool> {
        let disabled: Option<bool> =
            self.conn().cached_row("SELECT disabled FROM account WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        Ok(disabled.unwrap_or(false))
    }

    /// Deletes an account with its group memberships, roles and API keys; false when none.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM account WHERE name = ?1", params![name])?;
        tx.execute("DELETE FROM group_member WHERE user_name = ?1", params![name])?;
        tx.execute("DELETE FROM web_session WHERE user_name = ?1", params![name])?;
        tx.execute("UPDATE api_key SET revoked_at = ?2 WHERE user_name = ?1 AND revoked_at IS NULL", params![name, now()])?;
        let kbs: Vec<String> = {
            let mut stmt = tx.prepare_cached("SELECT kb FROM kb_role WHERE principal = ?1")?;
            let kbs = stmt.query_map(params![format!("user:{name}")], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            kbs
        };
        tx.execute("DELETE FROM kb_role WHERE principal = ?1", params![format!("user:{name}")])?;
        for kb in kbs {
            propagate_kb_acl(&tx, &kb)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// The account when `password` is its password and it may log in, else `None`. Takes about
    /// the same time whether or not the account exists.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<UserInfo>> {
        let row: Option<(Option<String>, UserInfo)> = self
            .conn()
            .cached_row(&format!("SELECT {USER_COLUMNS}, password_hash FROM account WHERE name = ?1"), params![name], |r| {
                Ok((r.get(6)?, user_info(r)?))
            })
            .optional()?;
        let (stored, info) = match row {
            Some((hash, info)) => (hash, Some(info)),
            None => (None, None),
        };
        let matches = zhiku_core::password::verify_password(stored.as_deref(), password)
            .map_err(|e| Error::Corrupt(format!("password hash of '{name}': {e}")))?;
        Ok(info.filter(|i| matches && !i.disabled))
    }

    /// Every account with its password hash, to move the accounts to another backend as they
    /// are (nobody has to set a password again).
    pub fn accounts_with_hashes(&self) -> Result<Vec<(UserInfo, Option<String>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {USER_COLUMNS}, password_hash FROM account ORDER BY name"))?;
        let rows = stmt.query_map([], |r| Ok((user_info(r)?, r.get(6)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Adds a user to a group (groups need no creating: they exist while they have members).
    pub fn add_group_member(&self, group: &str, user: &str) -> Result<()> {
        check_name("group name", group)?;
        check_name("user name", user)?;
        self.conn().execute("INSERT OR IGNORE INTO group_member (group_name, user_name) VALUES (?1, ?2)", params![group, user])?;
        Ok(())
    }

    pub fn remove_group_member(&self, group: &str, user: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM group_member WHERE group_name = ?1 AND user_name = ?2", params![group, user])? > 0)
    }

    /// Makes `child`'s members members of `parent` too. Refused when `parent` is `child` or
    /// already inside it (a cycle).
    pub fn add_subgroup(&self, parent: &str, child: &str) -> Result<()> {
        check_name("group name", parent)?;
        check_name("group name", child)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cycle = parent == child || ancestors(&tx, &[parent.to_string()])?.contains(child);
        if cycle {
            return Err(Error::Invalid {
                what: "group nesting",
                value: format!("{child} in {parent}"),
                rule: "a group cannot contain itself, directly or through other groups",
            });
        }
        tx.execute("INSERT OR IGNORE INTO group_nesting (parent, child) VALUES (?1, ?2)", params![parent, child])?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_subgroup(&self, parent: &str, child: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM group_nesting WHERE parent = ?1 AND child = ?2", params![parent, child])? > 0)
    }

    /// Every group the user is in, directly or through nested groups, sorted.
    pub fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let direct: Vec<String> = {
            let mut stmt = conn.prepare_cached("SELECT group_name FROM group_member WHERE user_name = ?1")?;
            let direct = stmt.query_map(params![user], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            direct
        };
        Ok(ancestors(&conn, &direct)?.into_iter().collect())
    }

    /// Direct memberships as (group, user).
    pub fn group_members(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT group_name, user_name FROM group_member ORDER BY group_name, user_name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Nested groups as (parent, child).
    pub fn subgroups(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT parent, child FROM group_nesting ORDER BY parent, child")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Replaces a user's direct memberships with `groups` (a directory sync), leaving nested
    /// groups alone.
    pub fn set_groups_of(&self, user: &str, groups: &[String]) -> Result<()> {
        check_name("user name", user)?;
        for g in groups {
            check_name("group name", g)?;
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM group_member WHERE user_name = ?1", params![user])?;
        for g in groups {
            tx.execute("INSERT OR IGNORE INTO group_member (group_name, user_name) VALUES (?1, ?2)", params![g, user])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Gives `principal` a role on the knowledge base (or takes its role away with `None`) and
    /// rewrites the ACL of the documents that inherit the knowledge base's.
    pub fn set_kb_role(&self, kb: &str, principal: &Principal, role: Option<Role>) -> Result<AclChange> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.cached_row("SELECT count(*) FROM kb WHERE name = ?1", params![kb], |r| r.get::<_, i64>(0))? == 0 {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        match role {
            Some(role) => tx.execute(
                "INSERT INTO kb_role (kb, principal, role) VALUES (?1, ?2, ?3) ON CONFLICT (kb, principal) DO UPDATE SET role = excluded.role",
                params![kb, principal.as_str(), role.as_str()],
            )?,
            None => tx.execute("DELETE FROM kb_role WHERE kb = ?1 AND principal = ?2", params![kb, principal.as_str()])?,
        };
        let change = propagate_kb_acl(&tx, kb)?;
        tx.commit()?;
        Ok(change)
    }

    /// Makes exactly `viewers` the knowledge base's viewers; editors and admins keep their roles.
    pub fn set_kb_viewers(&self, kb: &str, viewers: &[Principal]) -> Result<AclChange> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.cached_row("SELECT count(*) FROM kb WHERE name = ?1", params![kb], |r| r.get::<_, i64>(0))? == 0 {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        tx.execute("DELETE FROM kb_role WHERE kb = ?1 AND role = 'viewer'", params![kb])?;
        for p in viewers {
            tx.execute("INSERT OR IGNORE INTO kb_role (kb, principal, role) VALUES (?1, ?2, 'viewer')", params![kb, p.as_str()])?;
        }
        let change = propagate_kb_acl(&tx, kb)?;
        tx.commit()?;
        Ok(change)
    }

    pub fn kb_roles(&self, kb: &str) -> Result<Vec<(Principal, Role)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT principal, role FROM kb_role WHERE kb = ?1 ORDER BY principal")?;
        let rows: Vec<(String, String)> = stmt.query_map(params![kb], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(p, r)| {
                let corrupt = |e: zhiku_core::Error| Error::Corrupt(e.to_string());
                Ok((Principal::parse(&p).map_err(corrupt)?, r.parse().map_err(corrupt)?))
            })
            .collect()
    }

    /// The strongest role the caller holds on the knowledge base through any of its principals;
    /// the administrator holds every role.
    pub fn role_of(&self, kb: &str, caller: &Caller) -> Result<Option<Role>> {
        let Some(held) = caller.principals() else { return Ok(Some(Role::Admin)) };
        Ok(self.kb_roles(kb)?.into_iter().filter(|(p, _)| held.contains(p)).map(|(_, r)| r).max())
    }

    /// The knowledge base's inherited ACL: every principal holding a role on it.
    pub fn kb_default_acl(&self, kb: &str) -> Result<Vec<Principal>> {
        if !self.kb_exists(kb)? {
            return Err(Error::UnknownKb(kb.to_string()));
        }
        kb_readers(&self.conn(), kb)
    }

    /// Gives one document an ACL of its own (`Some`), or makes it inherit the knowledge base's
    /// again (`None`). `None` when there is no such document.
    pub fn set_document_acl(&self, kb: &str, doc_id: i64, acl: Option<&[Principal]>) -> Result<Option<AclChange>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (acl, inherited) = match acl {
            Some(acl) => (acl.to_vec(), false),
            None => (kb_readers(&tx, kb)?, true),
        };
        let n = tx.execute(
            "UPDATE document SET acl = ?3, acl_inherited = ?4 WHERE kb = ?1 AND id = ?2",
            params![kb, doc_id, acl_to_json(&acl), inherited],
        )?;
        if n == 0 {
            return Ok(None);
        }
        tx.execute("UPDATE kb SET generation = generation + 1 WHERE name = ?1", params![kb])?;
        let generation: i64 = tx.cached_row("SELECT generation FROM kb WHERE name = ?1", params![kb], |r| r.get(0))?;
        tx.commit()?;
        let acl = acl_from_json(&acl_to_json(&acl))?;
        Ok(Some(AclChange { generation: generation as u64, documents: vec![(doc_id, acl)] }))
    }

    /// The chunks of one document, in order (for re-indexing it without embedding it again).
    pub fn document_chunks(&self, doc_id: i64) -> Result<Vec<StoredChunk>> {
        self.query_chunks("WHERE d.id = ?1 ORDER BY c.id", params![doc_id])
    }
}

/// The groups given and every group containing one of them, transitively. Cycles end the walk.
fn ancestors(conn: &Connection, groups: &[String]) -> Result<BTreeSet<String>> {
    let mut seen: BTreeSet<String> = groups.iter().cloned().collect();
    let mut frontier: Vec<String> = groups.to_vec();
    let mut stmt = conn.prepare_cached("SELECT parent FROM group_nesting WHERE child = ?1")?;
    while let Some(g) = frontier.pop() {
        let parents: Vec<String> = stmt.query_map(params![g], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        for p in parents {
            if seen.insert(p.clone()) {
                frontier.push(p);
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use zhiku_core::Chunk;

    use super::*;
    use crate::{NewDocument, Upsert};

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }

    fn ingest(s: &Store, source: &str, acl: &[Principal], own_acl: bool) -> Upsert {
        let chunks = [(Chunk { ordinal: 0, heading_path: vec![], text: source.into(), char_start: 0, char_end: 1, page: None }, vec![1.0])];
        let doc = NewDocument {
            source,
            content_hash: source,
            title: None,
            format: "text",
            language: "en",
            minhash: None,
            acl,
            own_acl,
            chunks: &chunks,
            partial: false,
        };
        s.upsert_document("kb", &doc).unwrap()
    }

    #[test]
    fn nested_groups_resolve_transitively_and_refuse_cycles() {
        let s = Store::open_in_memory().unwrap();
        s.add_group_member("backend", "alice").unwrap();
        s.add_subgroup("engineering", "backend").unwrap();
        s.add_subgroup("staff", "engineering").unwrap();
        assert_eq!(s.groups_of("alice").unwrap(), ["backend", "engineering", "staff"]);
        assert!(s.add_subgroup("backend", "staff").is_err());
        assert!(s.add_subgroup("staff", "staff").is_err());
        assert!(s.remove_subgroup("staff", "engineering").unwrap());
        assert_eq!(s.groups_of("alice").unwrap(), ["backend", "engineering"]);
        assert!(s.add_group_member("bad group", "alice").is_err());
        s.set_groups_of("alice", &["hr".into()]).unwrap();
        assert_eq!(s.groups_of("alice").unwrap(), ["hr"]);
    }

    #[test]
    fn roles_are_the_inherited_acl_and_changes_reach_inheriting_documents_only() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_kb("kb", &[p("group:staff")]).unwrap();
        let Upsert::Inserted { acl, .. } = ingest(&s, "inherits.txt", &s.kb_default_acl("kb").unwrap(), false) else { panic!() };
        assert_eq!(acl, [p("group:staff")]);
        let Upsert::Inserted { doc_id: own, .. } = ingest(&s, "own.txt", &[p("user:ceo")], true) else { panic!() };
        let g = s.generation("kb").unwrap();

        let change = s.set_kb_role("kb", &p("user:erin"), Some(Role::Editor)).unwrap();
        assert!(change.generation > g);
        assert_eq!(change.documents.len(), 1);
        assert_eq!(change.documents[0].1, [p("group:staff"), p("user:erin")]);
        let acl_of = |source: &str| s.documents("kb").unwrap().into_iter().find(|d| d.source == source).unwrap().acl;
        assert_eq!(acl_of("own.txt"), [p("user:ceo")]);
        assert_eq!(acl_of("inherits.txt"), [p("group:staff"), p("user:erin")]);

        let erin = Caller::user("erin", Vec::<String>::new()).unwrap();
        let staff = Caller::user("sam", ["staff"]).unwrap();
        assert_eq!(s.role_of("kb", &erin).unwrap(), Some(Role::Editor));
        assert_eq!(s.role_of("kb", &staff).unwrap(), Some(Role::Viewer));
        assert_eq!(s.role_of("kb", &Caller::user("nobody", Vec::<String>::new()).unwrap()).unwrap(), None);
        assert_eq!(s.role_of("kb", &Caller::Admin).unwrap(), Some(Role::Admin));

        // Re-ingesting without --acl keeps a document's own ACL; a given one replaces it.
        assert_eq!(ingest(&s, "own.txt", &s.kb_default_acl("kb").unwrap(), false), Upsert::Unchanged);
        assert!(s.is_unchanged("kb", "own.txt", "own.txt", &[], false).unwrap());
        s.set_document_acl("kb", own, None).unwrap().unwrap();
        assert_eq!(acl_of("own.txt"), [p("group:staff"), p("user:erin")]);
        s.set_kb_viewers("kb", &[]).unwrap();
        assert_eq!(acl_of("own.txt"), [p("user:erin")]);
        assert_eq!(s.kb_roles("kb").unwrap(), [(p("user:erin"), Role::Editor)]);
        assert!(s.set_document_acl("kb", 999, None).unwrap().is_none());
        assert!(matches!(s.set_kb_role("nope", &p("user:a"), Some(Role::Viewer)), Err(Error::UnknownKb(_))));
    }

    #[test]
    fn passwords_are_argon2id_and_checked_without_telling_names_apart() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.create_user("alice", Some("correct horse"), false).unwrap());
        assert!(!s.create_user("alice", Some("another one"), true).unwrap());
        assert!(s.create_user("short", Some("1234567"), false).is_err());
        let stored: String = s.conn().cached_row("SELECT password_hash FROM account WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("correct horse"), "{stored}");
        assert_eq!(s.check_password("alice", "correct horse").unwrap().unwrap().name, "alice");
        assert!(s.check_password("alice", "wrong horse").unwrap().is_none());
        assert!(s.check_password("bob", "correct horse").unwrap().is_none());
        s.set_user_disabled("alice", true).unwrap();
        assert!(s.check_password("alice", "correct horse").unwrap().is_none());
        s.set_user_disabled("alice", false).unwrap();
        s.set_password("alice", "battery staple").unwrap();
        assert!(s.check_password("alice", "battery staple").unwrap().is_some());
        s.ensure_kb("kb", &[p("user:alice")]).unwrap();
        assert!(s.delete_user("alice").unwrap());
        assert!(s.user("alice").unwrap().is_none());
        assert!(s.kb_roles("kb").unwrap().is_empty());
    }
}
