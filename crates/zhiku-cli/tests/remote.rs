//! Remote providers: one zhiku generates and embeds through another zhiku's OpenAI-compatible
//! API (as it would through vLLM, TGI or llama.cpp's server), streamed, with the same results
//! as doing it locally; failures name the server and are retried.

mod common;

use common::{write, Zhiku};
use serde_json::Value;

#[test]
fn answers_and_embeddings_come_from_an_openai_compatible_server() {
    let provider = Zhiku::new();
    let key = provider.json(&["key", "create", "--name", "gateway", "--json"])["key"].as_str().unwrap().to_string();
    let server = provider.serve();
    let v1 = format!("{}/v1", server.url);
    let remote = Zhiku::new()
        .with_env("ZHIKU_MODELS_LLM_URL", &v1)
        .with_env("ZHIKU_MODELS_LLM_REMOTE_MODEL", "SmolLM2-135M-Instruct.Q4_1")
        .with_env("ZHIKU_MODELS_LLM_API_KEY", &key)
        .with_env("ZHIKU_MODELS_EMBEDDING_URL", &v1)
        .with_env("ZHIKU_MODELS_EMBEDDING_REMOTE_MODEL", "all-MiniLM-L6-v2")
        .with_env("ZHIKU_MODELS_EMBEDDING_API_KEY", &key);
    let docs = tempfile::tempdir().unwrap();
    let leave = write(docs.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n\nTravel: train journeys under four hours are booked in second class.\n");

    // The same document in a knowledge base embedded remotely and one embedded locally: the
    // provider runs the same MiniLM, so the passages score the same.
    let path = leave.to_str().unwrap();
    let made = remote.json(&["ingest", path, "--kb", "far", "--embedding-model", "remote", "--json"]);
    assert_eq!(made["ingested"], 1, "{made}");
    remote.json(&["ingest", path, "--kb", "near", "--json"]);
    let question = "How many days of annual leave carry over?";
    let (far, near) = (remote.search("far", question, None, 2), remote.search("near", question, None, 2));
    assert_eq!(Zhiku::sources(&far), Zhiku::sources(&near));
    let similarity = |hits: &[Value]| hits[0]["similarity"].as_f64().unwrap();
    assert!((similarity(&far) - similarity(&near)).abs() < 1e-4, "{} vs {}", similarity(&far), similarity(&near));

    // Answers streamed from the provider's model equal the local model's, greedy decoding
    // being deterministic.
    let asked = remote.json(&["ask", question, "--kb", "near", "--json"]);
    let local = Zhiku::new();
    local.json(&["ingest", path, "--kb", "near", "--json"]);
    let locally = local.json(&["ask", question, "--kb", "near", "--json"]);
    assert_eq!(asked["answer"], locally["answer"]);
    assert_eq!(asked["citations"].as_array().map(Vec::len), locally["citations"].as_array().map(Vec::len));
    assert!(!asked["answer"].as_str().unwrap().trim().is_empty());

    // A wrong key is the provider's 401, named; a server that is gone is named after the
    // retries.
    let bad_key = Zhiku::new().with_env("ZHIKU_MODELS_LLM_URL", &v1).with_env("ZHIKU_MODELS_LLM_API_KEY", "zk_nope_0");
    bad_key.json(&["ingest", path, "--kb", "k", "--json"]);
    let refused = bad_key.run(&["ask", question, "--kb", "k"]);
    drop(server);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&v1) && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("zk_nope_0"), "the key is never shown");
    let gone = Zhiku::new().with_env("ZHIKU_MODELS_LLM_URL", "http://127.0.0.1:9/v1").with_env("ZHIKU_MODELS_REMOTE_RETRIES", "1");
    gone.json(&["ingest", path, "--kb", "k", "--json"]);
    let failed = gone.run(&["ask", question, "--kb", "k"]);
    assert!(
        !failed.status.success() && String::from_utf8_lossy(&failed.stderr).contains("127.0.0.1:9"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
}

/// Chat completions a provider answered successfully, from its public metrics.
fn chats_served(provider: &str) -> u64 {
    let metrics = common::http(provider, "GET", "/metrics", &[], "");
    metrics
        .body
        .lines()
        .find(|l| l.starts_with("zhiku_http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn a_pool_of_servers_is_balanced_and_fails_over() {
    let provider = Zhiku::new().with_env("ZHIKU_SERVER_METRICS_PUBLIC", "true");
    let key = provider.json(&["key", "create", "--name", "gateway", "--json"])["key"].as_str().unwrap().to_string();
    // Two servers of one model sharing a data directory (and so the key), as two GPU boxes
    // would; and one address where nothing listens.
    let (a, b) = (provider.serve(), provider.serve());
    let pool = format!("http://127.0.0.1:9/v1, {}/v1,{}/v1", a.url, b.url);
    let client = Zhiku::new()
        .with_env("ZHIKU_MODELS_LLM_URL", &pool)
        .with_env("ZHIKU_MODELS_LLM_REMOTE_MODEL", "SmolLM2-135M-Instruct.Q4_1")
        .with_env("ZHIKU_MODELS_LLM_API_KEY", &key);
    let app_key = client.json(&["key", "create", "--name", "app", "--json"])["key"].as_str().unwrap().to_string();
    let front = client.serve();
    let chat = || {
        let body = serde_json::json!({"model": "SmolLM2-135M-Instruct.Q4_1", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8});
        let auth = format!("Bearer {app_key}");
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        common::http(&front.url, "POST", "/v1/chat/completions", &headers, &body.to_string())
    };
    let ask = || {
        let reply = chat();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answer: Value = serde_json::from_str(&reply.body).unwrap();
        assert!(!answer["choices"][0]["message"]["content"].as_str().unwrap().is_empty(), "{answer}");
    };
    // The dead address costs the first request a failover, then rests out of rotation; the two
    // live servers share the rest.
    for _ in 0..6 {
        ask();
    }
    let (served_a, served_b) = (chats_served(&a.url), chats_served(&b.url));
    assert_eq!(served_a + served_b, 6);
    assert!(served_a >= 2 && served_b >= 2, "unbalanced: {served_a} and {served_b}");

    // One of them goes away: everything goes to the other.
    drop(a);
    for _ in 0..3 {
        ask();
    }
    assert_eq!(chats_served(&b.url), served_b + 3);

    // None left: the request fails (the log names the servers tried).
    drop(b);
    let reply = chat();
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);
}
