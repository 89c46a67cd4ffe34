//! The web app in headless Chromium (Debian's `chromium` driven by npm's `playwright-core`):
//! sign in with a key, ask, see the streamed answer cite its source, open the cited passage,
//! search, switch to Chinese. Screenshots are kept under the test target's tmp dir.

mod common;

use std::process::Command;

use common::{write, Zhiku};

#[test]
fn the_web_app_answers_with_citations_in_a_real_browser() {
    let node_modules = std::env::var("ZHIKU_TEST_NODE_MODULES")
        .expect("ZHIKU_TEST_NODE_MODULES is not set: run the tests through scripts/test.sh, which installs playwright-core");
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let leave = write(dir.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave into the next year.\n");
    z.ingest("hr", &[&leave], &["group:staff"]);
    assert!(z.run(&["group", "add-member", "staff", "ann"]).status.success());
    let key = z.json(&["key", "create", "--name", "ann", "--json"])["key"].as_str().unwrap().to_string();
    let server = z.serve();

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/web_app.mjs"))
        .env("ZHIKU_NODE_MODULES", &node_modules)
        .env("ZHIKU_URL", &server.url)
        .env("ZHIKU_KEY", &key)
        .env("ZHIKU_SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    for shot in ["1-answer.png", "2-passage.png", "3-search-zh.png"] {
        assert!(std::fs::metadata(shots.join(shot)).is_ok_and(|m| m.len() > 1000), "screenshot {shot} missing");
    }
}
