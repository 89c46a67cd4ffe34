//! `zhiku serve` through real clients: the official `openai` Python package (and raw HTTP from
//! Python's standard library) and LangChain's ChatOpenAI/OpenAIEmbeddings against the running
//! binary, as users with different access.

mod common;

use std::process::Command;

use common::{write, Zhiku};

fn python() -> String {
    std::env::var("ZHIKU_TEST_PYTHON")
        .expect("ZHIKU_TEST_PYTHON is not set: run the tests through scripts/test.sh, which makes a venv with the openai and langchain-openai packages")
}

#[test]
fn the_openai_python_client_works_against_zhiku_serve() {
    // Bodies above 1 MiB are refused, so the client test can check the 413 cheaply.
    let z = Zhiku::new().with_env("ZHIKU_SERVER_MAX_BODY_MB", "1").with_env("ZHIKU_SERVER_CORS_ORIGINS", r#"["http://intranet.test"]"#);
    let dir = tempfile::tempdir().unwrap();
    let leave = write(dir.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    z.ingest("hr", &[&leave], &["group:staff"]);
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    // Both may use the knowledge base; only ann may read the document (its own ACL).
    assert!(z.run(&["kb", "grant", "hr", "group:staff", "viewer"]).status.success());
    assert!(z.run(&["kb", "grant", "hr", "user:eve", "viewer"]).status.success());
    let key = |name: &str| {
        let out = z.json(&["key", "create", "--name", name, "--json"]);
        out["key"].as_str().unwrap().to_string()
    };
    let (ann, eve) = (key("ann"), key("eve"));
    let admin = z.json(&["key", "create", "--name", "root", "--admin", "--json"])["key"].as_str().unwrap().to_string();

    let server = z.serve();

    let script = common::manifest_dir().join("tests/python/openai_client.py");
    let out = Command::new(python())
        .arg(script)
        .env("ZHIKU_URL", &server.url)
        .env("ZHIKU_KEY_ANN", &ann)
        .env("ZHIKU_KEY_EVE", &eve)
        .env("ZHIKU_KEY_ADMIN", &admin)
        .env("ZHIKU_SOURCE", leave.to_str().unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));

    let langchain = Command::new(python())
        .arg(common::manifest_dir().join("tests/python/langchain_client.py"))
        .env("ZHIKU_URL", &server.url)
        .env("ZHIKU_KEY_ANN", &ann)
        .output()
        .unwrap();
    drop(server);
    assert!(langchain.status.success(), "{}{}", String::from_utf8_lossy(&langchain.stdout), String::from_utf8_lossy(&langchain.stderr));

    // Keys are listed without secrets and stop working once revoked.
    let listed = z.json(&["key", "list", "--json"]);
    assert!(!listed.to_string().contains(&ann[ann.len() - 20..]), "a secret in the listing");
    let id = listed["keys"].as_array().unwrap().iter().find(|k| k["name"] == "eve").unwrap()["id"].as_str().unwrap().to_string();
    assert!(z.run(&["key", "revoke", &id]).status.success());
    assert!(!z.run(&["key", "revoke", &id]).status.success(), "revoking twice is an error");
}
