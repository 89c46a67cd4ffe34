//! Ingestion bookkeeping, bad input and access control through the real binary.

mod common;

use std::time::{Duration, Instant};

use common::{write, Zhiku};

#[test]
fn acl_filtering_never_leaks_and_groups_grant_access() {
    acl_scenario(&Zhiku::new());
}

#[test]
fn acl_filtering_holds_inside_the_hnsw_graph_too() {
    let z = Zhiku::new().with_env("ZHIKU_RETRIEVAL_VECTOR_INDEX", "hnsw");
    acl_scenario(&z);
    let data = z.data.path();
    assert!(data.join("kb/corp/vectors.hnsw").is_file() && !data.join("kb/corp/vectors.flat").exists());
}

#[test]
fn each_knowledge_base_keeps_its_own_vector_index_choice() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let leave = write(dir.path(), "leave.md", "# Leave\n\nEmployees carry over at most five days of annual leave.\n");
    let travel = write(dir.path(), "travel.md", "# Travel\n\nTrain travel is booked in second class for trips under four hours.\n");
    let out = z.run(&["kb", "create", "graph", "--vector-index", "hnsw"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    z.ingest("graph", &[&leave], &["group:all"]);
    z.ingest("plain", &[&leave], &["group:all"]);
    let kb_dir = |kb: &str, file: &str| z.data.path().join("kb").join(kb).join(file);
    assert!(kb_dir("graph", "vectors.hnsw").is_file() && !kb_dir("graph", "vectors.flat").exists());
    assert!(kb_dir("plain", "vectors.flat").is_file() && !kb_dir("plain", "vectors.hnsw").exists());
    for kb in ["graph", "plain"] {
        assert_eq!(Zhiku::sources(&z.search(kb, "annual leave carry over", None, 1)), vec![leave.to_str().unwrap()], "{kb}");
    }

    // Switched back to exact search: the next ingestion writes the flat index in the graph's place.
    assert!(z.run(&["kb", "create", "graph", "--vector-index", "flat"]).status.success());
    assert_eq!(
        Zhiku::sources(&z.search("graph", "second class train", None, 1)),
        vec![leave.to_str().unwrap()],
        "only one document so far"
    );
    z.ingest("graph", &[&travel], &["group:all"]);
    assert!(kb_dir("graph", "vectors.flat").is_file() && !kb_dir("graph", "vectors.hnsw").exists());
    assert_eq!(Zhiku::sources(&z.search("graph", "second class train", None, 1)), vec![travel.to_str().unwrap()]);

    let bad = z.run(&["kb", "create", "graph", "--vector-index", "ivf"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("expected auto, flat or hnsw"), "{err}");
}

fn acl_scenario(z: &Zhiku) {
    let dir = tempfile::tempdir().unwrap();
    let hr = write(dir.path(), "hr/salaries.md", "# Salary bands\n\nEngineering salary bands range from 60000 to 120000 euros.\n");
    let eng = write(dir.path(), "eng/oncall.md", "# On-call\n\nEngineers on call receive a salary supplement of 300 euros per week.\n");
    let bob = write(dir.path(), "bob/review.md", "# Review\n\nBob's salary review is scheduled for March.\n");
    z.ingest("corp", &[&hr], &["group:hr"]);
    z.ingest("corp", &[&eng], &["group:eng", "group:hr"]);
    z.ingest("corp", &[&bob], &["user:bob"]);

    let all = z.search("corp", "salary", None, 10);
    assert_eq!(all.len(), 3, "the administrator sees everything");

    // bob is in no group yet: only his own document.
    assert_eq!(Zhiku::sources(&z.search("corp", "salary", Some("bob"), 10)), vec![bob.to_str().unwrap()]);
    // A stranger sees nothing, not even a count.
    assert!(z.search("corp", "salary", Some("eve"), 10).is_empty());

    let out = z.run(&["group", "add-member", "eng", "bob"]);
    assert!(out.status.success());
    let mut seen = Zhiku::sources(&z.search("corp", "salary", Some("bob"), 10));
    seen.sort();
    let mut expected = vec![eng.to_str().unwrap().to_string(), bob.to_str().unwrap().to_string()];
    expected.sort();
    assert_eq!(seen, expected);

    let out = z.run(&["group", "add-member", "hr", "alice"]);
    assert!(out.status.success());
    let alice = Zhiku::sources(&z.search("corp", "salary bands engineering", Some("alice"), 10));
    assert!(alice.contains(&hr.to_str().unwrap().to_string()));
    assert!(!alice.contains(&bob.to_str().unwrap().to_string()), "alice must not see bob's review");

    // Removing membership revokes access immediately.
    assert!(z.run(&["group", "remove-member", "eng", "bob"]).status.success());
    assert_eq!(Zhiku::sources(&z.search("corp", "salary", Some("bob"), 10)), vec![bob.to_str().unwrap()]);
}

#[test]
fn reingest_is_a_noop_and_changes_replace_old_chunks() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let doc = write(dir.path(), "policy.txt", "The office opens at 8 o'clock. The xylophone room is on floor 3.");
    let first = z.ingest("kb", &[&doc], &[]);
    assert_eq!(first["ingested"], 1);
    let again = z.ingest("kb", &[&doc], &[]);
    assert_eq!(again["ingested"], 0, "{again}");
    assert_eq!(again["unchanged"], 1, "{again}");
    let before = z.search("kb", "xylophone", None, 5);
    assert_eq!(before.len(), 1);

    write(dir.path(), "policy.txt", "The office opens at 9 o'clock. The marimba room is on floor 4.");
    let changed = z.ingest("kb", &[&doc], &[]);
    assert_eq!(changed["ingested"], 1, "{changed}");
    assert_eq!(changed["files"][0]["status"], "replaced", "{changed}");
    let hits = z.search("kb", "xylophone marimba room", None, 5);
    assert_eq!(hits.len(), 1, "old chunks must be gone: {hits:?}");
    assert!(hits[0]["text"].as_str().unwrap().contains("marimba"));
    assert_ne!(hits[0]["chunk_id"], before[0]["chunk_id"]);

    // Changing only the ACL is applied too (no stale permissions).
    let acl_change = z.ingest("kb", &[&doc], &["user:carol"]);
    assert_eq!(acl_change["ingested"], 1, "{acl_change}");
    assert_eq!(z.search("kb", "marimba", Some("carol"), 5).len(), 1);
    assert!(z.search("kb", "marimba", Some("dave"), 5).is_empty());
}

#[test]
fn sync_mirrors_a_directory_and_leaves_other_sources_alone() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let keep = write(dir.path(), "keep.md", "# Keep\n\nThe aardvark stays.\n");
    let gone = write(dir.path(), "sub/gone.md", "# Gone\n\nThe okapi leaves.\n");
    let outside = write(other.path(), "outside.md", "# Outside\n\nThe okapi lives elsewhere too.\n");
    z.ingest("kb", &[dir.path()], &[]);
    z.ingest("kb", &[&outside], &[]);
    std::fs::remove_file(&gone).unwrap();

    // Without --sync nothing is removed.
    let plain = z.ingest("kb", &[dir.path()], &[]);
    assert_eq!(plain["removed"], 0, "{plain}");
    assert_eq!(z.search("kb", "okapi", None, 5).len(), 3);

    let out = z.command().args(["ingest"]).arg(dir.path()).args(["--kb", "kb", "--sync", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["removed"], 1, "{report}");
    assert_eq!(report["unchanged"], 1, "{report}");
    let sources = Zhiku::sources(&z.search("kb", "okapi aardvark", None, 5));
    assert!(!sources.contains(&gone.to_str().unwrap().to_string()), "{sources:?}");
    assert!(sources.contains(&keep.to_str().unwrap().to_string()));
    assert!(sources.contains(&outside.to_str().unwrap().to_string()), "documents outside the synced directory stay");
}

#[test]
fn structured_files_become_records_with_their_field_names() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "staff.csv", "name,office,extension\nAlice Martin,Paris,4411\nBruno Keller,Zurich,4522\n");
    write(dir.path(), "assets.jsonl", "{\"asset\": \"laptop-17\", \"owner\": {\"name\": \"Bruno Keller\"}}\n");
    let report = z.ingest("kb", &[dir.path()], &[]);
    assert_eq!(report["ingested"], 2, "{report}");
    assert_eq!(report["chunks"], 3, "one chunk per row or object: {report}");
    let hits = z.search("kb", "Zurich office extension", None, 1);
    assert_eq!(hits[0]["text"], "name: Bruno Keller\noffice: Zurich\nextension: 4522");
    let hits = z.search("kb", "laptop-17 owner", None, 1);
    assert_eq!(hits[0]["text"], "asset: laptop-17\nowner.name: Bruno Keller");
}

