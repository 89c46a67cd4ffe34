//! The knowledge graph as callers see it: kept up to date with the chunks after each ingest, read
//! through the caller's ACL (an entity, an edge, an attribute exists for a caller only through a
//! document the caller may read), and used for retrieval — the entities a question names, their
//! neighbourhood, and the chunks that state those relations.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tracing::{debug, info_span};
use zhiku_core::Caller;
use zhiku_graph::resolve::{entity_key, fold_key, near_identical};
use zhiku_graph::walk::{self, Step};
use zhiku_graph::{structured, DocumentText, EntityKind, Extractor, LocalExtractor, RELATED_TO};
use zhiku_store::{Store, Supported};

use crate::Result;

/// Knowledge-graph settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Build the graph while ingesting.
    pub enabled: bool,
    /// `local` (patterns, no model, fast) or `llm` (the configured language model writes each
    /// chunk's triples, grammar-constrained and checked against the text; for models that can).
    pub extractor: ExtractorKind,
    /// Columns that identify a row of structured data (CSV, JSON), tried in order; otherwise the
    /// key column is inferred (unique values, names like `id` and `name` first).
    pub key_columns: Vec<String>,
    /// How far graph retrieval walks from the entities a question names.
    pub hops: usize,
    /// Entities graph retrieval visits at most.
    pub max_entities: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self { enabled: true, extractor: ExtractorKind::Local, key_columns: Vec::new(), hops: 2, max_entities: 40 }
    }
}

/// Which extractor builds the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractorKind {
    #[default]
    Local,
    Llm,
}

impl std::str::FromStr for ExtractorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Self::Local),
            "llm" => Ok(Self::Llm),
            other => Err(format!("unknown extractor '{other}': use local or llm")),
        }
    }
}

/// A chat model as the model-based extractor uses it: greedy, then sampled for the retry.
pub struct ChatTripleModel<'a> {
    pub model: &'a dyn zhiku_models::ChatModel,
    /// Names the model for the extraction cache (its file, say).
    pub id: String,
}

impl zhiku_graph::llm::TripleModel for ChatTripleModel<'_> {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn complete(&self, system: &str, user: &str, grammar: &str, attempt: u32) -> Result<String, String> {
        let options = zhiku_models::GenerationOptions {
            max_tokens: 400,
            temperature: if attempt == 0 { 0.0 } else { 0.7 },
            seed: 7 + attempt,
            repeat_penalty: 1.0,
            context_tokens: 2048,
            threads: None,
            grammar: Some(grammar.to_string()),
        };
        let messages = [zhiku_models::ChatMessage::new("system", system), zhiku_models::ChatMessage::new("user", user)];
        self.model.generate(&messages, &options, &mut |_| true).map(|g| g.text).map_err(|e| e.to_string())
    }
}

/// The store as the model-based extractor's cache.
struct StoreCache<'a>(&'a Store);

impl zhiku_graph::llm::ExtractionCache for StoreCache<'_> {
    fn get(&self, key: &str) -> Option<zhiku_graph::Extraction> {
        self.0.graph_cached_extraction(key).ok().flatten()
    }

    fn put(&self, key: &str, extraction: &zhiku_graph::Extraction) {
        if let Err(e) = self.0.cache_graph_extraction(key, extraction) {
            tracing::warn!(error = %e, "cannot cache a model's extraction");
        }
    }
}

/// A relation's total weight, the chunks stating it and their sources.
type Support = (f32, Vec<u64>, BTreeSet<String>);
/// A walk step with the chunks and sources behind it.
type SupportedStep = (Step, Vec<u64>, Vec<String>);
/// A walk step as the walk sees it: (from, to, relation, incoming).
type StepKey = (i64, i64, String, bool);
/// An edge inside a community: (source, target, relation, weight, chunks, sources).
type CommunityEdge = (i64, i64, String, f32, Vec<u64>, BTreeSet<String>);

