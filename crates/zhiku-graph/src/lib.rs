//! zhiku-graph: the knowledge graph's pure logic, free of I/O.
//!
//! It owns what a chunk says about entities and their relations ([`Extractor`]: the fast local
//! [`LocalExtractor`], which reads structured records with [`structured`], and the model-based
//! [`llm::LlmExtractor`]), when two names are one entity ([`resolve`]), how a graph is walked
//! ([`walk`]: neighbourhoods, k-hop expansion, shortest paths) and grouped ([`community`]), and
//! how it is written out for Neo4j and other tools ([`export`]). Storage is the store's
//! (`zhiku-store`), orchestration the engine's (`zhiku-rag`).
//!
//! ```
//! use zhiku_graph::{DocumentText, Extractor, LocalExtractor};
//!
//! let doc = DocumentText::plain("text", "en", &["The Atlas service depends on Borealis."]);
//! let found = LocalExtractor.extract(&doc);
//! let r = &found[0].relations[0];
//! assert_eq!((r.subject.name.as_str(), r.relation.as_str(), r.object.name.as_str()), ("Atlas", "depends_on", "Borealis"));
//! ```

pub mod community;
pub mod export;
pub mod llm;
mod local;
pub mod resolve;
pub mod structured;
pub mod walk;
mod words;

use serde::{Deserialize, Serialize};

pub use local::{query_terms, LocalExtractor};

/// What an entity is, as far as extraction can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// A capitalised name of unknown kind (a product, a team, a system).
    Name,
    Person,
    Place,
    Organization,
    /// A code identifier, a path, a package.
    Code,
    /// A named thing with a version (`Debian 12`).
    Product,
    /// A common noun phrase (`database`, `web server`).
    Concept,
    /// A row of structured data.
    Record,
    /// A categorical value of a structured column.
    Value,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Name => "name",
            EntityKind::Person => "person",
            EntityKind::Place => "place",
            EntityKind::Organization => "organization",
            EntityKind::Code => "code",
            EntityKind::Product => "product",
            EntityKind::Concept => "concept",
            EntityKind::Record => "record",
            EntityKind::Value => "value",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "name" => EntityKind::Name,
            "person" => EntityKind::Person,
            "place" => EntityKind::Place,
            "organization" => EntityKind::Organization,
            "code" => EntityKind::Code,
            "product" => EntityKind::Product,
            "concept" => EntityKind::Concept,
            "record" => EntityKind::Record,
            "value" => EntityKind::Value,
            _ => return None,
        })
    }

    /// Named things (not common nouns nor values): these co-occurring in a sentence is worth an
    /// edge.
    pub fn is_named(self) -> bool {
        !matches!(self, EntityKind::Concept | EntityKind::Value)
    }
}

/// An entity as a chunk names it. The name is as written; [`resolve::entity_key`] decides which
/// stored entity it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    pub name: String,
    pub kind: EntityKind,
}

impl EntityRef {
    pub fn new(name: impl Into<String>, kind: EntityKind) -> Self {
        Self { name: name.into(), kind }
    }
}

/// A directed relation `subject —relation→ object`, as a chunk states it (or, for
/// `related_to`, as it suggests by naming both in one sentence: the weight counts how often).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    pub subject: EntityRef,
    /// A snake_case verb from a small canonical vocabulary (`is_a`, `depends_on`, `owns`, …):
    /// "X is owned by Y" and "Y owns X" are one relation.
    pub relation: String,
    pub object: EntityRef,
    pub weight: f32,
}

/// The generic relation of two entities named in one sentence.
pub const RELATED_TO: &str = "related_to";

/// The type of an attribute's value, inferred from the values of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Integer,
    Number,
    Boolean,
    Date,
    Text,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Integer => "integer",
            ValueKind::Number => "number",
            ValueKind::Boolean => "boolean",
            ValueKind::Date => "date",
            ValueKind::Text => "text",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "integer" => ValueKind::Integer,
            "number" => ValueKind::Number,
            "boolean" => ValueKind::Boolean,
            "date" => ValueKind::Date,
            "text" => ValueKind::Text,
            _ => return None,
        })
    }
}

/// A typed attribute of an entity (a structured row's numbers, dates, long text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub entity: EntityRef,
    pub name: String,
    pub value: String,
    pub kind: ValueKind,
}

/// Everything one chunk contributes to the graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    pub mentions: Vec<EntityRef>,
    pub relations: Vec<Relation>,
    pub attributes: Vec<Attribute>,
    /// `(alias, entity)`: another name of the entity (`PostgreSQL (Postgres)`, a row's id).
    pub aliases: Vec<(String, EntityRef)>,
}

impl Extraction {
    pub fn is_empty(&self) -> bool {
        self.mentions.is_empty() && self.relations.is_empty() && self.attributes.is_empty() && self.aliases.is_empty()
    }

    /// Adds a mention unless the same entity is mentioned already.
    pub(crate) fn mention(&mut self, entity: &EntityRef) {
        let key = resolve::entity_key(&entity.name, entity.kind);
        if !key.is_empty() && !self.mentions.iter().any(|m| resolve::entity_key(&m.name, m.kind) == key) {
            self.mentions.push(entity.clone());
        }
    }

    /// Adds a relation (and its ends as mentions); the same relation twice adds up its weight.
    pub(crate) fn relate(&mut self, subject: EntityRef, relation: &str, object: EntityRef, weight: f32) {
        let (sk, ok) = (resolve::entity_key(&subject.name, subject.kind), resolve::entity_key(&object.name, object.kind));
        if sk.is_empty() || ok.is_empty() || sk == ok {
            return;
        }
        self.mention(&subject);
        self.mention(&object);
        let same = |r: &Relation| {
            r.relation == relation
                && resolve::entity_key(&r.subject.name, r.subject.kind) == sk
                && resolve::entity_key(&r.object.name, r.object.kind) == ok
        };
        match self.relations.iter_mut().find(|r| same(r)) {
            Some(r) => r.weight += weight,
            None => self.relations.push(Relation { subject, relation: relation.to_string(), object, weight }),
        }
    }
}

/// One chunk's text as extraction sees it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkText<'a> {
    pub text: &'a str,
    pub heading_path: &'a [String],
}

/// A document's chunks with what is known of the document: its format (`csv`, `json`, `html`,
/// …) decides whether its chunks are records, its language which patterns apply.
#[derive(Debug, Clone)]
pub struct DocumentText<'a> {
    pub format: &'a str,
    pub language: &'a str,
    pub chunks: Vec<ChunkText<'a>>,
}

impl<'a> DocumentText<'a> {
    /// A document of chunks without heading paths.
    pub fn plain(format: &'a str, language: &'a str, texts: &[&'a str]) -> Self {
        Self { format, language, chunks: texts.iter().map(|text| ChunkText { text, heading_path: &[] }).collect() }
    }

    /// Structured formats: each chunk is a record of `field: value` lines.
    pub fn is_structured(&self) -> bool {
        matches!(self.format, "csv" | "tsv" | "json" | "jsonl")
    }
}

/// Reads what chunks say about entities and relations. One [`Extraction`] per chunk of the
/// document, in order.
pub trait Extractor: Send + Sync {
    /// Recorded with what it extracted, so that a changed extractor can re-extract.
    fn name(&self) -> &str;
    fn extract(&self, doc: &DocumentText<'_>) -> Vec<Extraction>;
}
