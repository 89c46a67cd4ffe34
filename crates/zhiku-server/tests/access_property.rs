//! Randomised access control through the HTTP API (the real router, store, indexes and embedding
//! model): many users in nested groups, knowledge bases with roles, documents with inherited or
//! own ACLs changed after ingestion, the knowledge graph built from them. The expected access is computed here independently; no
//! caller may receive a knowledge base name, document, chunk or count it may not see, and every
//! caller must see all it may read. Zero tolerance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use zhiku_core::{Principal, Role};
use zhiku_models::BertEmbedder;
use zhiku_rag::{Engine, IngestOptions, RagConfig};
use zhiku_server::{AppState, ServerOptions};
use zhiku_store::{Scope, Store};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: [&str; 16] = [
    "budget", "salary", "roadmap", "incident", "server", "contract", "hiring", "audit", "vendor", "launch", "merger", "payroll", "holiday",
    "travel", "security", "pension",
];
/// Projects the documents relate ("Aurora depends on Basalt"): the knowledge graph's entities,
/// each named by documents of different ACLs.
const PROJECTS: [&str; 10] = ["Aurora", "Basalt", "Cobalt", "Dynamo", "Everest", "Falcon", "Granite", "Horizon", "Indigo", "Jasper"];
const USERS: usize = 200;
const GROUPS: usize = 12;
const KBS: [&str; 3] = ["finance", "people", "engineering"];
const DOCS: usize = 600;

/// The world as the test knows it, independently of the server.
struct Truth {
    /// user → every group it is in, nested ones included.
    groups_of: Vec<BTreeSet<String>>,
    /// kb → principal → role.
    roles: BTreeMap<&'static str, BTreeMap<String, Role>>,
    /// (kb, source) → own ACL, or None for the inherited one.
    own_acl: BTreeMap<(&'static str, String), Option<BTreeSet<String>>>,
}

impl Truth {
    fn principals(&self, user: usize) -> BTreeSet<String> {
        let mut held: BTreeSet<String> = self.groups_of[user].iter().map(|g| format!("group:{g}")).collect();
        held.insert(format!("user:u{user}"));
        held
    }
    fn has_role(&self, user: usize, kb: &str) -> bool {
        let held = self.principals(user);
        self.roles[kb].keys().any(|p| held.contains(p))
    }
    fn readable(&self, user: usize, kb: &'static str) -> BTreeSet<String> {
        let held = self.principals(user);
        let inherited: BTreeSet<String> = self.roles[kb].keys().cloned().collect();
        self.own_acl
            .iter()
            .filter(|((k, _), _)| *k == kb)
            .filter(|(_, acl)| acl.as_ref().unwrap_or(&inherited).iter().any(|p| held.contains(p)))
            .map(|((_, source), _)| source.clone())
            .collect()
    }
}

fn random_principal(rng: &mut Lcg) -> String {
    if rng.below(5) == 0 {
        format!("group:g{}", rng.below(GROUPS as u64))
    } else {
        format!("user:u{}", rng.below(USERS as u64))
    }
}

async fn call(app: &axum::Router, key: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn file_name(source: &str) -> String {
    source.rsplit('/').next().unwrap().to_string()
}

#[test]
fn no_caller_ever_sees_what_it_may_not_and_sees_all_it_may() {
    let models = std::env::var_os("ZHIKU_TEST_MODELS")
        .map(std::path::PathBuf::from)
        .expect("ZHIKU_TEST_MODELS is not set: run the tests through scripts/test.sh, which installs the models");
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&data.path().join("zhiku.db")).unwrap());
    let embedder = Arc::new(BertEmbedder::load(&models.join("all-MiniLM-L6-v2")).unwrap());
    let engine = Arc::new(Engine::new(data.path(), store.clone(), embedder.clone(), RagConfig::default()));
    let mut rng = Lcg(20261129);

