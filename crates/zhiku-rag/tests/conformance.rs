//! One suite, both backends: accounts and web sessions, conversation history and the audit
//! chain behave the same through the embedded store and through the shared PostgreSQL
//! database, as the traits the server uses ([`Accounts`], [`History`], [`AuditLog`]) promise.
//! Each check runs against a fresh store and a fresh database (PostgreSQL 18 with pgvector,
//! started here as the scale-out tests start it).

#[path = "../../zhiku-cli/tests/common/postgres.rs"]
mod postgres;

use std::sync::Arc;

use zhiku_core::audit::{AuditEvent, AuditFilter};
use zhiku_core::history::NewExchange;
use zhiku_rag::accounts::Accounts;
use zhiku_rag::audit::AuditLog;
use zhiku_rag::cluster::ClusterEngine;
use zhiku_rag::history::History;
use zhiku_store::Store;

fn embedder() -> Arc<dyn zhiku_core::Embedder> {
    let models = std::env::var_os("ZHIKU_TEST_MODELS").expect("ZHIKU_TEST_MODELS is not set: run the tests through scripts/test.sh");
    Arc::new(zhiku_models::BertEmbedder::load(&std::path::Path::new(&models).join("all-MiniLM-L6-v2")).unwrap())
}

fn accounts_behave(backend: &str, a: &dyn Accounts) {
    assert!(a.create_user("ann", Some("correct horse"), false).unwrap(), "{backend}");
    assert!(!a.create_user("ann", Some("another password"), true).unwrap(), "{backend}: a taken name changes nothing");
    assert!(a.create_user("short", Some("2short"), false).is_err(), "{backend}: a short password");
    assert!(a.create_user("bad name!", None, false).is_err(), "{backend}: an invalid name");
    let ann = a.user("ann").unwrap().unwrap();
    assert_eq!((ann.admin, ann.disabled, ann.has_password, ann.origin.as_str()), (false, false, true, "local"), "{backend}");

    assert!(a.check_password("ann", "correct horse").unwrap().is_some(), "{backend}");
    assert!(a.check_password("ann", "correct hors").unwrap().is_none(), "{backend}");
    assert!(a.check_password("nobody", "correct horse").unwrap().is_none(), "{backend}");

    let (token, session) = a.create_session("ann", 3600).unwrap();
    assert!(token.starts_with("zs_") && session.user == "ann", "{backend}");
    assert_eq!(a.session(&token).unwrap().map(|s| s.csrf), Some(session.csrf.clone()), "{backend}");
    assert!(a.session("zs_0000").unwrap().is_none() && a.session("not a token").unwrap().is_none(), "{backend}");
    let (other, _) = a.create_session("ann", 3600).unwrap();
    assert!(a.end_session(&other).unwrap() && !a.end_session(&other).unwrap(), "{backend}");
    assert!(a.session(&other).unwrap().is_none(), "{backend}: an ended session");

    // Disabled: no log-in, no session; a new password ends the sessions opened with the old.
    a.set_user_disabled("ann", true).unwrap();
    assert!(a.check_password("ann", "correct horse").unwrap().is_none(), "{backend}");
    assert!(a.session(&token).unwrap().is_none(), "{backend}");
    a.set_user_disabled("ann", false).unwrap();
    let (token, _) = a.create_session("ann", 3600).unwrap();
    a.set_password("ann", "battery staple").unwrap();
    assert!(a.session(&token).unwrap().is_none(), "{backend}: sessions end with a new password");
    assert!(a.check_password("ann", "correct horse").unwrap().is_none(), "{backend}");
    assert!(a.check_password("ann", "battery staple").unwrap().is_some(), "{backend}");
    assert!(a.set_user_admin("nobody", true).is_err(), "{backend}: no such account");
    a.set_user_admin("ann", true).unwrap();
    assert!(a.user("ann").unwrap().unwrap().admin, "{backend}");

    // A directory's user: no password here, enabled again by the directory.
    a.adopt_directory_user("lin", false, &["finance".to_string()]).unwrap();
    let lin = a.user("lin").unwrap().unwrap();
    assert_eq!((lin.origin.as_str(), lin.has_password), ("ldap", false), "{backend}");
    a.set_user_disabled("lin", true).unwrap();
    a.adopt_directory_user("lin", true, &[]).unwrap();
    let lin = a.user("lin").unwrap().unwrap();
    assert_eq!((lin.disabled, lin.admin), (false, true), "{backend}");

    assert!(a.delete_user("ann").unwrap() && !a.delete_user("ann").unwrap(), "{backend}");
    assert_eq!(a.users().unwrap().iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["lin"], "{backend}");
}

