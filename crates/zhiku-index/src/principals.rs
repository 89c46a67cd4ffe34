//! Principals interned to small integers, so that each indexed entry's ACL is a short sorted list
//! of ids and an access check is an integer intersection, not string comparisons.

use std::collections::HashMap;
use std::io::Write;

use zhiku_core::{Caller, Principal};

use crate::codec::Reader;

#[derive(Debug, Default, Clone)]
pub(crate) struct Principals {
    list: Vec<Principal>,
    ids: HashMap<Principal, u32>,
}

impl Principals {
    pub fn intern(&mut self, p: &Principal) -> u32 {
        if let Some(id) = self.ids.get(p) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(p.clone());
        self.ids.insert(p.clone(), id);
        id
    }

    /// The sorted, distinct ids of an ACL, interning new principals.
    pub fn intern_all(&mut self, acl: &[Principal]) -> Box<[u32]> {
        let mut ids: Vec<u32> = acl.iter().map(|p| self.intern(p)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_boxed_slice()
    }

    pub fn id(&self, p: &Principal) -> Option<u32> {
        self.ids.get(p).copied()
    }

    pub fn get(&self, id: u32) -> Option<&Principal> {
        self.list.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// An ACL of ids back as principals.
    pub fn resolve(&self, ids: &[u32]) -> Vec<Principal> {
        ids.iter().filter_map(|id| self.get(*id).cloned()).collect()
    }

    /// The caller's principals as sorted ids; `None` for an administrator (no filtering).
    pub fn ids_of(&self, caller: &Caller) -> Option<Vec<u32>> {
        caller.principals().map(|held| {
            let mut ids: Vec<u32> = held.iter().filter_map(|p| self.id(p)).collect();
            ids.sort_unstable();
            ids
        })
    }

    /// Reads what [`Principals::write`] wrote.
    pub fn read(r: &mut Reader<'_>) -> std::result::Result<Self, String> {
        let mut table = Self::default();
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            let text = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
            table.intern(&Principal::parse(text).map_err(|e| e.to_string())?);
        }
        Ok(table)
    }

    /// The table as the index files store it: a count, then each principal as length and text.
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&(self.list.len() as u32).to_le_bytes())?;
        for p in &self.list {
            let bytes = p.as_str().as_bytes();
            w.write_all(&(bytes.len() as u32).to_le_bytes())?;
            w.write_all(bytes)?;
        }
        Ok(())
    }
}
