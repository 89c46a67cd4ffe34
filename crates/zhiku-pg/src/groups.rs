//! Group memberships, nested: what `--as USER` and API callers are resolved through, so every
//! replica sees the same groups.

use zhiku_core::Principal;

use crate::{PgStore, Result};

impl PgStore {
    /// Adds `member` (a user or group principal) to `group`; false when it was one already.
    pub fn add_member(&mut self, group: &str, member: &Principal) -> Result<bool> {
        let n = self
            .client
            .execute("INSERT INTO member (group_name, member) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&group, &member.as_str()])?;
        Ok(n == 1)
    }

    pub fn remove_member(&mut self, group: &str, member: &Principal) -> Result<bool> {
        let n = self.client.execute("DELETE FROM member WHERE group_name = $1 AND member = $2", &[&group, &member.as_str()])?;
        Ok(n == 1)
    }

    /// Makes `groups` exactly the groups `user` is a direct member of (a directory's account
    /// taking its groups over).
    pub fn set_groups_of(&mut self, user: &str, groups: &[String]) -> Result<()> {
        let principal = format!("user:{user}");
        let mut tx = self.client.transaction()?;
        tx.execute("DELETE FROM member WHERE member = $1", &[&principal])?;
        for group in groups {
            tx.execute("INSERT INTO member (group_name, member) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[group, &principal])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every group `user` belongs to, directly or through groups in groups (cycles allowed).
    pub fn groups_of(&mut self, user: &str) -> Result<Vec<String>> {
        let principal = format!("user:{user}");
        let rows = self.client.query(
            "WITH RECURSIVE g(name) AS (
                 SELECT group_name FROM member WHERE member = $1
                 UNION
                 SELECT m.group_name FROM member m JOIN g ON m.member = 'group:' || g.name)
             SELECT name FROM g ORDER BY name",
            &[&principal],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// (group, member) pairs, sorted.
    pub fn memberships(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self.client.query("SELECT group_name, member FROM member ORDER BY group_name, member", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