fn history_behaves(backend: &str, h: &dyn History) {
    let record = |id: &str, conversation: &str, user: &str, question: &str| {
        h.record_exchange(&NewExchange {
            completion_id: id,
            conversation_id: conversation,
            user,
            kb: Some("hr"),
            model: "kb/hr",
            question,
            answer: "Five days [1].",
            citations: r#"[{"n":1,"source":"leave.md","chunk_id":"3"}]"#,
        })
        .unwrap()
    };
    record("c1", "conv-a", "ann", "How much leave carries over?");
    record("c2", "conv-a", "ann", "And for part-timers?");
    record("c3", "conv-b", "bob", "Where is the canteen?");
    assert!(
        h.record_exchange(&NewExchange {
            completion_id: "c1",
            conversation_id: "x",
            user: "ann",
            kb: None,
            model: "m",
            question: "q",
            answer: "a",
            citations: "[]"
        })
        .is_err(),
        "{backend}: a completion id is stored once"
    );

    let ann = h.conversations("ann").unwrap();
    assert_eq!(ann.len(), 1, "{backend}");
    assert_eq!(
        (ann[0].id.as_str(), ann[0].title.as_str(), ann[0].exchanges, ann[0].kb.as_deref()),
        ("conv-a", "How much leave carries over?", 2, Some("hr")),
        "{backend}"
    );
    let exchanges = h.conversation("ann", "conv-a").unwrap();
    assert_eq!(exchanges.iter().map(|e| e.completion_id.as_str()).collect::<Vec<_>>(), ["c1", "c2"], "{backend}");
    assert_eq!(exchanges[0].citations[0]["source"], "leave.md", "{backend}");
    assert!(h.conversation("bob", "conv-a").unwrap().is_empty(), "{backend}: bob reads ann's conversation");

    assert!(!h.rate_exchange("bob", "c1", 1, None).unwrap(), "{backend}: bob rated ann's answer");
    assert!(h.rate_exchange("ann", "c1", -5, Some("It is five working days.")).unwrap(), "{backend}");
    let rated = &h.conversation("ann", "conv-a").unwrap()[0];
    assert_eq!((rated.rating, rated.correction.as_deref()), (Some(-1), Some("It is five working days.")), "{backend}");
}

fn audit_behaves(
    backend: &str,
    log: &dyn AuditLog,
    verify: &dyn Fn() -> Result<(i64, String), zhiku_core::audit::ChainBreak>,
    records: &dyn Fn(&AuditFilter) -> Vec<zhiku_core::audit::AuditRecord>,
) {
    let event =
        |actor: &'static str, action: &'static str| AuditEvent { actor, action, kb: Some("hr"), detail: serde_json::json!({ "n": 1 }) };
    let first = log.append(&event("user:ann", "search")).unwrap();
    let second = log.append(&event("key:0a1b user:ann", "ask")).unwrap();
    log.append(&event("user:bob", "search")).unwrap();
    assert_eq!((first, second), (1, 2), "{backend}: numbered from 1, in order");
    let (entries, head) = verify().unwrap();
    assert_eq!((entries, head.len()), (3, 64), "{backend}");
    // Many at once (each search appends one): every one numbered, the chain still whole.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..5 {
                    log.append(&event("user:carol", "search")).unwrap();
                }
            });
        }
    });
    assert_eq!(verify().unwrap().0, 43, "{backend}");
    let anns = records(&AuditFilter { user: Some("ann".into()), ..Default::default() });
    assert_eq!(anns.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["search", "ask"], "{backend}");
    assert_eq!(
        records(&AuditFilter { latest: Some(2), ..Default::default() }).iter().map(|r| r.seq).collect::<Vec<_>>(),
        [42, 43],
        "{backend}"
    );
    assert_eq!(anns[0].detail["n"], 1, "{backend}");
}

#[test]
fn accounts_history_and_the_audit_chain_behave_alike_on_both_backends() {
    let pg = postgres::Postgres::start();
    let embedder = embedder();
    let fresh_store = || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("zhiku.db")).unwrap();
        (dir, store)
    };
    let fresh_cluster = |name: &str| ClusterEngine::connect(&pg.database(name), embedder.clone(), Default::default()).unwrap();

    let (_dir, store) = fresh_store();
    accounts_behave("embedded", &store);
    accounts_behave("postgres", &fresh_cluster("accounts"));

    let (_dir, store) = fresh_store();
    history_behaves("embedded", &store);
    history_behaves("postgres", &fresh_cluster("history"));

    let (_dir, store) = fresh_store();
    audit_behaves("embedded", &store, &|| store.verify_audit().unwrap(), &|f| store.audit_records(f).unwrap());
    let cluster = fresh_cluster("audit");
    audit_behaves("postgres", &cluster, &|| cluster.verify_audit().unwrap(), &|f| cluster.audit_records(f).unwrap());
}
