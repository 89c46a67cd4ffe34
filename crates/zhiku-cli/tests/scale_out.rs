//! The scale-out backend against a real PostgreSQL with pgvector: queued ingestion by several
//! `zhiku worker` processes (one killed with SIGKILL in the middle of a job), the `jobs --json`
//! contract, and the same visible results and ACL behaviour as the embedded store.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{debian_reference, Zhiku};
use postgres::Postgres;
use serde_json::Value;

/// Copies Debian Reference chapters into `dir` under the given names.
fn corpus(dir: &Path, files: &[(&str, &str)]) {
    let reference = debian_reference();
    for (name, chapter) in files {
        std::fs::copy(reference.join(chapter), dir.join(name)).unwrap();
    }
}

/// `zhiku audit export`, every entry, oldest first.
fn audit_entries(z: &Zhiku) -> Vec<Value> {
    let out = z.run(&["audit", "export"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn jobs(cluster: &Zhiku) -> Vec<Value> {
    cluster.json(&["jobs", "--json", "--limit", "1000"])["jobs"].as_array().unwrap().clone()
}

/// A `zhiku worker` whose first stderr line names it; the rest of its output is drained so it
/// never blocks on a full pipe.
struct Worker {
    child: Child,
    name: String,
}

impl Worker {
    fn start(cluster: &Zhiku) -> Self {
        let mut child = cluster
            .command()
            .args(["worker", "--lease-seconds", "3", "--poll-ms", "100", "--until-idle", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let name = line
            .trim()
            .strip_prefix("worker ")
            .and_then(|l| l.strip_suffix(" started"))
            .unwrap_or_else(|| panic!("worker printed {line:?} instead of its name"))
            .to_string();
        std::thread::spawn(move || for _ in stderr.lines() {});
        Worker { child, name }
    }

    fn wait(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "worker {} exited with {status}", self.name);
                return;
            }
            assert!(Instant::now() < deadline, "worker {} still running after {within:?}", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chunks per source as an ingest report lists them.
fn chunks_by_source(report: &Value) -> BTreeMap<String, u64> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["source"].as_str().unwrap().to_string(), f["chunks"].as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn three_workers_ingest_every_file_exactly_once_though_one_is_killed_mid_job() {
    let pg = Postgres::start();
    let url = pg.database("queue");
    let cluster = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let docs = tempfile::tempdir().unwrap();
    // The first job is the biggest chapter: whoever claims it is still at it when killed.
    corpus(
        docs.path(),
        &[
            ("a-ch09.html", "ch09.en.html"),
            ("b-ch03.html", "ch03.en.html"),
            ("c-ch04.html", "ch04.en.html"),
            ("d-ch05.html", "ch05.en.html"),
            ("e-ch08.html", "ch08.en.html"),
            ("f-apa.html", "apa.en.html"),
            ("g-pr01.html", "pr01.en.html"),
        ],
    );
    let dir = docs.path().to_str().unwrap();
    let queued = cluster.json(&["ingest", dir, "--kb", "handbook", "--acl", "group:staff", "--queue", "--json"]);
    assert_eq!(queued["queued"], 7, "{queued}");
    let first = queued["jobs"][0].as_str().unwrap().to_string();
    assert!(jobs(&cluster).iter().all(|j| j["status"] == "pending"));

    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(&cluster)).collect();
    // Wait for the first job to be claimed, then kill its worker outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        let listed = jobs(&cluster);
        let job = listed.iter().find(|j| j["id"] == first.as_str()).unwrap();
        assert_ne!(job["status"], "done", "the first job finished before a worker could be killed in it: {job}");
        if job["status"] == "running" {
            break job["worker"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "nobody claimed job {first}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut killed, survivors): (Vec<Worker>, Vec<Worker>) = workers.into_iter().partition(|w| w.name == holder);
    assert_eq!(killed.len(), 1, "job {first} held by {holder}, not one of our workers");
    killed[0].child.kill().unwrap(); // SIGKILL: no chance to clean up
    killed[0].child.wait().unwrap();
    for w in survivors {
        w.wait(Duration::from_secs(300));
    }

    let listed = jobs(&cluster);
    assert_eq!(listed.len(), 7);
    assert!(listed.iter().all(|j| j["status"] == "done"), "{listed:#?}");
    let redone = listed.iter().find(|j| j["id"] == first.as_str()).unwrap();
    assert!(redone["attempts"].as_i64().unwrap() >= 2, "the killed worker's job was not claimed again: {redone}");
    assert_ne!(redone["worker"], holder.as_str(), "{redone}");

    // Exactly once, and complete: each document holds the chunks the embedded store makes of it.
    let shared = cluster.run(&["kb", "docs", "handbook"]);
    assert!(shared.status.success(), "{}", String::from_utf8_lossy(&shared.stderr));
    let stored: BTreeMap<String, u64> = String::from_utf8_lossy(&shared.stdout)
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let source = cols.next().unwrap().to_string();
            let chunks = cols.next().unwrap().trim_end_matches(" chunks").parse().unwrap();
            (source, chunks)
        })
        .collect();
    let embedded = Zhiku::new();
    let expected = chunks_by_source(&embedded.ingest("handbook", &[docs.path()], &["group:staff"]));
    assert_eq!(stored, expected);

    // Everything is searchable through the shared database, by the group and no one else.
    assert!(cluster.run(&["group", "add-member", "staff", "alice"]).status.success());
    let hits = cluster.search("handbook", "How do I set up the network interface?", Some("alice"), 5);
    assert!(!hits.is_empty());
    assert!(cluster.search("handbook", "How do I set up the network interface?", Some("bob"), 5).is_empty());
}

#[test]
fn the_shared_database_shows_each_caller_what_the_embedded_store_shows() {
    let pg = Postgres::start();
    let url = pg.database("conformance");
    let embedded = Zhiku::new();
    // Two processes with data directories of their own, as two replicas on two machines.
    let replica_a = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let replica_b = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("packages.html", "ch02.en.html"), ("network.html", "ch05.en.html"), ("i18n.html", "ch08.en.html")]);
    let file = |name: &str| docs.path().join(name);
    for (name, acl) in [("packages.html", vec!["group:staff"]), ("network.html", vec!["user:carol"]), ("i18n.html", vec![])] {
        let local = embedded.ingest("kb", &[&file(name)], &acl);
        let shared = replica_a.ingest("kb", &[&file(name)], &acl);
        assert_eq!(chunks_by_source(&shared), chunks_by_source(&local), "{name} chunked differently");
    }
    for z in [&embedded, &replica_b] {
        let out = z.run(&["group", "add-member", "staff", "alice"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let source = |name: &str| file(name).to_string_lossy().into_owned();
    let readable: [(Option<&str>, BTreeSet<String>); 4] = [
        (None, [source("packages.html"), source("network.html"), source("i18n.html")].into()),
        (Some("alice"), [source("packages.html")].into()),
        (Some("carol"), [source("network.html")].into()),
        (Some("bob"), BTreeSet::new()),
    ];
    let questions = [
        "How do I install a package with apt-get?",
        "How to configure a static IP address for the network interface",
        "keyboard input method and locale settings",
        "dpkg",
    ];
    let (mut same_top, mut shared_hits, mut all_hits) = (0, 0, 0);
    for question in questions {
        for (caller, allowed) in &readable {
            let local = embedded.search("kb", question, *caller, 5);
            let a = replica_a.search("kb", question, *caller, 5);
            let b = replica_b.search("kb", question, *caller, 5);
            assert_eq!(a, b, "the replicas answered {question:?} for {caller:?} differently");
            for (backend, hits) in [("embedded", &local), ("postgres", &a)] {
                let seen: BTreeSet<String> = Zhiku::sources(hits).into_iter().collect();
                assert!(seen.is_subset(allowed), "{backend}: {caller:?} saw {seen:?}, may read {allowed:?}");
                assert_eq!(hits.is_empty(), allowed.is_empty(), "{backend}: {caller:?} asking {question:?} got {hits:#?}");
            }
            if let (Some(l), Some(s)) = (local.first(), a.first()) {
                same_top += usize::from(l["text"] == s["text"]);
            }
            let texts = |hits: &[Value]| hits.iter().map(|h| h["text"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
            shared_hits += texts(&local).intersection(&texts(&a)).count();
            all_hits += local.len();
        }
    }
    // Same chunks, same vectors, same lexemes and BM25 on both sides: the same passages come up
    // (HNSW graphs and tie-breaks may differ at the margin).
    assert_eq!(same_top, 12, "the best hit agreed for {same_top} of 12 searches");
    assert!(shared_hits * 10 >= all_hits * 9, "{shared_hits} of {all_hits} hits found by both backends");
}

#[test]
fn the_queue_needs_a_database_and_reports_each_bad_file() {
    let local = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("ok.html", "apa.en.html")]);
    std::fs::write(docs.path().join("broken.pdf"), b"%PDF-1.7 this is not a PDF").unwrap();
    let dir = docs.path().to_str().unwrap();
    for args in [vec!["ingest", dir, "--kb", "k", "--queue"], vec!["worker"], vec!["jobs", "--json"]] {
        let out = local.run(&args);
        assert!(!out.status.success(), "{args:?} ran without a database");
        assert!(String::from_utf8_lossy(&out.stderr).contains("ZHIKU_DATABASE_URL"), "{}", String::from_utf8_lossy(&out.stderr));
    }

    let pg = Postgres::start();
    let cluster = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &pg.database("contract"));
    let queued = cluster.json(&["ingest", dir, "--kb", "k", "--queue", "--json"]);
    assert_eq!(queued["queued"], 2);
    Worker::start(&cluster).wait(Duration::from_secs(120));
    let listed = jobs(&cluster);
    let by_status: BTreeMap<&str, Vec<&Value>> = listed.iter().fold(BTreeMap::new(), |mut m, j| {
        m.entry(j["status"].as_str().unwrap()).or_default().push(j);
        m
    });
    let failed = &by_status["failed"];
    assert_eq!((failed.len(), by_status["done"].len()), (1, 1), "{listed:#?}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("broken.pdf") && error.to_lowercase().contains("pdf"), "{error}");
    assert_eq!(failed[0]["attempts"], 1, "bad input is not retried");
    for job in &listed {
        assert!(job["id"].is_string() && job["kb"] == "k" && job["created_at"].is_string(), "{job}");
    }
    let only_failed = cluster.json(&["jobs", "--json", "--status", "failed"]);
    assert_eq!(only_failed["jobs"].as_array().unwrap().len(), 1);
    // The shared database refuses what it does not support yet rather than doing something else.
    let out = cluster.run(&["kb", "create", "k", "--pii", "mask"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("with --database-url"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_embedded_data_dir_moves_to_postgres_and_answers_the_same() {
    let embedded = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("packages.html", "ch02.en.html"), ("network.html", "ch05.en.html"), ("tips.html", "ch09.en.html")]);
    let file = |name: &str| docs.path().join(name);
    embedded.ingest("handbook", &[&file("packages.html")], &["group:staff"]);
    embedded.ingest("handbook", &[&file("network.html")], &["user:carol"]);
    assert!(embedded.run(&["kb", "create", "multilingual", "--embedding-model", "multilingual-e5-small"]).status.success());
    embedded.ingest("multilingual", &[&file("tips.html")], &[]);
    assert!(embedded.run(&["group", "add-member", "staff", "alice"]).status.success());
    add_user(&embedded, "alice", "correct horse battery");
    // One stored exchange, to move with the conversation history.
    let key = embedded.json(&["key", "create", "--name", "alice", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let server = embedded.serve();
    let ask = serde_json::json!({ "model": "kb/handbook", "store": true, "max_tokens": 8, "messages": [{ "role": "user", "content": "apt-get?" }] });
    assert_eq!(post(&server.url, "/v1/chat/completions", &key, &ask).0, 200);
    drop(server);

    let pg = Postgres::start();
    let url = pg.database("migrated");
    let out = embedded.run(&["migrate", "--to", &url, "--json"]);
    assert_eq!(out.status.code(), Some(3), "a refused knowledge base is a partial migration: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kbs"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!((report["kbs"][0]["documents"].as_u64(), report["kbs"][0]["copied"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(report["refused"][0]["name"], "multilingual", "{report}");
    assert!(report["refused"][0]["reason"].as_str().unwrap().contains("multilingual-e5-small"), "{report}");
    assert_eq!(
        (report["memberships"].as_u64(), report["accounts"].as_u64(), report["exchanges"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{report}"
    );

    // The audit chain moved too, entry for entry, and goes on there.
    let shared = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let copied = report["audit_entries"].as_u64().unwrap() as usize;
    let (here, there) = (audit_entries(&embedded), audit_entries(&shared));
    assert!(copied >= 5, "{report}");
    assert_eq!(here[..copied], there[..copied], "the copied entries keep their numbers and hashes");
    assert_eq!(there[copied]["action"], "migrate");
    let verified = shared.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["ok"], true, "{verified}");

    // Again: nothing new to copy, everything verified.
    let again: Value = serde_json::from_slice(&embedded.run(&["migrate", "--to", &url, "--json"]).stdout).unwrap();
    assert_eq!((again["kbs"][0]["documents"].as_u64(), again["kbs"][0]["unchanged"].as_u64()), (Some(2), Some(2)), "{again}");
    // The embedded chain has grown since (the migrations, the export), the shared one too:
    // they no longer agree, and a chain is never spliced onto another.
    assert_eq!(again["audit_entries"], 0, "{again}");
    assert!(again["audit_note"].as_str().unwrap().contains("diverged"), "{again}");

    for (user, readable) in [(Some("alice"), Some(file("packages.html"))), (Some("carol"), Some(file("network.html"))), (Some("bob"), None)]
    {
        let question = "How do I install a package with apt-get?";
        let there = shared.search("handbook", question, user, 3);
        let here = embedded.search("handbook", question, user, 3);
        assert_eq!(there.first().map(|h| &h["text"]), here.first().map(|h| &h["text"]), "{user:?}");
        let expected: Vec<String> = readable.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        for hit in &there {
            assert!(expected.contains(&hit["source"].as_str().unwrap().to_string()), "{user:?} saw {hit}");
        }
        // The copied vectors are the embedded store's own: the same passage is exactly as similar.
        if let (Some(a), Some(b)) = (there.first(), here.first()) {
            assert!((a["similarity"].as_f64().unwrap() - b["similarity"].as_f64().unwrap()).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn a_worker_rides_out_a_database_restart() {
    let pg = Postgres::start();
    let cluster = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &pg.database("restart"));
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("a.html", "ch03.en.html"), ("b.html", "ch04.en.html"), ("c.html", "ch05.en.html"), ("d.html", "ch08.en.html")]);
    cluster.json(&["ingest", docs.path().to_str().unwrap(), "--kb", "k", "--queue", "--json"]);
    let worker = Worker::start(&cluster);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !jobs(&cluster).iter().any(|j| j["status"] == "done") {
        assert!(Instant::now() < deadline, "no job done");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every connection the worker holds ends here; it must reconnect and carry on.
    pg.restart();
    worker.wait(Duration::from_secs(300));
    let listed = jobs(&cluster);
    assert!(listed.iter().all(|j| j["status"] == "done"), "{listed:#?}");
    let out = cluster.run(&["kb", "docs", "k"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
}

fn post(url: &str, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let reply = common::http(url, "POST", path, &[("Authorization", &auth), ("Content-Type", "application/json")], &body.to_string());
    let status = reply.status;
    (status, serde_json::from_str(&reply.body).unwrap_or(Value::Null))
}

#[test]
fn two_server_replicas_over_one_database_answer_alike_and_keep_documents_apart() {
    let pg = Postgres::start();
    let url = pg.database("replicas");
    let cli = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("packages.html", "ch02.en.html"), ("network.html", "ch05.en.html"), ("i18n.html", "ch08.en.html")]);
    let file = |name: &str| docs.path().join(name).to_string_lossy().into_owned();
    for (name, acl) in [("packages.html", "group:staff"), ("network.html", "user:carol"), ("i18n.html", "group:translators")] {
        cli.json(&["ingest", &file(name), "--kb", "handbook", "--acl", acl, "--queue", "--json"]);
    }
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(&cli)).collect();
    for w in workers {
        w.wait(Duration::from_secs(300));
    }
    assert!(cli.run(&["group", "add-member", "staff", "alice"]).status.success());
    let key = |user: &str| cli.json(&["key", "create", "--name", user, "--json"])["key"].as_str().unwrap().to_string();
    let (alice, carol, bob) = (key("alice"), key("carol"), key("bob"));

    // Two replicas, each with a data directory of its own: nothing local is shared.
    let replica_a = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let replica_b = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let (a, b) = (replica_a.serve(), replica_b.serve());
    let readable = [(&alice, vec![file("packages.html")]), (&carol, vec![file("network.html")]), (&bob, vec![])];
    for question in ["How do I install a package with apt-get?", "How to configure a static IP address", "locale settings"] {
        for (key, allowed) in &readable {
            let body = serde_json::json!({"kb": "handbook", "query": question, "top_k": 5});
            let (status_a, hits_a) = post(&a.url, "/api/search", key, &body);
            let (status_b, hits_b) = post(&b.url, "/api/search", key, &body);
            assert_eq!((status_a, status_b), (200, 200), "{hits_a} {hits_b}");
            assert_eq!(hits_a, hits_b, "the replicas answered {question:?} differently");
            let hits = hits_a["hits"].as_array().unwrap();
            assert_eq!(hits.is_empty(), allowed.is_empty(), "{hits:#?}");
            for hit in hits {
                assert!(allowed.contains(&hit["source"].as_str().unwrap().to_string()), "{question:?} showed {hit}");
            }
        }
    }

    // Many requests at once, each on a connection of its own, answer as one alone does.
    let body = serde_json::json!({"kb": "handbook", "query": "How to configure a static IP address", "top_k": 5});
    let alone = post(&a.url, "/api/search", &carol, &body);
    let together: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let (body, carol) = (&body, &carol);
        let running: Vec<_> = (0..8)
            .map(|i| {
                let url = if i % 2 == 0 { &a.url } else { &b.url };
                scope.spawn(move || post(url, "/api/search", carol, body))
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(together.iter().all(|r| *r == alone), "{together:#?}");

    // Answers through either replica are the same, cited from what the caller may read.
    let ask = serde_json::json!({"model": "kb/handbook", "messages": [{"role": "user", "content": "How do I install a package with apt-get?"}], "max_tokens": 60});
    let (status_a, answer_a) = post(&a.url, "/v1/chat/completions", &alice, &ask);
    let (status_b, answer_b) = post(&b.url, "/v1/chat/completions", &alice, &ask);
    assert_eq!((status_a, status_b), (200, 200), "{answer_a} {answer_b}");
    assert_eq!(answer_a["choices"][0]["message"]["content"], answer_b["choices"][0]["message"]["content"]);
    assert_eq!(answer_a["citations"], answer_b["citations"]);
    for citation in answer_a["citations"].as_array().unwrap() {
        assert_eq!(citation["source"].as_str().unwrap(), file("packages.html"), "{citation}");
    }
    let (_, bobs) = post(&b.url, "/v1/chat/completions", &bob, &ask);
    assert!(bobs["citations"].as_array().is_none_or(|c| c.is_empty()), "{bobs}");

    // Keys are the database's: unknown ones fail on both; a revoked one stops on both.
    assert_eq!(post(&a.url, "/api/search", "zk_0000_nope", &serde_json::json!({"kb": "handbook", "query": "apt"})).0, 401);
    let id = alice.trim_start_matches("zk_").split('_').next().unwrap();
    assert!(cli.run(&["key", "revoke", id]).status.success());
    for replica in [&a, &b] {
        assert_eq!(post(&replica.url, "/api/search", &alice, &serde_json::json!({"kb": "handbook", "query": "apt"})).0, 401);
    }
    // Every replica's and command's entries are in the one chain of the shared database.
    let entries = audit_entries(&cli);
    let count = |action: &str, actor: &str| {
        entries.iter().filter(|e| e["action"] == action && e["actor"].as_str().unwrap().contains(actor)).count()
    };
    assert_eq!(count("search", "user:alice"), 2 * 3, "alice searched 3 questions on 2 replicas");
    assert_eq!(count("search", "user:carol"), 2 * 3 + 9, "carol's questions, and the 9 at once");
    assert_eq!((count("ask", "user:alice"), count("ask", "user:bob")), (2, 1));
    assert_eq!((count("auth.failed", "anonymous"), count("key.revoke", "cli:")), (3, 1));
    assert!(entries.iter().all(|e| e["detail"]["question"].is_null()), "question text kept in a shared database's log");
    let verified = cli.json(&["audit", "verify", "--json"]);
    assert_eq!((verified["ok"].as_bool(), verified["entries"].as_u64()), (Some(true), Some(entries.len() as u64 + 1)));
    // Append-only in the database itself; and a changed entry breaks the chain there.
    let database = url.rsplit('/').next().unwrap();
    let refused = pg.try_query(database, "UPDATE audit SET actor = 'user:mallory' WHERE seq = 3").unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    assert!(pg.try_query(database, "DELETE FROM audit WHERE seq = 3").unwrap_err().contains("append-only"));
    pg.query(database, "ALTER TABLE audit DISABLE TRIGGER audit_append_only; UPDATE audit SET actor = 'user:mallory' WHERE seq = 3");
    let out = cli.run(&["audit", "verify", "--json"]);
    let broken: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), broken["ok"].as_bool(), broken["seq"].as_i64()), (Some(1), Some(false), Some(3)), "{broken}");

    // What a replica does not serve is refused, rather than answered from local state: only
    // administrators create knowledge bases; the graph is not served at all.
    let (status, _) = post(&a.url, "/api/kbs", &carol, &serde_json::json!({"name": "x"}));
    assert_eq!(status, 403);
    let auth = format!("Bearer {carol}");
    assert_eq!(common::http(&a.url, "GET", "/api/kbs/handbook/graph/entity?name=apt", &[("Authorization", &auth)], "").status, 404);
    assert_eq!(post(&a.url, "/api/search", &carol, &serde_json::json!({"kb": "nope", "query": "apt"})).0, 404);
}

#[test]
fn acls_change_in_the_shared_database_without_ingesting_again() {
    let pg = Postgres::start();
    let cli = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &pg.database("acls"));
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("packages.html", "ch02.en.html"), ("network.html", "ch05.en.html")]);
    let file = |name: &str| docs.path().join(name).to_string_lossy().into_owned();
    let ok = |args: &[&str]| {
        let out = cli.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ok(&["kb", "create", "handbook", "--acl", "group:staff"]);
    cli.ingest("handbook", &[Path::new(&file("packages.html"))], &[]);
    cli.ingest("handbook", &[Path::new(&file("network.html"))], &["user:carol"]);
    ok(&["group", "add-member", "staff", "alice"]);
    ok(&["group", "add-member", "ops", "dave"]);
    let sees = |user: &str| -> BTreeSet<String> {
        Zhiku::sources(&cli.search("handbook", "apt-get install packages network interface", Some(user), 10)).into_iter().collect()
    };
    assert_eq!(sees("alice"), [file("packages.html")].into());
    assert_eq!(sees("carol"), [file("network.html")].into());

    // New viewers: the document that follows them moves; the one with its own ACL stays.
    ok(&["kb", "create", "handbook", "--acl", "group:ops"]);
    assert!(sees("alice").is_empty());
    assert_eq!(sees("dave"), [file("packages.html")].into());
    assert_eq!(sees("carol"), [file("network.html")].into());
    // Ingesting the same file again without an ACL keeps both as they are.
    let again = cli.ingest("handbook", &[Path::new(&file("network.html"))], &[]);
    assert_eq!(again["unchanged"], 1, "{again}");
    assert_eq!(sees("carol"), [file("network.html")].into());

    // One document's own ACL, then back to the viewers.
    ok(&["kb", "acl", "handbook", &file("packages.html"), "--acl", "user:bob"]);
    assert_eq!(sees("bob"), [file("packages.html")].into());
    assert!(sees("dave").is_empty());
    ok(&["kb", "acl", "handbook", &file("network.html"), "--inherit"]);
    assert_eq!(sees("dave"), [file("network.html")].into());
    assert!(sees("carol").is_empty());
    assert!(!cli.run(&["kb", "acl", "handbook", "missing.html", "--inherit"]).status.success());
}

#[test]
fn keyword_statistics_follow_replaced_documents() {
    let pg = Postgres::start();
    let cli = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &pg.database("stats"));
    let docs = tempfile::tempdir().unwrap();
    corpus(docs.path(), &[("a.html", "ch04.en.html"), ("b.html", "ch08.en.html")]);
    let a = docs.path().join("a.html");
    cli.ingest("k", &[docs.path()], &[]);
    // The same source with other content: its old chunks leave BM25's collection statistics.
    std::fs::copy(debian_reference().join("ch03.en.html"), &a).unwrap();
    let replaced = cli.ingest("k", &[&a], &[]);
    assert_eq!(replaced["files"][0]["status"], "replaced", "{replaced}");
    let totals = pg.query(
        "stats",
        "SELECT k.chunk_count = count(c.id) AND k.term_total = sum(c.term_count) FROM kb k JOIN chunk c ON c.kb_id = k.id GROUP BY k.id",
    );
    assert_eq!(totals, "t");
    // The new text is searchable.
    let hits = cli.search("k", "systemd journal", None, 3);
    assert!(!hits.is_empty());
}

#[test]
fn replicas_count_a_users_requests_together() {
    let pg = Postgres::start();
    let url = pg.database("limits");
    let replica = || Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url).with_env("ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE", "3");
    let (first, second) = (replica(), replica());
    let key = |user: &str| first.json(&["key", "create", "--name", user, "--json"])["key"].as_str().unwrap().to_string();
    let (alice, bob) = (key("alice"), key("bob"));
    let (a, b) = (first.serve(), second.serve());
    let models = |server: &common::Server, key: &str| {
        let auth = format!("Bearer {key}");
        common::http(&server.url, "GET", "/v1/models", &[("Authorization", &auth)], "").status
    };
    let statuses: Vec<u16> = [&a, &b, &a, &b].iter().map(|s| models(s, &alice)).collect();
    // A minute's worth is three, wherever they land: the fourth waits, on either replica.
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(models(&a, &alice), 429);
    assert_eq!(models(&b, &bob), 200, "another user has a bucket of their own");
}

/// A multipart/form-data body of text files and `acl` fields, and its content type.
fn form(files: &[(&str, &str)], acl: &[&str]) -> (String, String) {
    let boundary = "zhiku-test-boundary-7f3a";
    let mut body = String::new();
    for principal in acl {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"acl\"\r\n\r\n{principal}\r\n"));
    }
    for (name, text) in files {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/markdown\r\n\r\n{text}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[test]
fn documents_go_in_and_out_through_any_replica_and_workers_ingest_them() {
    let pg = Postgres::start();
    let url = pg.database("uploads");
    let cli = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    let admin = cli.json(&["key", "create", "--name", "ops", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let alice = cli.json(&["key", "create", "--name", "alice", "--json"])["key"].as_str().unwrap().to_string();
    let bob = cli.json(&["key", "create", "--name", "bob", "--json"])["key"].as_str().unwrap().to_string();
    assert!(cli.run(&["group", "add-member", "staff", "alice"]).status.success());
    // Each replica with a data directory of its own, kept while it serves.
    let (replica_a, replica_b) = (Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url), Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url));
    let (a, b) = (replica_a.serve(), replica_b.serve());
    let send = |replica: &str, method: &str, path: &str, key: &str, body: &str, content_type: &str| {
        let auth = format!("Bearer {key}");
        let reply = common::http(replica, method, path, &[("Authorization", &auth), ("Content-Type", content_type)], body);
        (reply.status, serde_json::from_str::<Value>(&reply.body).unwrap_or(Value::Null))
    };

    let leave = "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n";
    let travel = "# Travel\n\nTrain journeys under four hours are booked in second class.\n";
    let (body, content_type) = form(&[("leave.md", leave), ("travel.md", travel)], &["group:staff"]);
    // Changing documents on a replica needs the editor role (or an administrator's key).
    assert_eq!(send(&a.url, "POST", "/api/kbs/hr/documents", &alice, &body, &content_type).0, 404, "no such knowledge base yet");
    let (status, queued) = send(&a.url, "POST", "/api/kbs/hr/documents", &admin, &body, &content_type);
    assert_eq!(status, 202, "{queued}");
    let ids: Vec<String> = queued["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(pg.query(url.rsplit('/').next().unwrap(), "SELECT count(*) FROM upload"), "2", "the files wait in the database");

    // A worker on another machine (another data directory, no access to the replica's disk),
    // followed as one ingestion job through the other replica, as the web app follows it.
    let worker = Worker::start(&Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url));
    let batch = queued["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(batch, ids.join(","));
    let auth = format!("Bearer {admin}");
    let events = common::http(&b.url, "GET", &format!("/api/jobs/{batch}/events"), &[("Authorization", &auth)], "");
    assert_eq!(events.status, 200);
    let progress: Vec<Value> = events
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["job"].clone())
        .collect();
    let last = progress.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["files_done"].as_u64(), last["files_total"].as_u64()),
        (Some("done"), Some(2), Some(2)),
        "{progress:#?}"
    );
    let reported: BTreeSet<&str> = last["files"].as_array().unwrap().iter().map(|f| f["source"].as_str().unwrap()).collect();
    assert_eq!(reported, BTreeSet::from(["leave.md", "travel.md"]));
    assert!(last["files"].as_array().unwrap().iter().all(|f| f["status"] == "ingested"), "{last}");
    worker.wait(Duration::from_secs(300));
    for id in &ids {
        let (status, job) = send(&b.url, "GET", &format!("/api/jobs/{id}"), &admin, "", "application/json");
        assert_eq!((status, job["job"]["status"].as_str()), (200, Some("done")), "{job}");
    }
    assert_eq!(pg.query(url.rsplit('/').next().unwrap(), "SELECT count(*) FROM upload"), "0", "ingested files are let go");

    // Readable through the other replica, for those the ACL names only.
    let search = |replica: &str, key: &str| {
        let body = serde_json::json!({"kb": "hr", "query": "How many days of annual leave carry over?", "top_k": 3}).to_string();
        send(replica, "POST", "/api/search", key, &body, "application/json")
    };
    let (status, found) = search(&b.url, &alice);
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["source"], "leave.md", "{found}");
    assert!(search(&b.url, &bob).1["hits"].as_array().unwrap().is_empty());
    let (_, listed) = send(&b.url, "GET", "/api/kbs/hr/documents", &alice, "", "application/json");
    let sources: BTreeSet<&str> = listed["documents"].as_array().unwrap().iter().map(|d| d["source"].as_str().unwrap()).collect();
    assert_eq!(sources, BTreeSet::from(["leave.md", "travel.md"]));
    assert!(listed["documents"][0]["acl"].is_null(), "who else may read is for administrators");
    assert!(send(&b.url, "GET", "/api/kbs/hr/documents", &bob, "", "application/json").1["documents"].as_array().unwrap().is_empty());
    assert_eq!(send(&b.url, "GET", "/api/kbs/nope/documents", &bob, "", "application/json").0, 404);

    // Deleted through one replica, gone from the other's answers.
    let leave_id = listed["documents"].as_array().unwrap().iter().find(|d| d["source"] == "leave.md").unwrap()["id"].clone();
    let path = format!("/api/kbs/hr/documents/{leave_id}");
    assert_eq!(send(&a.url, "DELETE", &path, &alice, "", "application/json").0, 403);
    let (status, deleted) = send(&a.url, "DELETE", &path, &admin, "", "application/json");
    assert_eq!((status, deleted["source"].as_str()), (200, Some("leave.md")), "{deleted}");
    assert_eq!(send(&a.url, "DELETE", &path, &admin, "", "application/json").0, 404);
    let (_, after) = search(&b.url, &alice);
    assert!(after["hits"].as_array().unwrap().iter().all(|h| h["source"] != "leave.md"), "{after}");

    // Roles live in the database: an editor of the knowledge base uploads and deletes there,
    // a viewer does not.
    assert!(cli.run(&["kb", "grant", "hr", "group:staff", "viewer"]).status.success());
    let (body, content_type) = form(&[("canteen.md", "# Canteen\n\nThe canteen opens at half past eleven.\n")], &[]);
    assert_eq!(send(&b.url, "POST", "/api/kbs/hr/documents", &alice, &body, &content_type).0, 403);
    assert!(cli.run(&["kb", "grant", "hr", "user:alice", "editor"]).status.success());
    let roles = String::from_utf8_lossy(&cli.run(&["kb", "roles", "hr"]).stdout).to_string();
    assert!(roles.contains("user:alice\teditor") && roles.contains("group:staff\tviewer"), "{roles}");
    let (status, queued) = send(&b.url, "POST", "/api/kbs/hr/documents", &alice, &body, &content_type);
    assert_eq!(status, 202, "{queued}");
    let kbs = send(&a.url, "GET", "/api/kbs", &alice, "", "application/json").1;
    assert_eq!((kbs["kbs"][0]["name"].as_str(), kbs["kbs"][0]["role"].as_str()), (Some("hr"), Some("editor")), "{kbs}");
    let travel_id = listed["documents"].as_array().unwrap().iter().find(|d| d["source"] == "travel.md").unwrap()["id"].clone();
    assert_eq!(send(&a.url, "DELETE", &format!("/api/kbs/hr/documents/{travel_id}"), &bob, "", "application/json").0, 403);
    assert_eq!(send(&a.url, "DELETE", &format!("/api/kbs/hr/documents/{travel_id}"), &alice, "", "application/json").0, 200);

    // Knowledge bases are created and their viewers set through replicas too.
    let json = "application/json";
    assert_eq!(send(&a.url, "POST", "/api/kbs", &alice, r#"{"name":"ops"}"#, json).0, 403);
    assert_eq!(send(&a.url, "POST", "/api/kbs", &admin, r#"{"name":"ops","acl":["group:staff"]}"#, json).0, 201);
    assert_eq!(send(&a.url, "POST", "/api/kbs", &admin, r#"{"name":"ops"}"#, json).0, 200);
    let (status, settings) = send(&b.url, "GET", "/api/kbs/ops", &alice, "", json);
    assert_eq!((status, settings["role"].as_str(), settings["acl"].is_null()), (200, Some("viewer"), true), "{settings}");
    assert_eq!(send(&b.url, "PATCH", "/api/kbs/ops", &alice, r#"{"acl":["user:bob"]}"#, json).0, 403);
    let (status, refused) = send(&b.url, "PATCH", "/api/kbs/ops", &admin, r#"{"pii":"mask"}"#, json);
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("pii")), "{refused}");
    let (status, settings) = send(&b.url, "PATCH", "/api/kbs/ops", &admin, r#"{"acl":["user:bob"]}"#, json);
    assert_eq!((status, settings["acl"].clone()), (200, serde_json::json!(["user:bob"])), "{settings}");
    let roles = String::from_utf8_lossy(&cli.run(&["kb", "roles", "ops"]).stdout).to_string();
    assert_eq!(roles.trim(), "user:bob\tviewer");
    assert_eq!(send(&a.url, "GET", "/api/kbs/nope", &alice, "", json).0, 404);

    let actions: Vec<String> = audit_entries(&cli).iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for action in ["document.upload", "document.delete", "access.denied", "kb.create", "kb.update"] {
        assert!(actions.iter().any(|a| a == action), "no {action} in {actions:?}");
    }
}

/// `zhiku user add NAME --password-stdin`, the password piped in.
fn add_user(z: &Zhiku, name: &str, password: &str) {
    use std::io::Write;
    let mut child =
        z.command().args(["user", "add", name, "--password-stdin"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_web_session_opened_through_one_replica_holds_on_every_replica() {
    let pg = Postgres::start();
    let url = pg.database("sessions");
    let cli = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url);
    add_user(&cli, "alice", "correct horse battery");
    assert!(cli.run(&["group", "add-member", "staff", "alice"]).status.success());
    let listed = cli.json(&["user", "list", "--json"]);
    assert_eq!((listed["users"][0]["name"].as_str(), listed["users"][0]["has_password"].as_bool()), (Some("alice"), Some(true)));
    let docs = tempfile::tempdir().unwrap();
    let leave =
        common::write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    cli.json(&["ingest", leave.to_str().unwrap(), "--kb", "hr", "--acl", "group:staff", "--json"]);
    // Each replica with a data directory of its own, kept while it serves.
    let (replica_a, replica_b) = (Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url), Zhiku::new().with_env("ZHIKU_DATABASE_URL", &url));
    let (a, b) = (replica_a.serve(), replica_b.serve());

    let login = |password: &str| {
        let body = serde_json::json!({ "user": "alice", "password": password }).to_string();
        common::http(&a.url, "POST", "/api/login", &[("Content-Type", "application/json")], &body)
    };
    assert_eq!(login("wrong password").status, 401);
    let opened = login("correct horse battery");
    assert_eq!(opened.status, 200, "{}", opened.body);
    let cookie = opened.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("zhiku_session=zs_"), "{cookie}");
    let csrf = serde_json::from_str::<Value>(&opened.body).unwrap()["csrf_token"].as_str().unwrap().to_string();

    // The other replica knows the session: who it is, which knowledge bases, what it may read.
    let me = common::http(&b.url, "GET", "/api/me", &[("Cookie", &cookie)], "");
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!((me["user"].as_str(), me["groups"][0].as_str()), (Some("alice"), Some("staff")), "{me}");
    let kbs: Value = serde_json::from_str(&common::http(&b.url, "GET", "/api/kbs", &[("Cookie", &cookie)], "").body).unwrap();
    assert_eq!(kbs["kbs"][0]["name"], "hr", "{kbs}");
    let search = serde_json::json!({ "kb": "hr", "query": "annual leave carry over" }).to_string();
    let json = ("Content-Type", "application/json");
    let no_csrf = common::http(&b.url, "POST", "/api/search", &[("Cookie", &cookie), json], &search);
    assert_eq!(no_csrf.status, 403, "a change without the session's CSRF token");
    let found = common::http(&b.url, "POST", "/api/search", &[("Cookie", &cookie), json, ("X-CSRF-Token", &csrf)], &search);
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(serde_json::from_str::<Value>(&found.body).unwrap()["hits"][0]["source"], leave.to_str().unwrap());

    // Conversation history: stored through one replica, listed, read and rated through the other.
    let with_session = [("Cookie", cookie.as_str()), json, ("X-CSRF-Token", csrf.as_str())];
    let ask = serde_json::json!({ "model": "kb/hr", "store": true, "conversation": "leave-questions", "max_tokens": 16,
        "messages": [{ "role": "user", "content": "How many days of annual leave carry over?" }] });
    let asked = common::http(&a.url, "POST", "/v1/chat/completions", &with_session, &ask.to_string());
    assert_eq!(asked.status, 200, "{}", asked.body);
    let completion = serde_json::from_str::<Value>(&asked.body).unwrap()["id"].as_str().unwrap().to_string();
    let listed: Value = serde_json::from_str(&common::http(&b.url, "GET", "/api/conversations", &[("Cookie", &cookie)], "").body).unwrap();
    assert_eq!(
        (listed["conversations"][0]["id"].as_str(), listed["conversations"][0]["exchanges"].as_u64()),
        (Some("leave-questions"), Some(1)),
        "{listed}"
    );
    let read = common::http(&b.url, "GET", "/api/conversations/leave-questions", &[("Cookie", &cookie)], "");
    let read: Value = serde_json::from_str(&read.body).unwrap();
    assert_eq!(read["exchanges"][0]["completion_id"], completion.as_str(), "{read}");
    assert_eq!(read["exchanges"][0]["question"], "How many days of annual leave carry over?");
    // A cited passage opens through the other replica, for its readers only.
    let cited = serde_json::from_str::<Value>(&found.body).unwrap()["hits"][0]["chunk_id"].as_str().unwrap().to_string();
    let passage = common::http(&b.url, "GET", &format!("/api/kbs/hr/chunks/{cited}"), &[("Cookie", &cookie)], "");
    assert_eq!(passage.status, 200, "{}", passage.body);
    assert!(serde_json::from_str::<Value>(&passage.body).unwrap()["text"].as_str().unwrap().contains("five days"));
    let outsider = cli.json(&["key", "create", "--name", "mallory", "--json"])["key"].as_str().unwrap().to_string();
    let auth = format!("Bearer {outsider}");
    assert_eq!(common::http(&b.url, "GET", &format!("/api/kbs/hr/chunks/{cited}"), &[("Authorization", &auth)], "").status, 404);
    let rate = serde_json::json!({ "completion_id": completion, "rating": "down", "correction": "Five days." }).to_string();
    assert_eq!(common::http(&b.url, "POST", "/api/feedback", &with_session, &rate).status, 200);
    let read: Value =
        serde_json::from_str(&common::http(&a.url, "GET", "/api/conversations/leave-questions", &[("Cookie", &cookie)], "").body).unwrap();
    assert_eq!((read["exchanges"][0]["rating"].as_i64(), read["exchanges"][0]["correction"].as_str()), (Some(-1), Some("Five days.")));

    // Logging out through one replica ends it on the other; so does disabling the account.
    let again = login("correct horse battery");
    let second = again.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let second_csrf = serde_json::from_str::<Value>(&again.body).unwrap()["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(common::http(&b.url, "POST", "/api/logout", &[("Cookie", &second), ("X-CSRF-Token", &second_csrf)], "").status, 200);
    assert_eq!(common::http(&a.url, "GET", "/api/me", &[("Cookie", &second)], "").status, 401);
    assert_eq!(common::http(&a.url, "GET", "/api/me", &[("Cookie", &cookie)], "").status, 200);
    assert!(cli.run(&["user", "set", "alice", "--disabled", "true"]).status.success());
    assert_eq!(common::http(&a.url, "GET", "/api/me", &[("Cookie", &cookie)], "").status, 401);
    assert_eq!(login("correct horse battery").status, 401);

    let actions: Vec<String> = audit_entries(&cli).iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for action in ["user.create", "login", "login.failed", "logout", "user.update"] {
        assert!(actions.iter().any(|a| a == action), "no {action} in {actions:?}");
    }
}

/// `ingest --sync` on one backend: what the synced ingestion reported and which sources a
/// search finds afterwards (file names only, the directories being each run's own).
fn sync_scenario(z: &Zhiku) -> (Vec<u64>, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    common::write(dir.path(), "keep.md", "# Keep\n\nThe aardvark stays.\n");
    let gone = common::write(dir.path(), "sub/gone.md", "# Gone\n\nThe okapi leaves.\n");
    let outside = common::write(other.path(), "outside.md", "# Outside\n\nThe okapi lives elsewhere too.\n");
    z.ingest("kb", &[dir.path()], &[]);
    z.ingest("kb", &[&outside], &[]);
    std::fs::remove_file(&gone).unwrap();
    let plain = z.ingest("kb", &[dir.path()], &[]);
    assert_eq!(plain["removed"], 0, "without --sync nothing is removed: {plain}");
    let report = z.json(&["ingest", dir.path().to_str().unwrap(), "--kb", "kb", "--sync", "--json"]);
    let counts = ["removed", "unchanged", "ingested"].map(|k| report[k].as_u64().unwrap()).to_vec();
    let found = z.search("kb", "okapi aardvark", None, 5);
    let names = Zhiku::sources(&found).iter().map(|s| s.rsplit('/').next().unwrap().to_string()).collect();
    (counts, names)
}

#[test]
fn ingest_sync_mirrors_a_directory_on_both_backends_alike() {
    let pg = Postgres::start();
    let shared = Zhiku::new().with_env("ZHIKU_DATABASE_URL", &pg.database("sync"));
    let (embedded_counts, embedded_names) = sync_scenario(&Zhiku::new());
    let (shared_counts, shared_names) = sync_scenario(&shared);
    assert_eq!(shared_counts, vec![1, 1, 0], "removed, unchanged, ingested");
    assert_eq!(shared_counts, embedded_counts);
    assert_eq!(shared_names, BTreeSet::from(["keep.md".to_string(), "outside.md".to_string()]));
    assert_eq!(shared_names, embedded_names);
}
