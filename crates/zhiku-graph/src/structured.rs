//! Structured data (CSV/TSV rows, JSON records, each chunk a record of `field: value` lines):
//! every row is an entity, identified by its key column; a column whose values are other rows'
//! keys relates rows ("manager_id: E2" → `manager`), short text values relate the row to a
//! value entity ("team: Payments" → `team`), numbers, dates, booleans and long text become typed
//! attributes.
//!
//! The key column is the one declared ([`Keys`]) or else inferred: a column every row has with
//! values unique among the rows, names like `id`, `key`, `name` first.

use std::collections::{BTreeMap, HashMap};

use crate::local::{relation_name, value_kind};
use crate::{Attribute, DocumentText, EntityKind, EntityRef, Extraction, ValueKind};

/// Declared key columns, by name (case-insensitive); the first one a document has is its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub columns: Vec<String>,
}

/// Column names that identify a row, most telling first.
const KEY_NAMES: &[&str] = &["id", "key", "code", "uuid", "name", "title", "username", "user", "hostname", "host", "service", "email"];
/// Columns whose value names a row for people.
const NAME_COLUMNS: &[&str] = &["name", "title", "full_name", "fullname", "display_name", "label"];

type Record = Vec<(String, String)>;

fn fields(text: &str, heading_path: &[String]) -> Record {
    let mut out = Record::new();
    // A record split across chunks names itself in its heading path: `title: … · author: …`.
    if let Some(identity) = heading_path.last().filter(|h| h.contains(": ")) {
        for part in identity.split(" · ") {
            if let Some((k, v)) = part.split_once(": ") {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(": ") {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() && k.chars().count() <= 64 && !v.is_empty() {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn get<'a>(record: &'a Record, column: &str) -> Option<&'a str> {
    record.iter().find(|(k, _)| k.eq_ignore_ascii_case(column)).map(|(_, v)| v.as_str())
}

fn key_column(records: &[Record], keys: &Keys) -> Option<String> {
    let columns: Vec<String> = records.first()?.iter().map(|(k, _)| k.clone()).collect();
    let unique = |column: &str| {
        let mut seen = std::collections::HashSet::new();
        records.iter().all(|r| get(r, column).is_some_and(|v| seen.insert(v.to_lowercase())))
    };
    if let Some(declared) = keys.columns.iter().find(|d| records.iter().all(|r| get(r, d).is_some())) {
        return columns.iter().find(|c| c.eq_ignore_ascii_case(declared)).cloned();
    }
    let by_name = KEY_NAMES.iter().find_map(|name| columns.iter().find(|c| c.eq_ignore_ascii_case(name) && unique(c)));
    let by_suffix = || columns.iter().find(|c| relation_name(c).ends_with("_id") && unique(c));
    let first_unique = || columns.iter().find(|c| unique(c) && records.iter().all(|r| get(r, c).is_some_and(|v| v.chars().count() <= 80)));
    by_name.or_else(by_suffix).or_else(first_unique).cloned()
}

/// The type of a column: the narrowest type all its values read as.
fn column_kinds(records: &[Record]) -> HashMap<String, ValueKind> {
    let mut kinds: HashMap<String, ValueKind> = HashMap::new();
    for record in records {
        for (k, v) in record {
            let kind = value_kind(v);
            let merged = match kinds.get(k) {
                None => kind,
                Some(&old) if old == kind => old,
                Some(ValueKind::Integer) if kind == ValueKind::Number => ValueKind::Number,
                Some(ValueKind::Number) if kind == ValueKind::Integer => ValueKind::Number,
                Some(_) => ValueKind::Text,
            };
            kinds.insert(k.clone(), merged);
        }
    }
    kinds
}

pub fn extract(doc: &DocumentText<'_>, keys: &Keys) -> Vec<Extraction> {
    let records: Vec<Record> = doc.chunks.iter().map(|c| fields(c.text, c.heading_path)).collect();
    let present: Vec<Record> = records.iter().filter(|r| !r.is_empty()).cloned().collect();
    let Some(key) = key_column(&present, keys) else {
        // No column identifies the rows: read them as text.
        return doc.chunks.iter().map(|c| crate::local::extract_text(c.text)).collect();
    };
    let kinds = column_kinds(&present);
    let name_column =
        NAME_COLUMNS.iter().find_map(|n| present.first()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(k, _)| k.clone()));
    let entity_of = |record: &Record| -> Option<EntityRef> {
        let id = get(record, &key)?;
        let name = name_column.as_deref().and_then(|c| get(record, c)).unwrap_or(id);
        Some(EntityRef::new(name, EntityKind::Record))
    };
    // Rows by their key's value, for columns that refer to other rows.
    let rows: BTreeMap<String, EntityRef> = present.iter().filter_map(|r| Some((get(r, &key)?.to_lowercase(), entity_of(r)?))).collect();
    records
        .iter()
        .map(|record| {
            let mut out = Extraction::default();
            let Some(entity) = entity_of(record) else { return out };
            out.mention(&entity);
            if let Some(id) = get(record, &key).filter(|id| !id.eq_ignore_ascii_case(&entity.name)) {
                out.aliases.push((id.to_string(), entity.clone()));
            }
            for (column, value) in record {
                if column.eq_ignore_ascii_case(&key) || Some(column) == name_column.as_ref() {
                    continue;
                }
                let relation = relation_name(column);
                let relation = relation.strip_suffix("_id").filter(|r| !r.is_empty()).unwrap_or(&relation).to_string();
                if let Some(other) = rows.get(&value.to_lowercase()) {
                    out.relate(entity.clone(), &relation, other.clone(), 1.0);
                    continue;
                }
                let kind = kinds.get(column).copied().unwrap_or(ValueKind::Text);
                if kind == ValueKind::Text && value.split_whitespace().count() <= 6 && value.chars().count() <= 80 {
                    out.relate(entity.clone(), &relation, EntityRef::new(value.clone(), EntityKind::Value), 1.0);
                } else {
                    out.attributes.push(Attribute { entity: entity.clone(), name: column.clone(), value: value.clone(), kind });
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc<'a>(texts: &[&'a str]) -> DocumentText<'a> {
        DocumentText::plain("csv", "en", texts)
    }

    #[test]
    fn rows_become_entities_related_by_their_reference_columns() {
        let d = doc(&[
            "id: E1\nname: Alice Smith\nteam: Payments\nmanager_id: E3\nsalary: 5200\nstarted: 2021-03-01",
            "id: E2\nname: Bob Li\nteam: Platform\nmanager_id: E3\nsalary: 4800.5\nstarted: 2022-07-15",
            "id: E3\nname: Carol Wu\nteam: Payments\nsalary: 9100\nstarted: 2015-01-10",
        ]);
        let out = extract(&d, &Keys::default());
        let rel = |e: &Extraction| {
            e.relations.iter().map(|r| format!("{} -{}-> {}", r.subject.name, r.relation, r.object.name)).collect::<Vec<_>>()
        };
        assert_eq!(rel(&out[0]), vec!["Alice Smith -team-> Payments", "Alice Smith -manager-> Carol Wu"]);
        assert_eq!(rel(&out[2]), vec!["Carol Wu -team-> Payments"]);
        assert_eq!(out[0].aliases, vec![("E1".to_string(), EntityRef::new("Alice Smith", EntityKind::Record))]);
        let attrs: Vec<_> = out[1].attributes.iter().map(|a| (a.name.as_str(), a.value.as_str(), a.kind)).collect();
        assert_eq!(attrs, vec![("salary", "4800.5", ValueKind::Number), ("started", "2022-07-15", ValueKind::Date)]);
    }

    #[test]
    fn a_declared_key_wins_and_rows_without_a_key_read_as_text() {
        let d = doc(&["host: db1\nrole: primary\nsite: Paris", "host: db2\nrole: replica\nsite: Paris"]);
        let out = extract(&d, &Keys { columns: vec!["role".into()] });
        assert_eq!(out[0].mentions[0].name, "primary");
        let inferred = extract(&d, &Keys::default());
        assert_eq!(inferred[0].mentions[0].name, "db1");
        // No unique column: the rows say nothing as rows.
        let d = doc(&["kind: a\nsite: Paris", "kind: a\nsite: Paris"]);
        assert!(extract(&d, &Keys::default()).iter().all(|e| e.mentions.iter().all(|m| m.kind != EntityKind::Record)));
    }
}