#[test]
fn exact_duplicates_are_reported_not_indexed_twice_and_language_is_recorded() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let text = "The quarterly budget review happens in the first week of April.";
    write(dir.path(), "a/budget.txt", text);
    write(dir.path(), "b/budget-copy.txt", text);
    write(dir.path(), "c/预算.txt", "季度预算审查在四月的第一周进行。");
    let report = z.ingest("kb", &[dir.path()], &[]);
    assert_eq!(report["ingested"], 2, "{report}");
    assert_eq!(report["duplicates"], 1, "{report}");
    let dup = report["files"].as_array().unwrap().iter().find(|f| f["status"] == "duplicate").unwrap();
    assert!(dup["source"].as_str().unwrap().ends_with("budget-copy.txt"), "{report}");
    assert!(dup["of"].as_str().unwrap().ends_with("a/budget.txt"), "{report}");
    assert_eq!(z.search("kb", "quarterly budget review", None, 5).len(), 2, "copy not indexed");

    // A lightly edited copy is a near duplicate: reported with its similarity, not indexed.
    let policy = "Full-time employees receive 27 days of paid annual leave per calendar year, plus public holidays. \
        Part-time employees receive leave in proportion to their contracted hours. Leave requests are made in the HR \
        portal at least two weeks in advance for absences longer than three days. Up to five unused days may be \
        carried over into the next year; carried-over days expire on 31 March.";
    write(dir.path(), "d/leave.txt", policy);
    write(dir.path(), "e/leave-v2.txt", policy.replace("31 March", "30 April"));
    let report = z.ingest("kb", &[&dir.path().join("d"), &dir.path().join("e")], &[]);
    let near = report["files"].as_array().unwrap().iter().find(|f| f["status"] == "near_duplicate").expect("near duplicate reported");
    assert!(near["source"].as_str().unwrap().ends_with("leave-v2.txt"), "{report}");
    assert!(near["similarity"].as_f64().unwrap() >= 0.9, "{report}");
    assert_eq!(
        z.search("kb", "carried-over days expire", None, 10).iter().filter(|h| h["text"].as_str().unwrap().contains("30 April")).count(),
        0
    );

    let docs = String::from_utf8(z.run(&["kb", "docs", "kb"]).stdout).unwrap();
    let lang = |name: &str| docs.lines().find(|l| l.contains(name)).unwrap().split('\t').nth(2).unwrap().to_string();
    assert_eq!(lang("budget.txt"), "en", "{docs}");
    assert_eq!(lang("预算.txt"), "zh", "{docs}");
}