    // Groups nest downwards only (g_i may contain g_j for j > i), so there is no cycle to refuse.
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); GROUPS];
    for (child, its_parents) in parents.iter_mut().enumerate().skip(1) {
        for parent in 0..child {
            if rng.below(8) == 0 {
                store.add_subgroup(&format!("g{parent}"), &format!("g{child}")).unwrap();
                its_parents.push(parent);
            }
        }
    }
    let mut groups_of = Vec::new();
    for u in 0..USERS {
        let mut direct = BTreeSet::new();
        for g in 0..GROUPS {
            if rng.below(8) == 0 {
                store.add_group_member(&format!("g{g}"), &format!("u{u}")).unwrap();
                direct.insert(g);
            }
        }
        let mut all = direct.clone();
        let mut frontier: Vec<usize> = direct.into_iter().collect();
        while let Some(g) = frontier.pop() {
            for &p in &parents[g] {
                if all.insert(p) {
                    frontier.push(p);
                }
            }
        }
        groups_of.push(all.into_iter().map(|g| format!("g{g}")).collect());
    }

    let mut truth = Truth { groups_of, roles: BTreeMap::new(), own_acl: BTreeMap::new() };
    let mut sources: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut initial_viewers: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for kb in KBS {
        // Readers from the start, so that later changes also take access away.
        let viewers: BTreeSet<String> = (0..3).map(|_| random_principal(&mut rng)).collect();
        let principals: Vec<Principal> = viewers.iter().map(|p| Principal::parse(p).unwrap()).collect();
        store.ensure_kb(kb, &principals).unwrap();
        initial_viewers.insert(kb, viewers.clone());
        truth.roles.insert(kb, viewers.into_iter().map(|p| (p, Role::Viewer)).collect());
        let mut paths = Vec::new();
        for i in 0..DOCS / KBS.len() {
            let words: Vec<&str> = (0..6).map(|_| *rng.pick(&WORDS)).collect();
            let name = format!("{kb}-{i}.md");
            let path = files.path().join(&name);
            let (a, b) = (*rng.pick(&PROJECTS), *rng.pick(&PROJECTS));
            let text = if a == b {
                format!("Notes on {} {}: {}.", words[0], words[1], words[2..].join(" "))
            } else {
                format!("Notes on {} {}: {}. {a} depends on {b}.", words[0], words[1], words[2..].join(" "))
            };
            std::fs::write(&path, &text).unwrap();
            texts.insert(path_source(&files, &name), text);
            paths.push(path);
            truth.own_acl.insert((kb, path_source(&files, &name)), None);
            sources.entry(kb).or_default().push(path_source(&files, &name));
        }
        let report = engine.ingest(kb, &paths, &IngestOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(report.ingested(), paths.len());
    }
    // Roles and ACLs change after ingestion, interleaved, through the engine's in-place updates.
    for step in 0..400 {
        let kb = *rng.pick(&KBS);
        if step % 6 == 0 {
            // Often one that holds a role already: taking access away is what can leak.
            let holders: Vec<String> = truth.roles[kb].keys().cloned().collect();
            let principal = if !holders.is_empty() && rng.below(2) == 0 { rng.pick(&holders).clone() } else { random_principal(&mut rng) };
            let role = match rng.below(5) {
                0 | 4 => None,
                1 => Some(Role::Editor),
                2 => Some(Role::Admin),
                _ => Some(Role::Viewer),
            };
            engine.set_kb_role(kb, &Principal::parse(&principal).unwrap(), role).unwrap();
            match role {
                Some(r) => truth.roles.get_mut(kb).unwrap().insert(principal, r),
                None => truth.roles.get_mut(kb).unwrap().remove(&principal),
            };
        } else {
            let source = rng.pick(&sources[kb]).clone();
            let doc = store.documents(kb).unwrap().into_iter().find(|d| d.source == source).unwrap();
            let acl: Option<BTreeSet<String>> =
                if rng.below(8) == 0 { None } else { Some((0..rng.below(4)).map(|_| random_principal(&mut rng)).collect()) };
            let principals: Option<Vec<Principal>> = acl.as_ref().map(|a| a.iter().map(|p| Principal::parse(p).unwrap()).collect());
            engine.set_document_acl(kb, doc.id, principals.as_deref()).unwrap().unwrap();
            truth.own_acl.insert((kb, source), acl);
        }
    }

    let state = Arc::new(AppState {
        engine,
        store: store.clone(),
        embedder,
        embedding_model: "all-MiniLM-L6-v2".into(),
        models: zhiku_server::ChatModels::new(
            None,
            0,
            zhiku_server::RemoteSettings { timeout: std::time::Duration::from_secs(5), retries: 0 },
        ),
        generation_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        compute_slots: Arc::new(tokio::sync::Semaphore::new(4)),
        search_slots: Arc::new(tokio::sync::Semaphore::new(4)),
        data_dir: data.path().to_path_buf(),
        jobs: Default::default(),
        cors_origins: Vec::new(),
        security: Default::default(),
        metrics: Default::default(),
        cluster: None,
    });
    let app = zhiku_server::router(state, &ServerOptions { bind: "127.0.0.1:0".parse().unwrap(), max_body_bytes: 1 << 20, tls: None });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let all_chunks: Vec<(&'static str, u64, String)> =
        KBS.iter().flat_map(|kb| store.chunks(kb).unwrap().into_iter().map(move |c| (*kb, c.id, c.source))).collect();

    let mut checked = (0usize, 0usize, 0usize, 0usize);
    runtime.block_on(async {
        for user in 0..USERS {
            let key = store.create_api_key(&format!("k{user}"), &format!("u{user}"), &[Scope::Read], None).unwrap().key;
            let (status, listed) = call(&app, &key, "GET", "/api/kbs", None).await;
            assert_eq!(status, StatusCode::OK);
            let names: BTreeSet<String> =
                listed["kbs"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect();
            let expected: BTreeSet<String> = KBS.iter().filter(|kb| truth.has_role(user, kb)).map(|kb| kb.to_string()).collect();
            assert_eq!(names, expected, "u{user}'s knowledge bases");
            for kb in KBS {
                let readable = truth.readable(user, kb);
                let role = truth.has_role(user, kb);
                let (status, docs) = call(&app, &key, "GET", &format!("/api/kbs/{kb}/documents"), None).await;
                if !role {
                    assert_eq!(status, StatusCode::NOT_FOUND, "u{user} has no role on {kb}: {docs}");
                    let (status, _) = call(&app, &key, "POST", "/api/search", Some(json!({ "kb": kb, "query": "budget" }))).await;
                    assert_eq!(status, StatusCode::NOT_FOUND);
                    let (status, _) = call(&app, &key, "GET", &format!("/api/kbs/{kb}/graph/entity?name=Aurora"), None).await;
                    assert_eq!(status, StatusCode::NOT_FOUND);
                    continue;
                }
                let listed: BTreeSet<String> =
                    docs["documents"].as_array().unwrap().iter().map(|d| d["source"].as_str().unwrap().to_string()).collect();
                assert_eq!(listed, readable, "u{user}'s documents in {kb}");
                let (_, settings) = call(&app, &key, "GET", &format!("/api/kbs/{kb}"), None).await;
                assert_eq!(settings["documents"], readable.len(), "u{user}'s document count in {kb}");
                assert!(
                    settings["roles"].is_null()
                        || truth.roles[kb].iter().any(|(p, r)| *r == Role::Admin && truth.principals(user).contains(p))
                );
                for _ in 0..2 {
                    let query = format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS));
                    let (status, hits) =
                        call(&app, &key, "POST", "/api/search", Some(json!({ "kb": kb, "query": query, "top_k": 20 }))).await;
                    assert_eq!(status, StatusCode::OK);
                    let hits = hits["hits"].as_array().unwrap();
                    for h in hits {
                        let source = h["source"].as_str().unwrap();
                        assert!(readable.contains(source), "u{user} got {} from {kb}, which it may not read", file_name(source));
                    }
                    // Filtering inside the search: whoever may read something gets something.
                    assert_eq!(hits.is_empty(), readable.is_empty(), "u{user} in {kb}: {} hits, {} readable", hits.len(), readable.len());
                    checked.0 += 1;
                }
                // Access taken away after ingestion is gone from both indexes: a document's own
                // text, its best possible query, does not bring it back; and what may be read
                // is found by its text.
                let held = truth.principals(user);
                let initially: bool = initial_viewers[kb].iter().any(|p| held.contains(p));
                let revoked: Vec<&String> = sources[kb].iter().filter(|s| initially && !readable.contains(*s)).take(3).collect();
                let granted: Vec<&String> = readable.iter().take(2).collect();
                for (source, may) in revoked.iter().map(|s| (s, false)).chain(granted.iter().map(|s| (s, true))) {
                    // Deep enough that a hit from one index alone would come through the fusion.
                    let top_k = if may { 10 } else { 50 };
                    let body = json!({ "kb": kb, "query": texts[source.as_str()], "top_k": top_k });
                    let (_, hits) = call(&app, &key, "POST", "/api/search", Some(body)).await;
                    let found = hits["hits"].as_array().unwrap().iter().any(|h| h["source"] == source.as_str());
                    assert_eq!(found, may, "u{user} searched {kb} for the text of {}", file_name(source));
                    checked.2 += usize::from(!may);
                }
                // The knowledge graph: an entity exists for the caller through the documents it
                // may read, all of them, and its relations name only those.
                let project = *rng.pick(&PROJECTS);
                let (status, found) = call(&app, &key, "GET", &format!("/api/kbs/{kb}/graph/entity?name={project}&limit=500"), None).await;
                assert_eq!(status, StatusCode::OK);
                let naming: BTreeSet<String> = readable
                    .iter()
                    .filter(|s| texts[s.as_str()].split(|c: char| !c.is_alphanumeric()).any(|w| w == project))
                    .cloned()
                    .collect();
                let listed: BTreeSet<String> =
                    found["sources"].as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default();
                assert_eq!(listed, naming, "u{user}'s documents naming {project} in {kb}");
                for n in found["neighbors"].as_array().unwrap() {
                    for source in n["sources"].as_array().unwrap() {
                        let source = source.as_str().unwrap();
                        assert!(naming.contains(source), "u{user} got a relation of {project} from {}", file_name(source));
                    }
                }
                checked.3 += 1;
                for _ in 0..3 {
                    let (chunk_kb, chunk, source) = rng.pick(&all_chunks).clone();
                    let (status, body) = call(&app, &key, "GET", &format!("/api/kbs/{kb}/chunks/{chunk}"), None).await;
                    let may = chunk_kb == kb && readable.contains(&source);
                    assert_eq!(status == StatusCode::OK, may, "u{user} passage {chunk} ({}) via {kb}: {body}", file_name(&source));
                    checked.1 += 1;
                }
            }
        }
    });
    // Searches, passages, and searches for documents whose access was taken away.
    assert!(checked.0 > 100 && checked.1 > 150 && checked.2 > 30 && checked.3 > 50, "too few checks: {checked:?}");
}

fn path_source(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}