/// How retrieval finds passages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetrievalMode {
    /// Vector and BM25 search fused.
    #[default]
    Hybrid,
    /// Hybrid search fused with the chunks that state the relations around the entities the
    /// question names (multi-hop questions: "who owns the service X depends on").
    Graph,
    /// Hybrid search fused with the chunks behind the knowledge base's main communities, those
    /// the question's words point to first ("what are the main systems and who runs them").
    Global,
}

impl std::str::FromStr for RetrievalMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hybrid" => Ok(Self::Hybrid),
            "graph" => Ok(Self::Graph),
            "global" => Ok(Self::Global),
            other => Err(format!("unknown retrieval mode '{other}': use hybrid, graph or global")),
        }
    }
}

/// A neighbour of an entity, through one relation, with the documents that say so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbor {
    pub entity: String,
    pub kind: String,
    pub relation: String,
    /// `out`: the entity → the neighbour; `in`: the neighbour → the entity.
    pub direction: &'static str,
    pub weight: f32,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeView {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sources: Vec<String>,
}

/// An entity as a caller sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityView {
    pub entity: String,
    pub kind: String,
    /// Other names it goes by (declared aliases, spellings merged with it).
    pub aliases: Vec<String>,
    pub neighbors: Vec<Neighbor>,
    pub attributes: Vec<AttributeView>,
    /// The documents that mention it.
    pub sources: Vec<String>,
}

/// A community as a caller sees it: its best-connected entities, its heaviest stated relations
/// as sentences, the documents behind them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommunityView {
    pub id: i64,
    /// Entities of it the caller can see.
    pub size: usize,
    pub entities: Vec<String>,
    pub relations: Vec<String>,
    pub sources: Vec<String>,
    /// The chunks stating those relations, best first.
    #[serde(skip)]
    pub chunks: Vec<u64>,
    #[serde(skip)]
    keys: Vec<String>,
    #[serde(skip)]
    weight: f32,
}

/// One step of a path between two entities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStep {
    pub from: String,
    pub relation: String,
    pub to: String,
    pub direction: &'static str,
    pub sources: Vec<String>,
}

/// What [`crate::Engine::update_graph`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GraphUpdate {
    pub documents: usize,
    pub chunks: usize,
    /// Entities removed because nothing mentions them any more.
    pub removed_entities: usize,
    /// With the model-based extractor: chunks the model read, answered from the cache, or read
    /// locally after two answers that were not taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelReading>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelReading {
    pub read: usize,
    pub cached: usize,
    pub fallback: usize,
}

/// Reads the graph of one knowledge base as one caller.
pub struct GraphView<'a> {
    store: &'a Store,
    kb: &'a str,
    caller: &'a Caller,
}