#[test]
fn pii_policy_masks_or_drops_and_findings_are_reported() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let doc = write(
        dir.path(),
        "contacts.md",
        "# Support\n\nThe support desk answers within one hour.\n\n# Escalation\n\nEscalate to ops@example.com or call 13912345678.\n",
    );
    for (kb, policy) in [("keep", "keep"), ("masked", "mask"), ("dropped", "drop-chunk")] {
        assert!(z.run(&["kb", "create", kb, "--pii", policy]).status.success());
        let report = z.ingest(kb, &[&doc], &[]);
        assert_eq!(report["pii_findings"]["email"], 1, "{report}");
        assert_eq!(report["pii_findings"]["phone"], 1, "{report}");
    }
    let text = |kb: &str| -> Vec<String> {
        z.search(kb, "escalate ops", None, 5).iter().map(|h| h["text"].as_str().unwrap().to_string()).collect()
    };
    assert!(text("keep").iter().any(|t| t.contains("ops@example.com")));
    let masked = text("masked");
    assert!(masked.iter().any(|t| t == "Escalate to [EMAIL] or call [PHONE]."), "{masked:?}");
    assert!(!masked.iter().any(|t| t.contains("ops@example.com") || t.contains("13912345678")));
    let dropped = text("dropped");
    assert_eq!(dropped, vec!["The support desk answers within one hour."], "only the clean chunk is kept");
    assert!(z.run(&["kb", "create", "x", "--pii", "redact"]).status.code() != Some(0));
}

