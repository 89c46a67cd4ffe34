//! The web app in headless Chromium (Debian's `chromium` driven by npm's `playwright-core`):
//! an administrator creates a knowledge base and uploads a file with live progress; a reader
//! signs in, asks, sees the streamed answer cite its source, opens the cited passage, searches,
//! explores the knowledge graph and switches to Chinese; the embeddable widget answers on an intranet page of another origin. Screenshots are kept under the test target's tmp dir.

mod common;

use std::process::Command;

use common::{debian_reference, write, Zhiku};

#[test]
fn the_web_app_answers_with_citations_in_a_real_browser() {
    let node_modules = std::env::var("ZHIKU_TEST_NODE_MODULES")
        .expect("ZHIKU_TEST_NODE_MODULES is not set: run the tests through scripts/test.sh, which installs playwright-core");
    // The widget is tried on a page of another origin (localhost against the server's
    // 127.0.0.1, a free port the script serves the page on), which the server lets in.
    let page_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let z = Zhiku::new().with_env("ZHIKU_SERVER_CORS_ORIGINS", &format!(r#"["http://localhost:{page_port}"]"#));
    let dir = tempfile::tempdir().unwrap();
    let leave = write(dir.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n\nLeave requests go through Workday. The Workday system is owned by the People Team.\n");
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    let key = z.json(&["key", "create", "--name", "ann", "--json"])["key"].as_str().unwrap().to_string();
    let admin = z.json(&["key", "create", "--name", "root", "--admin", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(common::manifest_dir().join("tests/ui/web_app.mjs"))
        .env("ZHIKU_NODE_MODULES", &node_modules)
        .env("ZHIKU_URL", &server.url)
        .env("ZHIKU_KEY", &key)
        .env("ZHIKU_ADMIN_KEY", &admin)
        .env("ZHIKU_UPLOAD", &leave)
        .env("ZHIKU_PAGE_PORT", page_port.to_string())
        .env("ZHIKU_SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    for shot in ["0-upload.png", "1-answer.png", "2-passage.png", "3-search-zh.png", "4-widget.png", "5-graph.png"] {
        assert!(std::fs::metadata(shots.join(shot)).is_ok_and(|m| m.len() > 1000), "screenshot {shot} missing");
    }
}

#[test]
fn generated_pairs_are_reviewed_in_a_real_browser() {
    let node_modules = std::env::var("ZHIKU_TEST_NODE_MODULES")
        .expect("ZHIKU_TEST_NODE_MODULES is not set: run the tests through scripts/test.sh, which installs playwright-core");
    let z = Zhiku::new();
    z.ingest("deb", &[&debian_reference().join("ch02.en.html")], &["group:staff"]);
    for (user, role) in [("ed", "editor"), ("vic", "viewer")] {
        assert!(z.run(&["group", "add-member", "staff", user]).status.success());
        assert!(z.run(&["kb", "grant", "deb", &format!("user:{user}"), role]).status.success());
    }
    let out = z.data.path().join("pairs.jsonl");
    let made = z.json(&["finetune", "dataset", "--kb", "deb", "--out", out.to_str().unwrap(), "--max-chunks", "12", "--json"]);
    assert!(made["generated"]["kept"].as_u64().unwrap() >= 2, "{made}");
    let key = |name: &str| z.json(&["key", "create", "--name", name, "--json"])["key"].as_str().unwrap().to_string();
    let (editor, viewer) = (key("ed"), key("vic"));
    let server = z.serve();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let run = Command::new("node")
        .arg(common::manifest_dir().join("tests/ui/review.mjs"))
        .env("ZHIKU_NODE_MODULES", &node_modules)
        .env("ZHIKU_URL", &server.url)
        .env("ZHIKU_EDITOR_KEY", &editor)
        .env("ZHIKU_VIEWER_KEY", &viewer)
        .env("ZHIKU_SCREENSHOTS", &shots)
        .output()
        .unwrap();
    drop(server);
    assert!(run.status.success(), "{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let decided: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // The decisions made in the browser are the store's, with who made them.
    let pairs = z.json(&["finetune", "review", "list", "--kb", "deb", "--json"]);
    let pair = |id: &serde_json::Value| pairs["pairs"].as_array().unwrap().iter().find(|p| &p["id"] == id).unwrap().clone();
    let accepted = pair(&decided["accepted"]);
    assert_eq!((accepted["status"].as_str(), accepted["edited"].as_bool()), (Some("accepted"), Some(true)));
    assert_eq!(accepted["answer"], "See chapter 2 of the Debian Reference.");
    assert!(accepted["reviewer"].as_str().unwrap().contains("ed"), "{accepted}");
    assert_eq!(pair(&decided["rejected"])["status"], "rejected");
    assert!(std::fs::metadata(shots.join("6-review.png")).is_ok_and(|m| m.len() > 1000));
}
