//! The knowledge graph over HTTP: an entity with its neighbours, a path between two entities,
//! and an export — each what the caller's documents say, behind the same role gate as search.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use zhiku_core::Role;

use crate::auth::{check_role, Authenticated};
use crate::error::ErrorBody;
use crate::{computing, ApiError, AppState};

/// Neighbours one query lists at most.
const MAX_NEIGHBORS: usize = 500;
/// Longest path searched.
const MAX_HOPS: usize = 6;

/// An optional count parameter: its default when absent, refused outside `1..=max`.
fn count(value: Option<usize>, default: usize, max: usize, field: &'static str) -> Result<usize, ApiError> {
    let n = value.unwrap_or(default);
    if n == 0 || n > max {
        return Err(ApiError::invalid(format!("{field} {n} is outside 1..={max}"), Some(field)));
    }
    Ok(n)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EntityQuery {
    /// The entity's name (any spelling or declared alias).
    name: String,
    /// Neighbours listed at most (default 50).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/kbs/{kb}/graph/entity", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), EntityQuery),
    responses((status = 200, description = "{entity, kind, aliases, neighbors: [{entity, kind, relation, direction, weight, sources}], attributes: [{name, value, type, sources}], sources}; an entity no readable document mentions reads as {entity, neighbors: []}", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base", body = ErrorBody)))]
pub async fn entity(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    Query(query): Query<EntityQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = count(query.limit, 50, MAX_NEIGHBORS, "limit")?;
    if query.name.trim().is_empty() {
        return Err(ApiError::invalid("name is empty", Some("name")));
    }
    check_role(&state, &who, &kb, Role::Viewer).await?;
    let engine = state.engine.clone();
    computing(&state, move || {
        let found = engine.graph_entity(&kb, &query.name, &who.caller, limit)?;
        let sources: Vec<(&str, &str)> = found.iter().flat_map(|f| f.sources.iter().map(|s| (s.as_str(), ""))).collect();
        zhiku_rag::audit::record_question(engine.store(), &who.actor(), "graph", &kb, &query.name, &sources, None)?;
        Ok::<_, zhiku_rag::Error>(Json(match found {
            Some(view) => json!(view),
            None => json!({ "entity": query.name, "neighbors": [] }),
        }))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PathQuery {
    from: String,
    to: String,
    /// Relations at most (default 4, at most 6).
    max_hops: Option<usize>,
}

#[utoipa::path(get, path = "/api/kbs/{kb}/graph/path", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), PathQuery),
    responses((status = 200, description = "{from, to, path: [{from, relation, to, direction, sources}] or null}", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base", body = ErrorBody)))]
pub async fn path(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Json<Value>, ApiError> {
    let hops = count(query.max_hops, 4, MAX_HOPS, "max_hops")?;
    check_role(&state, &who, &kb, Role::Viewer).await?;
    let engine = state.engine.clone();
    computing(&state, move || {
        let path = engine.graph_path(&kb, &query.from, &query.to, &who.caller, hops)?;
        let question = format!("{} -> {}", query.from, query.to);
        zhiku_rag::audit::record_question(engine.store(), &who.actor(), "graph", &kb, &question, &[], None)?;
        Ok::<_, zhiku_rag::Error>(Json(json!({ "from": query.from, "to": query.to, "path": path })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CommunitiesQuery {
    /// Communities listed at most (default 10, at most 100).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/kbs/{kb}/graph/communities", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), CommunitiesQuery),
    responses((status = 200, description = "{communities: [{id, size, entities, relations, sources}]}: groups of related entities, what the caller may see of them, most connected first", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base", body = ErrorBody)))]
pub async fn communities(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    Query(query): Query<CommunitiesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = count(query.limit, 10, 100, "limit")?;
    check_role(&state, &who, &kb, Role::Viewer).await?;
    let engine = state.engine.clone();
    computing(&state, move || {
        let found = engine.graph_communities(&kb, &who.caller, limit)?;
        zhiku_rag::audit::record_question(engine.store(), &who.actor(), "graph", &kb, "(communities)", &[], None)?;
        Ok::<_, zhiku_rag::Error>(Json(json!({ "communities": found })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `cypher`, `graphml` or `json` ({nodes, edges}).
    format: String,
}

/// The graph as the caller sees it, for Neo4j (`cypher`), Gephi/yEd (`graphml`) or the web app
/// (`json`). A bulk copy: editors and administrators of the knowledge base only.
#[utoipa::path(get, path = "/api/kbs/{kb}/graph/export", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), ExportQuery),
    responses((status = 200, description = "The graph in the format asked for", body = String),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Not an editor of the knowledge base", body = ErrorBody), (status = 404, description = "Unknown knowledge base", body = ErrorBody)))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    if !matches!(query.format.as_str(), "cypher" | "graphml" | "json") {
        return Err(ApiError::invalid(format!("unknown format '{}': use cypher, graphml or json", query.format), Some("format")));
    }
    check_role(&state, &who, &kb, Role::Editor).await?;
    let engine = state.engine.clone();
    let (name, actor) = (kb.clone(), who.actor());
    let graph = computing(&state, move || engine.graph_export(&name, &who.caller)).await?;
    let detail = json!({ "format": query.format, "entities": graph.nodes.len(), "relations": graph.edges.len() });
    let store = state.store.clone();
    crate::blocking(move || store.audit(&zhiku_store::AuditEvent { actor: &actor, action: "graph.export", kb: Some(&kb), detail })).await?;
    Ok(match query.format.as_str() {
        "cypher" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], zhiku_graph::export::cypher(&graph)).into_response(),
        "graphml" => ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], zhiku_graph::export::graphml(&graph)).into_response(),
        _ => {
            let nodes: Vec<Value> = graph.nodes.iter().map(|n| json!({ "id": n.id, "name": n.name, "kind": n.kind })).collect();
            let edges: Vec<Value> = graph
                .edges
                .iter()
                .map(
                    |e| json!({ "source": e.source, "target": e.target, "relation": e.relation, "weight": e.weight, "sources": e.sources }),
                )
                .collect();
            Json(json!({ "nodes": nodes, "edges": edges })).into_response()
        }
    })
}