#[test]
fn zip_archives_are_expanded_within_limits() {
    use std::io::Write;
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bundle.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        let deflate = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("docs/alpaca.md", deflate).unwrap();
        zip.write_all(b"# Alpacas\n\nAlpacas are kept for their fleece in the Andes.\n").unwrap();
        zip.start_file("docs/bison.txt", deflate).unwrap();
        zip.write_all(b"Bison graze on the prairie in large herds.").unwrap();
        // Archives inside archives are opened, down to a nesting limit.
        let mut deepest = zip_bytes(&[("too-deep.txt", b"Never read: five archives down.".to_vec())]);
        for level in (2..=4).rev() {
            deepest = zip_bytes(&[(&format!("level{level}.zip"), deepest)]);
        }
        let inner = zip_bytes(&[("cat.txt", b"Cats sleep sixteen hours a day.".to_vec()), ("deeper.zip", deepest)]);
        zip.start_file("nested/inner.zip", deflate).unwrap();
        zip.write_all(&inner).unwrap();
        zip.start_file("nested/broken.zip", deflate).unwrap();
        zip.write_all(b"PK\x03\x04 not an archive").unwrap();
        zip.start_file("bomb.txt", deflate).unwrap();
        zip.write_all(&vec![b'a'; 50 << 20]).unwrap();
        zip.finish().unwrap();
    }
    let out = z.command().arg("ingest").arg(dir.path()).args(["--kb", "kb", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(report["ingested"], 3, "{report}");
    assert_eq!(report["failed"], 3, "{report}");
    let a = format!("{}!/docs/alpaca.md", archive.display());
    let hits = z.search("kb", "alpaca fleece", None, 1);
    assert_eq!(hits[0]["source"], a.as_str());
    let cat = z.search("kb", "how long do cats sleep", None, 1);
    assert_eq!(cat[0]["source"], format!("{}!/nested/inner.zip!/cat.txt", archive.display()).as_str());
    let reason = |suffix: &str| {
        report["files"].as_array().unwrap().iter().find(|f| f["source"].as_str().unwrap().ends_with(suffix)).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("level4.zip").contains("nested deeper than 5"), "{report}");
    assert!(reason("broken.zip").contains("corrupt"), "{report}");
    assert!(reason("bomb.txt").contains("limit"), "{report}");

    // Entries are documents of their own: unchanged on a rerun, removed with --sync when the
    // archive is gone.
    let again = z.command().arg("ingest").arg(dir.path()).args(["--kb", "kb", "--json"]).output().unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["unchanged"], 3, "{again}");
    // A corrupt archive is an error, not a deletion: its entries stay.
    std::fs::write(&archive, b"PK\x03\x04 truncated").unwrap();
    let corrupt = z.command().arg("ingest").arg(dir.path()).args(["--kb", "kb", "--sync", "--json"]).output().unwrap();
    let corrupt: serde_json::Value = serde_json::from_slice(&corrupt.stdout).unwrap();
    assert_eq!(corrupt["removed"], 0, "{corrupt}");
    assert_eq!(z.search("kb", "alpaca fleece", None, 1).len(), 1);
    std::fs::remove_file(&archive).unwrap();
    let synced = z.command().arg("ingest").arg(dir.path()).args(["--kb", "kb", "--sync", "--json"]).output().unwrap();
    let synced: serde_json::Value = serde_json::from_slice(&synced.stdout).unwrap();
    assert_eq!(synced["removed"], 3, "{synced}");
    assert!(z.search("kb", "alpaca fleece", None, 5).is_empty());
}

