//! The OpenAPI document, `GET /openapi.json`, generated from the handlers' annotations and the
//! request types, so it cannot drift from the routes.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, docs, error, native, openai};

#[derive(OpenApi)]
#[openapi(
    info(title = "zhiku", description = "Questions over a company's own documents, answered by a local model with citations, \
        each user seeing only what they may read. OpenAI-compatible under /v1; zhiku's own API under /api. \
        Authenticate with `Authorization: Bearer <key>` (`zhiku key create`)."),
    paths(
        openai::models, openai::chat_completions, openai::embeddings,
        native::health, crate::metrics::ready, crate::metrics::metrics, native::me, crate::session::login, crate::session::logout, native::list_kbs, native::search, native::passage,
        native::conversations, native::conversation, native::feedback,
        admin::list_keys, admin::create_key, admin::revoke_key, admin::list_jobs,
        admin::list_users, admin::create_user, admin::update_user, admin::delete_user, admin::add_group_member, admin::remove_group_member, admin::audit_log,
        docs::set_document_acl, docs::list_roles, docs::set_role, crate::graph::entity, crate::graph::path, crate::graph::communities, crate::graph::export,
        crate::finetune::list, crate::finetune::review,
        docs::create_kb, docs::get_kb, docs::update_kb, docs::delete_kb, docs::reingest, docs::list_documents, docs::upload, docs::job, docs::job_events, docs::delete_document, docs::original,
    ),
    components(schemas(error::ErrorBody, error::ErrorObject, docs::JobStatus)),
    modifiers(&BearerKeys),
    security(("bearer" = [])),
    tags((name = "openai", description = "OpenAI-compatible endpoints"), (name = "zhiku", description = "Knowledge bases, documents, search"), (name = "admin", description = "API keys, users, groups, the audit log and jobs (administrators)"))
)]
pub struct ApiDoc;

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("zk_<id>_<secret>").build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
