//! `zhiku graph`: the knowledge graph from the command line — query an entity, find a path,
//! export for Neo4j, catch up or rebuild.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use zhiku_core::Caller;
use zhiku_rag::graph::{self, GraphView};
use zhiku_store::Store;

use crate::cli::{GraphCommand, GraphFormat};
use crate::commands::{open_store, question_actor, Ctx};

pub(crate) fn caller(store: &Store, as_user: Option<&str>) -> Result<Caller> {
    match as_user {
        None => Ok(Caller::Admin),
        Some(name) => {
            let groups = store.groups_of(name)?;
            Caller::user(name, groups).with_context(|| format!("invalid --as user '{name}'"))
        }
    }
}

pub fn graph(ctx: &Ctx, command: GraphCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    match command {
        GraphCommand::Query { kb, entity, as_user, limit, json } => {
            let caller = caller(&store, as_user.as_deref())?;
            let found = GraphView::new(&store, &kb, &caller)?.entity(&entity, limit)?;
            let sources: Vec<(&str, &str)> = found.iter().flat_map(|f| f.sources.iter().map(|s| (s.as_str(), ""))).collect();
            zhiku_rag::audit::record_question(&store, &question_actor(as_user.as_deref()), "graph", &kb, &entity, &sources, None)?;
            if json {
                // Unknown and invisible read alike: no neighbours.
                let out = match &found {
                    Some(view) => serde_json::to_value(view)?,
                    None => json!({ "entity": entity, "neighbors": [] }),
                };
                println!("{}", serde_json::to_string(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            let Some(view) = found else {
                println!("No entity '{entity}' in {kb}.");
                return Ok(ExitCode::SUCCESS);
            };
            println!("{} ({})", view.entity, view.kind);
            if !view.aliases.is_empty() {
                println!("  also: {}", view.aliases.join(", "));
            }
            for a in &view.attributes {
                println!("  {} = {} ({})  [{}]", a.name, a.value, a.kind, a.sources.join(", "));
            }
            for n in &view.neighbors {
                let arrow = if n.direction == "out" { format!("—{}→", n.relation) } else { format!("←{}—", n.relation) };
                println!("  {arrow} {}  [{}]", n.entity, n.sources.join(", "));
            }
            println!("  mentioned in: {}", view.sources.join(", "));
        }
        GraphCommand::Path { kb, from, to, as_user, max_hops, json } => {
            let caller = caller(&store, as_user.as_deref())?;
            let path = GraphView::new(&store, &kb, &caller)?.path(&from, &to, max_hops)?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "from": from, "to": to, "path": path }))?);
                return Ok(ExitCode::SUCCESS);
            }
            match path {
                None => println!("No path from '{from}' to '{to}' within {max_hops} relations."),
                Some(steps) => {
                    for s in steps {
                        let arrow = if s.direction == "out" { format!("—{}→", s.relation) } else { format!("←{}—", s.relation) };
                        println!("{} {arrow} {}  [{}]", s.from, s.to, s.sources.join(", "));
                    }
                }
            }
        }
        GraphCommand::Communities { kb, as_user, limit, json } => {
            let caller = caller(&store, as_user.as_deref())?;
            let communities = GraphView::new(&store, &kb, &caller)?.communities(limit)?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "communities": communities }))?);
                return Ok(ExitCode::SUCCESS);
            }
            for c in &communities {
                println!("{} entities: {}", c.size, c.entities.join(", "));
                for r in &c.relations {
                    println!("  {r}");
                }
                println!("  sources: {}\n", c.sources.join(", "));
            }
        }
        GraphCommand::Export { kb, format, out, as_user } => {
            let caller = caller(&store, as_user.as_deref())?;
            let graph = GraphView::new(&store, &kb, &caller)?.export()?;
            let write = |path: &std::path::Path, text: String| -> Result<()> {
                std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
            };
            match format {
                GraphFormat::Cypher => write(&out, zhiku_graph::export::cypher(&graph))?,
                GraphFormat::Graphml => write(&out, zhiku_graph::export::graphml(&graph))?,
                GraphFormat::Csv => {
                    std::fs::create_dir_all(&out).with_context(|| format!("cannot create the directory {}", out.display()))?;
                    let (nodes, edges) = zhiku_graph::export::neo4j_csv(&graph);
                    write(&out.join("nodes.csv"), nodes)?;
                    write(&out.join("relationships.csv"), edges)?;
                }
            }
            crate::governance::audit(
                &store,
                "graph.export",
                Some(&kb),
                json!({ "as": as_user, "entities": graph.nodes.len(), "relations": graph.edges.len() }),
            )?;
            eprintln!("wrote {} entities and {} relations to {}", graph.nodes.len(), graph.edges.len(), out.display());
        }
        GraphCommand::Build { kb, rebuild, extractor, json } => {
            if !store.kb_exists(&kb)? {
                anyhow::bail!("knowledge base '{kb}' does not exist; ingest into it first");
            }
            let mut config = ctx.config.clone();
            if let Some(kind) = extractor {
                config.graph.extractor = kind;
            }
            let ctx = Ctx { data_dir: ctx.data_dir.clone(), config };
            let mut engine = crate::commands::engine(&ctx)?;
            if ctx.config.graph.extractor == graph::ExtractorKind::Llm {
                let (model, id) = crate::commands::graph_model(&ctx)?;
                engine = engine.with_graph_model(model, id);
            }
            let update = if rebuild { engine.rebuild_graph(&kb)? } else { engine.update_graph(&kb)? };
            let counts = store.graph_counts(&kb)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&json!({
                        "documents": update.documents, "chunks": update.chunks, "removed_entities": update.removed_entities,
                        "entities": counts.entities, "relations": counts.edges, "model": update.model,
                    }))?
                );
            } else {
                println!(
                    "read {} chunks of {} documents; the graph has {} entities and {} relations",
                    update.chunks, update.documents, counts.entities, counts.edges
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
