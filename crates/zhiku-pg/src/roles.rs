//! Roles on knowledge bases in the shared database, as in the embedded store: viewer, editor
//! or admin per user or group; the principals holding any role are the knowledge base's
//! inherited ACL. Replicas let editors change documents, as the embedded server does.

use zhiku_core::{Principal, Role};

use crate::documents::{follow_roles, parse_principals};
use crate::{Error, KbId, PgStore, Result};

impl PgStore {
    /// Gives `principal` a role (or with `None` takes it away) and moves the inheriting
    /// documents to the new readers; how many documents changed.
    pub fn set_kb_role(&mut self, kb: &KbId, principal: &Principal, role: Option<Role>) -> Result<u64> {
        let mut tx = self.client.transaction()?;
        match role {
            Some(role) => tx.execute(
                "INSERT INTO kb_role (kb_id, principal, role) VALUES ($1, $2, $3) ON CONFLICT (kb_id, principal) DO UPDATE SET role = excluded.role",
                &[&kb.id, &principal.as_str(), &role.as_str()],
            )?,
            None => tx.execute("DELETE FROM kb_role WHERE kb_id = $1 AND principal = $2", &[&kb.id, &principal.as_str()])?,
        };
        let changed = follow_roles(&mut tx, kb.id)?;
        tx.commit()?;
        Ok(changed)
    }

    pub fn kb_roles(&mut self, kb: &KbId) -> Result<Vec<(Principal, Role)>> {
        let rows = self.client.query("SELECT principal, role FROM kb_role WHERE kb_id = $1 ORDER BY principal", &[&kb.id])?;
        let principals = parse_principals(&rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())?;
        principals
            .into_iter()
            .zip(rows.iter())
            .map(|(p, r)| {
                let role: String = r.get(1);
                Ok((p, role.parse().map_err(|e: zhiku_core::Error| Error::Corrupt(e.to_string()))?))
            })
            .collect()
    }

    /// The strongest role any of `principals` holds on the knowledge base.
    pub fn role_of(&mut self, kb: &KbId, principals: &[Principal]) -> Result<Option<Role>> {
        let held: Vec<&str> = principals.iter().map(|p| p.as_str()).collect();
        Ok(self.kb_roles(kb)?.into_iter().filter(|(p, _)| held.contains(&p.as_str())).map(|(_, r)| r).max())
    }
}