fn zip_bytes(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn bad_files_are_reported_and_the_batch_continues() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a-good.md", "# Good\n\nThis document about penguins is fine.\n");
    write(dir.path(), "b-empty.txt", "");
    write(dir.path(), "c-binary.bin", [0u8, 159, 146, 150, 0, 1, 2, 3]);
    // "中文测试" in GBK: not UTF-8, but detected and decoded.
    write(dir.path(), "d-gbk.txt", [0xD6u8, 0xD0, 0xCE, 0xC4, 0xB2, 0xE2, 0xCA, 0xD4]);
    write(dir.path(), "e-fake.pdf", b"%PDF-1.7\n%binary");
    write(dir.path(), "f-good.html", "<html><body><h1>Walrus</h1><p>Walruses live in the Arctic.</p></body></html>");
    // Text with a stray NUL is text; HTML without an extension is recognised by its content.
    write(dir.path(), "g-nul.txt", b"Otters hold hands\0 while they sleep.");
    write(dir.path(), "h-page.dat", "<!DOCTYPE html><html><body><h1>Puffins</h1><p>Puffins nest in burrows on cliffs.</p></body></html>");
    write(dir.path(), "i odd name 文件 #1 (copy) 'x'.md", "# Odd\n\nNarwhals have a single long tusk.\n");
    // A named pipe must not block the batch; a dangling link and truncated files fail cleanly.
    let fifo = dir.path().join("j-pipe.txt");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink(dir.path().join("nowhere.txt"), dir.path().join("k-link.txt")).unwrap();
    write(dir.path(), "l-cut.json", "[{\"name\": \"Alice\", \"team\": ");
    let docx = std::fs::read(common::manifest_dir().join("../zhiku-ingest/tests/fixtures/office/debian-reference-ch04.en.docx")).unwrap();
    write(dir.path(), "m-cut.docx", &docx[..docx.len() / 3]);
    let missing = dir.path().join("does-not-exist.txt");

    let out = z.command().args(["ingest"]).arg(dir.path()).arg(&missing).args(["--kb", "kb", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "partial failure exit code; stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ingested"], 6, "{report}");
    assert_eq!(report["failed"], 8, "{report}");
    let files = report["files"].as_array().unwrap();
    let reason = |name: &str| {
        files.iter().find(|f| f["source"].as_str().unwrap().ends_with(name)).unwrap_or_else(|| panic!("{name} not in {report}"))["reason"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
    };
    assert!(reason("b-empty.txt").contains("empty"));
    assert!(reason("c-binary.bin").contains("binary"));
    assert!(reason("e-fake.pdf").contains("pdf"));
    assert!(reason("does-not-exist.txt").contains("cannot open"));
    assert!(reason("j-pipe.txt").contains("not a regular file"));
    assert!(reason("k-link.txt").contains("cannot open"));
    assert!(reason("l-cut.json").contains("json"));
    assert!(reason("m-cut.docx").contains("docx") && reason("m-cut.docx").contains("truncated"));
    // Human-readable failures name the file on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("b-empty.txt"), "{stderr}");
    let hits = z.search("kb", "walrus arctic", None, 5);
    assert!(hits[0]["source"].as_str().unwrap().ends_with("f-good.html"), "{hits:?}");
    let all = z.search("kb", "animals", None, 20);
    assert_eq!(all.len(), 6, "only the six good files are indexed: {all:?}");
    let puffin = z.search("kb", "where do puffins nest", None, 1);
    assert_eq!(puffin[0]["heading_path"][0], "Puffins", "sniffed as HTML: {puffin:?}");
    let odd = z.search("kb", "narwhal tusk", None, 1);
    assert!(odd[0]["source"].as_str().unwrap().ends_with("i odd name 文件 #1 (copy) 'x'.md"), "{odd:?}");
    let otter = z.search("kb", "otters sleeping", None, 1);
    assert_eq!(otter[0]["text"], "Otters hold hands while they sleep.");
    let hits = z.search("kb", "中文测试", None, 1);
    assert!(hits[0]["source"].as_str().unwrap().ends_with("d-gbk.txt"), "{hits:?}");
    assert_eq!(hits[0]["text"], "中文测试");
}

#[test]
fn usage_errors_are_one_line_and_nonzero() {
    let z = Zhiku::new();
    let out = z.run(&["search", "x", "--kb", "nope", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error:") && err.contains("nope") && err.trim().lines().count() == 1, "{err}");

    let out = z.run(&["ingest", "x", "--kb", "bad/name"]);
    assert!(!out.status.success());

    let dir = tempfile::tempdir().unwrap();
    let doc = write(dir.path(), "a.txt", "text");
    let out = z.command().arg("ingest").arg(&doc).args(["--kb", "kb", "--acl", "admin"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user:<name>"));

    let out = z.command().args(["search", "x", "--kb", "kb"]).env("ZHIKU_MODELS_EMBEDDING", dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zhiku setup"));

    // A data dir that cannot be created (its parent is a file) is reported as such, even as root.
    let blocker = write(dir.path(), "not-a-dir", "x");
    let out = z.command_in(&blocker.join("data")).args(["kb", "list"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create data dir") && err.contains("--data-dir"), "{err}");
}

#[test]
fn killed_ingest_resumes_to_a_consistent_index() {
    let z = Zhiku::new();
    let dir = tempfile::tempdir().unwrap();
    let n = 150;
    for i in 0..n {
        // Distinct texts (not near duplicates of each other): words drawn per document.
        let mut seed = 0x9E37_79B9u64.wrapping_mul(i as u64 + 1);
        let body: String = (0..12)
            .map(|s| {
                let words: Vec<&str> = (0..8)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        VOCABULARY[(seed >> 33) as usize % VOCABULARY.len()]
                    })
                    .collect();
                format!("Sentence {s} of document {i} mentions token{i}x and {}. ", words.join(" "))
            })
            .collect();
        write(dir.path(), &format!("doc{i:03}.txt"), body);
    }
    let mut child = z.command().arg("ingest").arg(dir.path()).args(["--kb", "kb"]).spawn().unwrap();
    // Kill -9 once some documents are committed but before the batch (and its final index
    // commit) is done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let committed = committed_documents(&z);
        if committed >= 2 || Instant::now() > deadline {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ingest finished ({status}) before it could be interrupted; make the batch bigger");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = committed_documents(&z);
    assert!(committed > 0 && committed < n, "expected a partial ingest, got {committed}");

    // Search works right away on what was committed (the stale index is rebuilt in memory)...
    let hits = z.search("kb", "token0x", None, 3);
    assert_eq!(hits[0]["source"].as_str().unwrap(), dir.path().join("doc000.txt").to_str().unwrap());

    // ...and a rerun finishes the batch, skipping what was done.
    let report = z.ingest("kb", &[dir.path()], &[]);
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["unchanged"].as_u64().unwrap() + report["ingested"].as_u64().unwrap(), n as u64);
    assert!(report["unchanged"].as_u64().unwrap() >= committed as u64, "{report}");
    for i in [0, n / 2, n - 1] {
        let hits = z.search("kb", &format!("token{i}x"), None, 1);
        let want = dir.path().join(format!("doc{i:03}.txt"));
        assert_eq!(hits[0]["source"].as_str().unwrap(), want.to_str().unwrap());
    }
    let docs = z.run(&["kb", "docs", "kb"]);
    assert_eq!(String::from_utf8_lossy(&docs.stdout).lines().count(), n);

    // The same as an uninterrupted run: the same documents, chunks and content, and the same
    // ranking for a query that touches many documents.
    let clean = Zhiku::new();
    clean.ingest("kb", &[dir.path()], &[]);
    assert_eq!(clean.run(&["kb", "docs", "kb"]).stdout, docs.stdout);
    let ranked = |z: &Zhiku| Zhiku::sources(&z.search("kb", "copper lantern meadow", None, 10));
    assert_eq!(ranked(&z), ranked(&clean));
}

const VOCABULARY: [&str; 24] = [
    "river", "copper", "lantern", "meadow", "quartz", "harbor", "violet", "engine", "falcon", "pepper", "glacier", "saddle", "cobalt",
    "orchard", "tunnel", "ember", "marble", "thistle", "canyon", "velvet", "anchor", "juniper", "signal", "walnut",
];

/// Documents committed so far, read through the CLI while the ingest runs (SQLite's WAL lets a
/// reader in beside the writer).
fn committed_documents(z: &Zhiku) -> usize {
    let out = z.run(&["kb", "docs", "kb"]);
    if !out.status.success() {
        return 0;
    }
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A text file of `paragraphs` distinct paragraphs, `marker{i}` in each.
fn long_text(paragraphs: usize) -> String {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..paragraphs)
        .map(|i| {
            let words: Vec<&str> = (0..24)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    VOCABULARY[(seed >> 33) as usize % VOCABULARY.len()]
                })
                .collect();
            format!("Paragraph marker{i} is about {}.\n\n", words.join(" "))
        })
        .collect()
}

#[test]
fn a_huge_text_file_is_stored_in_sections_and_a_killed_run_resumes_it() {
    // Sections of 8 KiB stand in for the default 8 MiB: the same code path on a small file.
    let sectioned = |cmd: &mut std::process::Command| {
        cmd.env("ZHIKU_CHUNKING_SECTION_MB", "0.0078125");
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "huge.txt", long_text(600));
    let z = Zhiku::new();
    let mut ingest = z.command();
    sectioned(&mut ingest);
    let mut child = ingest.arg("ingest").arg(&path).args(["--kb", "kb"]).spawn().unwrap();
    // Kill -9 once the first sections are stored and before the last one is.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_incomplete = false;
    while Instant::now() < deadline {
        let docs = String::from_utf8_lossy(&z.run(&["kb", "docs", "kb"]).stdout).into_owned();
        if docs.contains("incomplete") {
            seen_incomplete = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen_incomplete, "the file was never seen half stored: sections are not stored as they come");

    // The rerun does not take the half-stored file as unchanged: it stores all of it again.
    let mut rerun = z.command();
    sectioned(&mut rerun);
    let out = rerun.args(["ingest", "--json", "--kb", "kb"]).arg(&path).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"][0]["status"], "replaced", "{report}");
    let docs = String::from_utf8_lossy(&z.run(&["kb", "docs", "kb"]).stdout).into_owned();
    assert!(!docs.contains("incomplete"), "{docs}");

    // The same chunks as an uninterrupted run, and as the file prepared whole.
    let clean = Zhiku::new();
    let mut cmd = clean.command();
    sectioned(&mut cmd);
    assert!(cmd.args(["ingest", "--kb", "kb"]).arg(&path).output().unwrap().status.success());
    assert_eq!(clean.run(&["kb", "docs", "kb"]).stdout, z.run(&["kb", "docs", "kb"]).stdout);
    let chunks = report["files"][0]["chunks"].as_u64().unwrap();
    let whole = z.json(&["parse", "--json"].iter().copied().chain([path.to_str().unwrap()]).collect::<Vec<_>>());
    let whole_chunks = whole["files"][0]["chunk_count"].as_u64().unwrap();
    // Sections end at paragraph ends, where a chunk may end early: a few more chunks, never fewer.
    assert!(chunks >= whole_chunks && chunks <= whole_chunks + whole_chunks / 5, "{chunks} vs {whole_chunks}");

    // The last section is there and searchable.
    let hits = z.search("kb", "marker599", None, 3);
    assert!(hits.iter().any(|h| h["text"].as_str().unwrap().contains("marker599")), "{hits:#?}");
    let rerun_again = z.ingest("kb", &[&path], &[]);
    assert_eq!(rerun_again["unchanged"], 1, "{rerun_again}");
}
