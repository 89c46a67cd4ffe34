use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Who a document is shared with: `user:<name>` or `group:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

impl Principal {
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = || Error::InvalidPrincipal { value: value.to_string() };
        let (kind, name) = value.split_once(':').ok_or_else(invalid)?;
        if !matches!(kind, "user" | "group") || !is_valid_name(name) {
            return Err(invalid());
        }
        Ok(Self(value.to_string()))
    }

    pub fn user(name: &str) -> Result<Self> {
        Self::parse(&format!("user:{name}"))
    }

    pub fn group(name: &str) -> Result<Self> {
        Self::parse(&format!("group:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names are restricted so that a principal can never smuggle separators or query syntax into
/// the places it is stored (SQL parameters, index terms, log lines).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Principal {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.0
    }
}

/// The identity a request runs as. Retrieval takes a `Caller` and filters inside the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The local administrator (the CLI without `--as`): sees every document.
    Admin,
    /// A user with the principals it holds: `user:<name>` plus `group:<g>` for each membership.
    Principals(BTreeSet<Principal>),
}

impl Caller {
    pub fn user<I, S>(name: &str, groups: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        set.insert(Principal::user(name)?);
        for g in groups {
            set.insert(Principal::group(g.as_ref())?);
        }
        Ok(Self::Principals(set))
    }

    /// Deny by default: an empty ACL is readable by the administrator only.
    pub fn can_read(&self, acl: &[Principal]) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Principals(held) => acl.iter().any(|p| held.contains(p)),
        }
    }

    /// The principals to filter on, or `None` when nothing is filtered (administrator).
    pub fn principals(&self) -> Option<&BTreeSet<Principal>> {
        match self {
            Caller::Admin => None,
            Caller::Principals(set) => Some(set),
        }
    }
}

/// What a principal may do in one knowledge base. Every role reads the documents that inherit
/// the knowledge base's ACL; the higher ones include the lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Searches and asks.
    Viewer,
    /// Also uploads, re-ingests and deletes documents and changes their ACLs.
    Editor,
    /// Also changes the knowledge base's settings and roles, and deletes it.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| Error::InvalidRole { value: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_parsing_rejects_malformed_values() {
        assert!(Principal::parse("user:alice").is_ok());
        assert!(Principal::parse("group:r&d").is_err());
        assert!(Principal::parse("alice").is_err());
        assert!(Principal::parse("role:admin").is_err());
        assert!(Principal::parse("user:").is_err());
        assert!(Principal::parse("user:a b").is_err());
        assert!(Principal::parse("user:张三").is_ok());
    }

    #[test]
    fn roles_are_ordered_and_parse_from_their_names() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn empty_acl_is_admin_only() {
        let alice = Caller::user("alice", ["staff"]).unwrap();
        assert!(!alice.can_read(&[]));
        assert!(Caller::Admin.can_read(&[]));
    }

    #[test]
    fn user_reads_through_own_name_or_group_only() {
        let alice = Caller::user("alice", ["staff"]).unwrap();
        let by_name = [Principal::parse("user:alice").unwrap()];
        let by_group = [Principal::parse("group:staff").unwrap()];
        let other = [Principal::parse("user:bob").unwrap(), Principal::parse("group:hr").unwrap()];
        // A group named like the user must not grant access: kinds are distinct.
        let look_alike = [Principal::parse("group:alice").unwrap()];
        assert!(alice.can_read(&by_name));
        assert!(alice.can_read(&by_group));
        assert!(!alice.can_read(&other));
        assert!(!alice.can_read(&look_alike));
    }
}