fn sources_of<T>(rows: &[&Supported<T>]) -> Vec<String> {
    rows.iter().map(|r| r.source.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

impl<'a> GraphView<'a> {
    /// The graph of an existing knowledge base as `caller` sees it.
    pub fn new(store: &'a Store, kb: &'a str, caller: &'a Caller) -> Result<Self> {
        if !store.kb_exists(kb)? {
            return Err(crate::Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        Ok(Self { store, kb, caller })
    }

    fn visible<T>(&self, rows: Vec<Supported<T>>) -> Vec<Supported<T>> {
        rows.into_iter().filter(|r| self.caller.can_read(&r.acl)).collect()
    }

    /// The entities among `ids` that a document the caller may read mentions.
    fn visible_entities(&self, ids: &[i64]) -> Result<HashSet<i64>> {
        Ok(self.visible(self.store.graph_mentions(ids)?).into_iter().map(|m| m.item).collect())
    }

    /// Every stored entity the text names, as the caller sees it: by key (as a name and as a
    /// common noun), by a visible alias, by folded spelling and by a near-identical one; then
    /// what those are aliases of or have as aliases.
    fn resolve(&self, text: &str) -> Result<Vec<i64>> {
        let keys: Vec<String> = [EntityKind::Name, EntityKind::Concept]
            .into_iter()
            .map(|k| entity_key(text, k))
            .filter(|k| !k.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: BTreeSet<i64> = self.store.graph_entities_by_key(self.kb, &keys)?.into_iter().map(|e| e.id).collect();
        ids.extend(self.visible(self.store.graph_aliased(self.kb, &keys)?).into_iter().map(|a| a.item));
        let folds: Vec<String> = keys.iter().map(|k| fold_key(k)).filter(|f| f.chars().count() >= 3).collect();
        if !folds.is_empty() {
            ids.extend(self.store.graph_entities_by_fold(self.kb, &folds)?.into_iter().map(|e| e.id));
            for fold in &folds {
                for (entity, other) in self.store.graph_fold_neighbours(self.kb, fold)? {
                    if near_identical(fold, &other) {
                        ids.insert(entity.id);
                    }
                }
            }
        }
        // What the found entities were judged the same as (spelling and meaning), what they are
        // declared to be another name of, and the reverse.
        let found: Vec<i64> = ids.iter().copied().collect();
        ids.extend(self.store.graph_same_as(&found)?);
        let found: Vec<i64> = ids.iter().copied().collect();
        let aliases: Vec<String> = self.visible(self.store.graph_aliases_of(&found)?).into_iter().map(|a| a.item.1).collect();
        if !aliases.is_empty() {
            ids.extend(self.store.graph_entities_by_stored_key(self.kb, &aliases)?.into_iter().map(|e| e.id));
        }
        let candidates: Vec<i64> = ids.into_iter().collect();
        let visible = self.visible_entities(&candidates)?;
        Ok(candidates.into_iter().filter(|id| visible.contains(id)).collect())
    }

    /// The entity `text` names, with its neighbours, attributes and sources; `None` when the
    /// caller sees no such entity.
    pub fn entity(&self, text: &str, limit: usize) -> Result<Option<EntityView>> {
        let class = self.resolve(text)?;
        if class.is_empty() {
            return Ok(None);
        }
        let members: HashSet<i64> = class.iter().copied().collect();
        let entities = self.store.graph_entities(self.kb, &class)?;
        let mentions = self.visible(self.store.graph_mentions(&class)?);
        // The entity's name: the spelling most documents use, the text asked for on a tie.
        let mut support: HashMap<i64, usize> = HashMap::new();
        for m in &mentions {
            *support.entry(m.item).or_default() += 1;
        }
        let main = entities
            .iter()
            .max_by_key(|e| {
                (support.get(&e.id).copied().unwrap_or(0), entity_key(&e.name, EntityKind::Name) == entity_key(text, EntityKind::Name))
            })
            .cloned();
        let Some(main) = main else { return Ok(None) };
        let aliases: Vec<String> =
            entities.iter().filter(|e| e.id != main.id).map(|e| e.name.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let edges = self.visible(self.store.graph_edges(&class)?);
        let mut grouped: BTreeMap<(i64, String, &'static str), Vec<&Supported<zhiku_store::EdgeRow>>> = BTreeMap::new();
        for e in &edges {
            let (other, direction) = match (members.contains(&e.item.source_id), members.contains(&e.item.target_id)) {
                (true, false) => (e.item.target_id, "out"),
                (false, true) => (e.item.source_id, "in"),
                _ => continue,
            };
            grouped.entry((other, e.item.relation.clone(), direction)).or_default().push(e);
        }
        let others: Vec<i64> = grouped.keys().map(|k| k.0).collect::<BTreeSet<_>>().into_iter().collect();
        let names: HashMap<i64, zhiku_store::GraphEntity> =
            self.store.graph_entities(self.kb, &others)?.into_iter().map(|e| (e.id, e)).collect();
        let mut neighbors: Vec<Neighbor> = grouped
            .iter()
            .filter_map(|((other, relation, direction), rows)| {
                let entity = names.get(other)?;
                Some(Neighbor {
                    entity: entity.name.clone(),
                    kind: entity.kind.clone(),
                    relation: relation.clone(),
                    direction,
                    weight: rows.iter().map(|r| r.item.weight).sum(),
                    sources: sources_of(rows),
                })
            })
            .collect();
        neighbors.sort_by(|a, b| {
            (a.relation == RELATED_TO)
                .cmp(&(b.relation == RELATED_TO))
                .then(b.weight.total_cmp(&a.weight))
                .then_with(|| a.entity.cmp(&b.entity))
                .then_with(|| a.relation.cmp(&b.relation))
        });
        neighbors.truncate(limit);
        let attributes = self.visible(self.store.graph_attributes(&class)?);
        let mut by_attribute: BTreeMap<(String, String, String), Vec<&Supported<zhiku_store::AttributeRow>>> = BTreeMap::new();
        for a in &attributes {
            by_attribute.entry((a.item.name.clone(), a.item.value.clone(), a.item.kind.clone())).or_default().push(a);
        }
        let attributes = by_attribute
            .into_iter()
            .map(|((name, value, kind), rows)| AttributeView { name, value, kind, sources: sources_of(&rows) })
            .collect();
        let mention_refs: Vec<&Supported<i64>> = mentions.iter().collect();
        Ok(Some(EntityView { entity: main.name, kind: main.kind, aliases, neighbors, attributes, sources: sources_of(&mention_refs) }))
    }

    /// The caller's view of an entity's edges, as walk steps, with the chunks behind each.
    fn steps(&self, id: i64) -> Result<Vec<SupportedStep>> {
        self.steps_for(id, &HashSet::new())
    }

    /// [`GraphView::steps`], with relations the question names (`owns` for "who owns …")
    /// weighing double.
    fn steps_for(&self, id: i64, asked: &HashSet<String>) -> Result<Vec<SupportedStep>> {
        let mut merged: BTreeMap<(i64, String, bool), Support> = BTreeMap::new();
        for e in self.visible(self.store.graph_edges(&[id])?) {
            let (to, incoming) = if e.item.source_id == id { (e.item.target_id, false) } else { (e.item.source_id, true) };
            if to == id {
                continue;
            }
            let slot = merged.entry((to, e.item.relation.clone(), incoming)).or_default();
            slot.0 += e.item.weight;
            slot.1.push(e.chunk_id);
            slot.2.insert(e.source);
        }
        Ok(merged
            .into_iter()
            .map(|((to, relation, incoming), (weight, chunks, sources))| {
                // Co-occurrence is a weak hint next to a stated relation.
                let weight = if relation == RELATED_TO { weight * 0.25 } else { weight };
                let weight = if asked.contains(&relation_stem(&relation)) { weight * 2.0 } else { weight };
                (Step { to, relation, incoming, weight }, chunks, sources.into_iter().collect())
            })
            .collect())
    }

    /// The shortest chain of relations from one entity to another, at most `max_hops` long.
    pub fn path(&self, from: &str, to: &str, max_hops: usize) -> Result<Option<Vec<PathStep>>> {
        let (starts, ends) = (self.resolve(from)?, self.resolve(to)?);
        if starts.is_empty() || ends.is_empty() {
            return Ok(None);
        }
        if starts.iter().any(|s| ends.contains(s)) {
            return Ok(Some(Vec::new()));
        }
        // The start's ids are walked from as one node (START), any of the end's ids is the goal
        // (GOAL); what each step really joined is kept aside.
        const START: i64 = i64::MIN;
        const GOAL: i64 = i64::MIN + 1;
        let ends: HashSet<i64> = ends.into_iter().collect();
        let mut taken: HashMap<StepKey, (i64, i64, Vec<String>)> = HashMap::new();
        let mut failure = None;
        let found = walk::shortest_path(START, GOAL, max_hops, |at| {
            let origins: Vec<i64> = if at == START { starts.clone() } else { vec![at] };
            let mut out = Vec::new();
            for origin in origins {
                match self.steps(origin) {
                    Ok(steps) => {
                        for (mut step, _, docs) in steps {
                            let real = step.to;
                            if ends.contains(&real) {
                                step.to = GOAL;
                            } else if starts.contains(&real) {
                                continue;
                            }
                            taken.insert((at, step.to, step.relation.clone(), step.incoming), (origin, real, docs));
                            out.push(step);
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            out
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let Some(found) = found else { return Ok(None) };
        let steps: Vec<(i64, i64, Step, Vec<String>)> = found
            .into_iter()
            .filter_map(|(at, step)| {
                let (origin, real, docs) = taken.remove(&(at, step.to, step.relation.clone(), step.incoming))?;
                Some((origin, real, step, docs))
            })
            .collect();
        let ids: Vec<i64> = steps.iter().flat_map(|(a, b, _, _)| [*a, *b]).collect();
        let names: HashMap<i64, String> = self.store.graph_entities(self.kb, &ids)?.into_iter().map(|e| (e.id, e.name)).collect();
        let name = |id: &i64| names.get(id).cloned().unwrap_or_default();
        Ok(Some(
            steps
                .into_iter()
                .map(|(origin, real, step, sources)| PathStep {
                    from: name(&origin),
                    to: name(&real),
                    direction: if step.incoming { "in" } else { "out" },
                    relation: step.relation,
                    sources,
                })
                .collect(),
        ))
    }

    /// Chunks for graph retrieval: those stating the relations within `hops` of the entities the
    /// question names, nearer and heavier first, with their scores.
    pub fn retrieve(&self, question: &str, hops: usize, max_entities: usize) -> Result<Vec<(u64, f32)>> {
        let (named, phrases) = zhiku_graph::query_terms(question);
        let mut seeds: Vec<i64> = Vec::new();
        for name in &named {
            seeds.extend(self.resolve(name)?);
        }
        if seeds.is_empty() {
            // No name: the longest common-noun phrases the graph knows.
            let mut by_length: Vec<&String> = phrases.iter().collect();
            by_length.sort_by_key(|p| std::cmp::Reverse(p.split_whitespace().count()));
            for phrase in by_length {
                if seeds.len() >= 4 {
                    break;
                }
                seeds.extend(self.resolve(phrase)?);
            }
        }
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.is_empty() {
            return Ok(Vec::new());
        }
        let mut traversed: Vec<(i64, i64, f32, Vec<u64>)> = Vec::new();
        let mut failure = None;
        let asked: HashSet<String> = question.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(relation_stem).collect();
        let reached = walk::k_hop(&seeds, hops, max_entities, |at| match self.steps_for(at, &asked) {
            Ok(steps) => steps
                .into_iter()
                .map(|(step, chunks, _)| {
                    traversed.push((at, step.to, step.weight, chunks));
                    step
                })
                .collect(),
            Err(e) => {
                failure = Some(e);
                Vec::new()
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let depth: HashMap<i64, usize> = reached.into_iter().collect();
        let mut scores: HashMap<u64, f32> = HashMap::new();
        for (from, to, weight, chunks) in traversed {
            if let (Some(&df), Some(&dt)) = (depth.get(&from), depth.get(&to)) {
                if dt == df + 1 {
                    for chunk in chunks {
                        *scores.entry(chunk).or_default() += weight / dt as f32;
                    }
                }
            }
        }
        for m in self.visible(self.store.graph_mentions(&seeds)?) {
            *scores.entry(m.chunk_id).or_default() += 0.5;
        }
        let mut ranked: Vec<(u64, f32)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        debug!(seeds = seeds.len(), entities = depth.len(), chunks = ranked.len(), "graph retrieval");
        Ok(ranked)
    }

    /// The knowledge base's communities as the caller sees them (at least two visible entities),
    /// most connected first.
    pub fn communities(&self, limit: usize) -> Result<Vec<CommunityView>> {
        let membership = self.store.graph_communities(self.kb)?;
        if membership.is_empty() {
            return Ok(Vec::new());
        }
        let community_of: HashMap<i64, i64> = membership.iter().copied().collect();
        let ids: Vec<i64> = membership.iter().map(|m| m.0).collect();
        let visible = self.visible_entities(&ids)?;
        let names: HashMap<i64, zhiku_store::GraphEntity> =
            self.store.graph_entities(self.kb, &visible.iter().copied().collect::<Vec<_>>())?.into_iter().map(|e| (e.id, e)).collect();
        // Edges inside one community, as the caller sees them, merged across chunks.
        let mut inside: BTreeMap<(i64, i64, i64, String), Support> = BTreeMap::new();
        for e in self.visible(self.store.graph_all_edges(self.kb)?) {
            let (Some(&a), Some(&b)) = (community_of.get(&e.item.source_id), community_of.get(&e.item.target_id)) else { continue };
            if a != b {
                continue;
            }
            let slot = inside.entry((a, e.item.source_id, e.item.target_id, e.item.relation)).or_default();
            slot.0 += e.item.weight;
            slot.1.push(e.chunk_id);
            slot.2.insert(e.source);
        }
        let mut degree: HashMap<i64, f32> = HashMap::new();
        let mut by_community: BTreeMap<i64, Vec<CommunityEdge>> = BTreeMap::new();
        for ((c, s, t, r), (w, chunks, sources)) in inside {
            let w = if r == RELATED_TO { w * 0.25 } else { w };
            *degree.entry(s).or_default() += w;
            *degree.entry(t).or_default() += w;
            by_community.entry(c).or_default().push((s, t, r, w, chunks, sources));
        }
        let mut out = Vec::new();
        for (id, mut edges) in by_community {
            let mut members: Vec<i64> = membership.iter().filter(|m| m.1 == id && visible.contains(&m.0)).map(|m| m.0).collect();
            if members.len() < 2 {
                continue;
            }
            members.sort_by(|a, b| degree.get(b).unwrap_or(&0.0).total_cmp(degree.get(a).unwrap_or(&0.0)).then(a.cmp(b)));
            edges.sort_by(|a, b| (a.2 == RELATED_TO).cmp(&(b.2 == RELATED_TO)).then(b.3.total_cmp(&a.3)).then((a.0, a.1).cmp(&(b.0, b.1))));
            let name = |id: &i64| names.get(id).map(|e| e.name.clone()).unwrap_or_default();
            let stated: Vec<_> = edges.iter().filter(|e| e.2 != RELATED_TO).take(10).collect();
            let relations = stated.iter().map(|(s, t, r, ..)| format!("{} {} {}", name(s), r.replace('_', " "), name(t))).collect();
            let mut chunks = Vec::new();
            let mut sources = BTreeSet::new();
            for (_, _, _, _, c, docs) in edges.iter().take(10) {
                for chunk in c {
                    if !chunks.contains(chunk) {
                        chunks.push(*chunk);
                    }
                }
                sources.extend(docs.iter().cloned());
            }
            let keys = members.iter().filter_map(|m| names.get(m)).map(|e| entity_key(&e.name, EntityKind::Name)).collect();
            out.push(CommunityView {
                id,
                size: members.len(),
                entities: members.iter().take(10).map(name).collect(),
                relations,
                sources: sources.into_iter().collect(),
                chunks,
                keys,
                weight: edges.iter().map(|e| e.3).sum(),
            });
        }
        out.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Chunks for global retrieval: those behind the communities the question's words name
    /// (entities in them), or else the largest ones.
    pub fn retrieve_global(&self, question: &str, communities: usize) -> Result<Vec<(u64, f32)>> {
        let (named, phrases) = zhiku_graph::query_terms(question);
        let terms: HashSet<String> = named.iter().chain(&phrases).map(|t| entity_key(t, EntityKind::Name)).collect();
        let mut all = self.communities(usize::MAX)?;
        // Communities the question names come first, in the order of how much it names them.
        let hits = |c: &CommunityView| c.keys.iter().filter(|k| terms.contains(*k)).count();
        all.sort_by(|a, b| hits(b).cmp(&hits(a)).then(b.weight.total_cmp(&a.weight)).then(a.id.cmp(&b.id)));
        let mut ranked = Vec::new();
        for (rank, c) in all.iter().take(communities).enumerate() {
            for (i, chunk) in c.chunks.iter().take(5).enumerate() {
                if !ranked.iter().any(|(id, _)| id == chunk) {
                    ranked.push((*chunk, 1.0 / (1 + rank * 5 + i) as f32));
                }
            }
        }
        Ok(ranked)
    }

    /// The caller's view of the whole graph, for export.
    pub fn export(&self) -> Result<zhiku_graph::export::Graph> {
        let edges = self.visible(self.store.graph_all_edges(self.kb)?);
        let entities = self.store.graph_all_entities(self.kb)?;
        let ids: Vec<i64> = entities.iter().map(|(e, _)| e.id).collect();
        let visible = self.visible_entities(&ids)?;
        let mut attributes: HashMap<i64, Vec<(String, String, zhiku_graph::ValueKind)>> = HashMap::new();
        for a in self.visible(self.store.graph_attributes(&ids)?) {
            let kind = zhiku_graph::ValueKind::parse(&a.item.kind).unwrap_or(zhiku_graph::ValueKind::Text);
            let list = attributes.entry(a.item.entity_id).or_default();
            if !list.iter().any(|(n, v, _)| *n == a.item.name && *v == a.item.value) {
                list.push((a.item.name, a.item.value, kind));
            }
        }
        let nodes = entities
            .into_iter()
            .filter(|(e, _)| visible.contains(&e.id))
            .map(|(e, _)| zhiku_graph::export::Node {
                id: e.id,
                attributes: attributes.remove(&e.id).unwrap_or_default(),
                name: e.name,
                kind: e.kind,
            })
            .collect();
        let mut merged: BTreeMap<(i64, i64, String), (f32, BTreeSet<String>)> = BTreeMap::new();
        for e in edges {
            let slot = merged.entry((e.item.source_id, e.item.target_id, e.item.relation)).or_default();
            slot.0 += e.item.weight;
            slot.1.insert(e.source);
        }
        let edges = merged
            .into_iter()
            .map(|((source, target, relation), (weight, sources))| zhiku_graph::export::Edge {
                source,
                target,
                relation,
                weight,
                sources: sources.into_iter().collect(),
            })
            .collect();
        Ok(zhiku_graph::export::Graph { nodes, edges })
    }
}

/// A relation's verb, or a question's word, without case and a plural or third-person `s`:
/// `owns` and "own", `depends_on` and "depend".
fn relation_stem(word: &str) -> String {
    let first = word.split('_').next().unwrap_or(word).to_lowercase();
    match first.strip_suffix('s') {
        Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_string(),
        _ => first,
    }
}

/// Extracts the knowledge base's unread chunks, a few documents at a time (each its own
/// transaction), then drops the entities nothing mentions any more. `model`: the language model
/// for the `llm` extractor (without one, or with the `local` extractor configured, the local
/// extractor reads).
/// `embedder`: judges whether names spelt nearly alike are one entity.
pub fn update(
    store: &Store,
    kb: &str,
    config: &GraphConfig,
    model: Option<&ChatTripleModel<'_>>,
    embedder: Option<&dyn zhiku_core::Embedder>,
) -> Result<GraphUpdate> {
    let _span = info_span!("graph", kb).entered();
    let keys = structured::Keys { columns: config.key_columns.clone() };
    let cache = StoreCache(store);
    let done = match (config.extractor, model) {
        (ExtractorKind::Llm, Some(model)) => {
            let extractor = zhiku_graph::llm::LlmExtractor::new(model, &cache, keys.clone());
            let mut done = extract_pending(store, kb, &extractor, &keys)?;
            let stats = extractor.stats();
            done.model = Some(ModelReading { read: stats.read, cached: stats.cached, fallback: stats.fallback });
            done
        }
        _ => extract_pending(store, kb, &LocalExtractor, &keys)?,
    };
    if let (Some(embedder), true) = (embedder, done.chunks > 0 || done.removed_entities > 0) {
        refresh_same(store, kb, embedder)?;
    }
    Ok(done)
}

/// How similar two names' embeddings must be, on top of a close spelling, to be one entity.
const SAME_NAME_SIMILARITY: f32 = 0.85;

/// Recomputes which entities of the knowledge base are one: names at most two edits apart
/// (folded) whose embeddings agree. Derived from the entities alone, so it follows them as
/// documents come and go.
pub fn refresh_same(store: &Store, kb: &str, embedder: &dyn zhiku_core::Embedder) -> Result<()> {
    let entities = store.graph_all_entities(kb)?;
    let folds: Vec<String> =
        entities.iter().map(|(e, _)| fold_key(&entity_key(&e.name, EntityKind::parse(&e.kind).unwrap_or(EntityKind::Name)))).collect();
    let candidates = zhiku_graph::resolve::spelling_candidates(&folds);
    let mut same = Vec::new();
    if !candidates.is_empty() {
        let mut involved: Vec<usize> = candidates.iter().flat_map(|&(a, b)| [a, b]).collect();
        involved.sort_unstable();
        involved.dedup();
        let names: Vec<&str> = involved.iter().map(|&i| entities[i].0.name.as_str()).collect();
        let vectors = embedder.embed(&names)?;
        let at = |i: usize| involved.binary_search(&i).ok().map(|p| &vectors[p]);
        for (a, b) in candidates {
            if let (Some(va), Some(vb)) = (at(a), at(b)) {
                let cosine: f32 = va.iter().zip(vb).map(|(x, y)| x * y).sum();
                if cosine >= SAME_NAME_SIMILARITY {
                    same.push((entities[a].0.id, entities[b].0.id));
                }
            }
        }
    }
    store.set_graph_same(kb, &same)?;
    Ok(())
}

fn extract_pending(store: &Store, kb: &str, extractor: &dyn Extractor, keys: &structured::Keys) -> Result<GraphUpdate> {
    let mut done = GraphUpdate::default();
    loop {
        let pending = store.graph_pending(kb, 16)?;
        if pending.is_empty() {
            break;
        }
        for doc in pending {
            let texts: Vec<zhiku_graph::ChunkText<'_>> =
                doc.chunks.iter().map(|(_, path, text)| zhiku_graph::ChunkText { text, heading_path: path }).collect();
            let view = DocumentText { format: &doc.format, language: &doc.language, chunks: texts };
            let found = if view.is_structured() { structured::extract(&view, keys) } else { extractor.extract(&view) };
            let rows: Vec<(u64, zhiku_graph::Extraction)> = doc.chunks.iter().map(|(id, _, _)| *id).zip(found).collect();
            store.write_graph(kb, extractor.name(), &rows)?;
            done.documents += 1;
            done.chunks += rows.len();
        }
    }
    done.removed_entities = store.graph_gc(kb)?;
    if done.chunks > 0 || done.removed_entities > 0 {
        refresh_communities(store, kb)?;
    }
    Ok(done)
}

/// Recomputes the knowledge base's communities over all its relations (stated ones weigh four
/// times co-occurrence). Membership says nothing by itself: what a caller sees of a community is
/// filtered like everything else.
pub fn refresh_communities(store: &Store, kb: &str) -> Result<()> {
    let edges: Vec<(i64, i64, f32)> = store
        .graph_all_edges(kb)?
        .into_iter()
        .map(|e| (e.item.source_id, e.item.target_id, if e.item.relation == RELATED_TO { e.item.weight * 0.25 } else { e.item.weight }))
        .collect();
    let communities = zhiku_graph::community::label_propagation(&edges, 20);
    store.set_graph_communities(kb, &communities)?;
    Ok(())
}
