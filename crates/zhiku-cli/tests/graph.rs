//! The knowledge graph through the real binary: the `graph query` contract, ACLs, exact removal of
//! a document's contributions, structured data, exports, and graph retrieval answering the
//! multi-hop question that hybrid search alone misses (docs/knowledge-graph.md).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{write, Zhiku};
use serde_json::Value;

/// The twelve teams of the look-alike part of the catalogue.
const TEAMS: [&str; 12] = [
    "Search",
    "Identity",
    "Logistics",
    "Billing",
    "Analytics",
    "Mobile",
    "Storage",
    "Network",
    "Security",
    "Support",
    "Marketing",
    "Legal",
];

/// A service catalogue: Atlas depends on Borealis, which the Payments Team owns; twelve other
/// services, each owned by some team, use the same words ("service", "owned", "team") and stand
/// between the question and Borealis's page in hybrid search.
fn catalogue(dir: &Path) {
    write(dir, "atlas.md", "# Atlas\n\nThe Atlas service depends on Borealis. Atlas renders the checkout pages for the web shop.\n");
    write(
        dir,
        "borealis.md",
        "# Borealis\n\nBorealis is owned by the Payments Team. Borealis, a message broker, was migrated to new hardware in 2024.\n",
    );
    let services = ["Cirrus", "Dune", "Ember", "Fjord", "Geyser", "Halo", "Iris", "Juniper", "Kestrel", "Lumen", "Mistral", "Nimbus"];
    for (team, service) in TEAMS.iter().zip(services) {
        write(
            dir,
            &format!("{}.md", service.to_lowercase()),
            format!(
                "# {service}\n\nThe {service} service is owned by the {team} Team. Which team owns a service is recorded in the service catalogue; the owning team answers pages about the service.\n"
            ),
        );
    }
}

fn query(z: &Zhiku, kb: &str, entity: &str, as_user: Option<&str>) -> Value {
    let mut args = vec!["graph", "query", "--kb", kb, "--entity", entity, "--json"];
    if let Some(u) = as_user {
        args.extend(["--as", u]);
    }
    z.json(&args)
}

/// `(neighbour, relation)` pairs of a `graph query`, generic co-occurrence left out.
fn relations(found: &Value) -> BTreeSet<(String, String)> {
    found["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["relation"] != "related_to")
        .map(|n| (n["entity"].as_str().unwrap().to_string(), n["relation"].as_str().unwrap().to_string()))
        .collect()
}

/// `graph export --format csv` into `dir` under the data directory, read back: the entities'
/// names, and each relation as `[from, TYPE, to, sources]` by name (ids are the store's).
fn export_csv(z: &Zhiku, kb: &str, dir: &str) -> (Vec<String>, Vec<[String; 4]>) {
    let out = z.data.path().join(dir);
    let done = z.run(&["graph", "export", "--kb", kb, "--format", "csv", "--out", out.to_str().unwrap()]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let nodes = std::fs::read_to_string(out.join("nodes.csv")).unwrap();
    let names: std::collections::HashMap<String, String> = nodes
        .lines()
        .skip(1)
        .map(|l| {
            let (id, rest) = l.split_once(',').unwrap();
            (id.to_string(), rest.rsplitn(3, ',').nth(2).unwrap().trim_matches('"').to_string())
        })
        .collect();
    let edges = std::fs::read_to_string(out.join("relationships.csv")).unwrap();
    let relations = edges
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ',').collect();
            [names[f[0]].clone(), f[2].to_string(), names[f[1]].clone(), f[4].trim_matches('"').to_string()]
        })
        .collect();
    (names.into_values().collect(), relations)
}

/// Three string fields of each object of a JSON array, as a set.
fn fields(list: &Value, names: [&str; 3]) -> BTreeSet<(String, String, String)> {
    let get = |o: &Value, n: &str| o[n].as_str().unwrap().to_string();
    list.as_array().unwrap().iter().map(|o| (get(o, names[0]), get(o, names[1]), get(o, names[2]))).collect()
}

fn pair(entity: &str, relation: &str) -> (String, String) {
    (entity.to_string(), relation.to_string())
}

#[test]
fn graph_query_follows_the_contract_and_the_documents_acls() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    catalogue(docs.path());
    let secret = tempfile::tempdir().unwrap();
    write(secret.path(), "zephyr.txt", "Project Zephyr depends on Borealis. Zephyr is the board's secret acquisition.\n");
    z.ingest("eng", &[docs.path()], &["group:staff"]);
    z.ingest("eng", &[secret.path()], &["group:board"]);
    assert!(z.run(&["group", "add-member", "staff", "carol"]).status.success());

    let admin = query(&z, "eng", "borealis", None);
    assert_eq!(admin["entity"], "Borealis", "any spelling finds the entity, named as the documents write it");
    let neighbours = admin["neighbors"].as_array().unwrap();
    for n in neighbours {
        assert!(n["entity"].is_string() && n["relation"].is_string() && n["sources"].is_array(), "contract shape: {n}");
    }
    let atlas = neighbours.iter().find(|n| n["entity"] == "Atlas" && n["relation"] == "depends_on").expect("Atlas depends on Borealis");
    let sources: Vec<&str> = atlas["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(sources.len() == 1 && sources[0].ends_with("atlas.md"), "{sources:?}");
    assert_eq!(atlas["direction"], "in");
    let rels = relations(&admin);
    assert!(rels.contains(&pair("Payments Team", "owns")) && rels.contains(&pair("message broker", "is_a")), "{rels:?}");
    assert!(rels.contains(&pair("Project Zephyr", "depends_on")));

    // Carol reads the staff documents only: the board's relation and its source are not there.
    let carol = query(&z, "eng", "Borealis", Some("carol"));
    assert!(!carol.to_string().contains("Zephyr") && !carol.to_string().contains("zephyr.txt"), "{carol}");
    assert!(relations(&carol).contains(&pair("Atlas", "depends_on")));
    // An entity only secret documents mention does not exist for her, exactly as an unknown one.
    let hidden = query(&z, "eng", "Project Zephyr", Some("carol"));
    let unknown = query(&z, "eng", "Project Nonexistent", Some("carol"));
    assert_eq!(hidden["neighbors"], unknown["neighbors"]);
    assert_eq!(hidden["neighbors"].as_array().unwrap().len(), 0);
    assert!(hidden.get("kind").is_none());
    // Someone in no group sees nothing at all.
    assert_eq!(query(&z, "eng", "Borealis", Some("mallory"))["neighbors"].as_array().unwrap().len(), 0);

    // Paths go through visible relations only.
    let path = z.json(&["graph", "path", "--kb", "eng", "--from", "Atlas", "--to", "Payments Team", "--json"]);
    let steps: Vec<(String, String, String)> = path["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from"].as_str().unwrap().into(), s["relation"].as_str().unwrap().into(), s["to"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        steps,
        vec![("Atlas".into(), "depends_on".into(), "Borealis".into()), ("Borealis".into(), "owns".into(), "Payments Team".into())]
    );
    let blocked = z.json(&["graph", "path", "--kb", "eng", "--from", "Atlas", "--to", "Project Zephyr", "--as", "carol", "--json"]);
    assert!(blocked["path"].is_null(), "{blocked}");
}

#[test]
fn changing_or_removing_a_document_removes_exactly_what_it_said() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    catalogue(docs.path());
    z.ingest("eng", &[docs.path()], &[]);
    // Entity ids are the store's; compare names and relations.
    let export = |name: &str| -> String {
        let (names, edges) = export_csv(&z, "eng", name);
        let mut lines: Vec<String> =
            edges.iter().map(|[from, relation, to, sources]| format!("{from} {relation} {to} {sources}")).collect();
        lines.sort();
        let mut entities: Vec<&String> = names.iter().collect();
        entities.sort();
        format!("{entities:?}\n{}", lines.join("\n"))
    };
    let before = export("before");
    assert!(before.contains("Atlas DEPENDS_ON Borealis"), "{before}");

    // A new document adds its entities and relations ...
    write(
        docs.path(),
        "zeta.md",
        "# Zeta\n\nThe Zeta Gateway depends on Borealis and on Quasar Cache. Zeta Gateway is owned by the Edge Team.\n",
    );
    z.ingest("eng", &[docs.path()], &[]);
    let with_zeta = export("with");
    for expected in ["Zeta Gateway DEPENDS_ON Borealis", "Zeta Gateway DEPENDS_ON Quasar Cache", "Edge Team OWNS Zeta Gateway"] {
        assert!(with_zeta.contains(expected), "{expected} missing:\n{with_zeta}");
    }
    // ... and removing it takes exactly those away: entities only it named go too.
    std::fs::remove_file(docs.path().join("zeta.md")).unwrap();
    let synced = z.json(&["ingest", docs.path().to_str().unwrap(), "--kb", "eng", "--sync", "--json"]);
    assert_eq!(synced["removed"], 1);
    assert_eq!(export("after"), before);

    // A changed document replaces what it said.
    write(docs.path(), "atlas.md", "# Atlas\n\nThe Atlas service depends on Redis. Atlas renders the checkout pages.\n");
    z.ingest("eng", &[docs.path()], &[]);
    let borealis = query(&z, "eng", "Borealis", None);
    assert!(!relations(&borealis).iter().any(|(e, _)| e == "Atlas"), "{borealis}");
    assert!(relations(&query(&z, "eng", "Atlas", None)).contains(&pair("Redis", "depends_on")));
}

#[test]
fn structured_rows_map_to_entities_relations_and_typed_attributes_exactly() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    write(
        docs.path(),
        "staff.csv",
        "id,name,team,manager_id,salary,started,remote\n\
         E1,Alice Smith,Payments Team,E3,5200,2021-03-01,true\n\
         E2,Bob Li,Platform Team,E3,4800.5,2022-07-15,false\n\
         E3,Carol Wu,Payments Team,,9100,2015-01-10,true\n",
    );
    z.ingest("hr", &[docs.path()], &[]);
    let alice = query(&z, "hr", "Alice Smith", None);
    assert_eq!(alice["kind"], "record");
    assert_eq!(relations(&alice), BTreeSet::from([pair("Carol Wu", "manager"), pair("Payments Team", "team")]));
    assert_eq!(
        fields(&alice["attributes"], ["name", "value", "type"]),
        BTreeSet::from([
            ("remote".into(), "true".into(), "boolean".into()),
            ("salary".into(), "5200".into(), "number".into()),
            ("started".into(), "2021-03-01".into(), "date".into()),
        ])
    );
    // The key column's value is another name of the row.
    assert_eq!(query(&z, "hr", "E3", None)["entity"], "Carol Wu");
    let carol = query(&z, "hr", "Carol Wu", None);
    assert_eq!(
        fields(&carol["neighbors"], ["entity", "relation", "direction"]),
        BTreeSet::from([
            ("Alice Smith".into(), "manager".into(), "in".into()),
            ("Bob Li".into(), "manager".into(), "in".into()),
            ("Payments Team".into(), "team".into(), "out".into()),
        ])
    );
}

#[test]
fn exports_are_complete_and_well_formed() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    catalogue(docs.path());
    write(docs.path(), "quotes.md", "# Quotes\n\nThe \"O'Brien\" Unit depends on Borealis; its <config> lives in /etc/obrien/unit.conf.\n");
    z.ingest("eng", &[docs.path()], &[]);
    let dir = z.data.path();
    for (format, name) in [("cypher", "graph.cypher"), ("graphml", "graph.graphml"), ("csv", "csv")] {
        let out = dir.join(name);
        let done = z.run(&["graph", "export", "--kb", "eng", "--format", format, "--out", out.to_str().unwrap()]);
        assert!(done.status.success(), "{format}: {}", String::from_utf8_lossy(&done.stderr));
    }
    let nodes = std::fs::read_to_string(dir.join("csv/nodes.csv")).unwrap();
    let edges = std::fs::read_to_string(dir.join("csv/relationships.csv")).unwrap();
    assert_eq!(nodes.lines().next(), Some("id:ID,name,kind,:LABEL"));
    assert_eq!(edges.lines().next(), Some(":START_ID,:END_ID,:TYPE,weight:float,sources:string[]"));
    let (node_count, edge_count) = (nodes.lines().count() - 1, edges.lines().count() - 1);
    assert!(node_count > 20 && edge_count > 20, "{node_count} nodes, {edge_count} edges");

    // The Cypher script creates every node and relation once.
    let cypher = std::fs::read_to_string(dir.join("graph.cypher")).unwrap();
    assert_eq!(cypher.lines().filter(|l| l.starts_with("CREATE (:Entity")).count(), node_count);
    assert_eq!(cypher.lines().filter(|l| l.starts_with("MATCH (a:Entity")).count(), edge_count);
    assert!(
        cypher.contains("name: 'The \"O\\'Brien\" Unit'") || cypher.contains("name: '\"O\\'Brien\" Unit'") || cypher.contains("O\\'Brien"),
        "quotes are escaped"
    );

    // GraphML parses as XML with the same counts (Python's parser, not ours).
    let python = std::env::var("ZHIKU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; ns='{http://graphml.graphdrawing.org/xmlns}'; g=E.parse(sys.argv[1]).getroot().find(ns+'graph'); print(len(g.findall(ns+'node')), len(g.findall(ns+'edge')))",
            dir.join("graph.graphml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "GraphML does not parse: {}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), format!("{node_count} {edge_count}"));
}

/// The multi-hop questions of docs/knowledge-graph.md: each names one entity, and its answer is
/// in a document that does not, one or two relations away.
const MULTI_HOP: [(&str, &str); 3] = [
    ("Which team owns the service that Atlas depends on?", "borealis.md"),
    ("Who manages the team that owns Borealis?", "payments-team.md"),
    ("Which cluster hosts the database that Borealis uses?", "orion.md"),
];

/// The catalogue, with team managers and databases: twelve of each besides the ones asked about,
/// worded the same way.
fn catalogue_with_people_and_databases(dir: &Path) {
    catalogue(dir);
    write(dir, "borealis.md", "# Borealis\n\nBorealis is owned by the Payments Team. Borealis uses Orion DB for its queues.\n");
    write(dir, "payments-team.md", "# Payments Team\n\nThe Payments Team is managed by Dana Lee. The team meets on Mondays.\n");
    write(dir, "orion.md", "# Orion DB\n\nOrion DB runs on the Frankfurt Cluster. Backups of the database are taken nightly.\n");
    let people = ["Ann Ho", "Ben Ito", "Cy Ng", "Di Ma", "Ed Yu", "Flo Wu", "Gil Ko", "Hu Li", "Ivy Su", "Jo Xu", "Kai Lo", "Lu Fan"];
    let databases = ["Pyxis", "Quill", "Rigel", "Sable", "Tethys", "Umbra", "Vega", "Wren", "Xenon", "Yarrow", "Zircon", "Aster"];
    let clusters = ["Paris", "Dublin", "Madrid", "Oslo", "Vienna", "Prague", "Warsaw", "Lisbon", "Zurich", "Milan", "Athens", "Riga"];
    for i in 0..12 {
        let (team, person, db, cluster) = (TEAMS[i], people[i], databases[i], clusters[i]);
        write(
            dir,
            &format!("{}-team.md", team.to_lowercase()),
            format!("# {team} Team\n\nThe {team} Team is managed by {person}. The team meets on Mondays.\n"),
        );
        write(
            dir,
            &format!("{}.md", db.to_lowercase()),
            format!("# {db} DB\n\n{db} DB runs on the {cluster} Cluster. Backups of the database are taken nightly.\n"),
        );
    }
}

#[test]
fn graph_retrieval_answers_the_multi_hop_questions_hybrid_search_misses() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    catalogue_with_people_and_databases(docs.path());
    z.ingest("eng", &[docs.path()], &[]);
    let (mut hybrid_found, mut graph_found) = (Vec::new(), Vec::new());
    for (question, answer) in MULTI_HOP {
        let hybrid = Zhiku::sources(&z.search("eng", question, None, 3));
        let graph_hits = z.json(&["search", question, "--kb", "eng", "--top-k", "3", "--retrieval", "graph", "--json"])["hits"]
            .as_array()
            .unwrap()
            .clone();
        let graph = Zhiku::sources(&graph_hits);
        println!("{question}\n  hybrid: {hybrid:?}\n  graph:  {graph:?}");
        if hybrid.iter().any(|s| s.ends_with(answer)) {
            hybrid_found.push(question);
        }
        if graph.iter().any(|s| s.ends_with(answer)) {
            graph_found.push(question);
            assert!(graph_hits.iter().any(|h| h["via_graph"] == true && h["source"].as_str().unwrap().ends_with(answer)));
        }
    }
    assert_eq!(graph_found.len(), MULTI_HOP.len(), "graph retrieval answered only {graph_found:?}");
    // The premise: these are questions hybrid search alone does not answer in its top 3.
    assert!(hybrid_found.is_empty(), "hybrid search answered {hybrid_found:?} by itself");
}

#[test]
fn an_encrypted_store_keeps_no_entity_name_in_clear() {
    let z = Zhiku::new();
    let key = z.data.path().join("..").join(format!("key-{}", std::process::id()));
    std::fs::write(&key, "7".repeat(64)).unwrap();
    let z = z.with_env("ZHIKU_STORE_ENCRYPTION_KEY_FILE", key.to_str().unwrap());
    let docs = tempfile::tempdir().unwrap();
    catalogue(docs.path());
    z.ingest("eng", &[docs.path()], &[]);
    assert!(relations(&query(&z, "eng", "Borealis", None)).contains(&pair("Payments Team", "owns")));
    let conn = rusqlite::Connection::open(z.data.path().join("zhiku.db")).unwrap();
    let leaked: i64 = conn
        .query_row(
            "SELECT count(*) FROM graph_entity WHERE name LIKE '%Borealis%' OR key LIKE '%borealis%' OR fold LIKE '%borealis%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let relations_in_clear: i64 = conn.query_row("SELECT count(*) FROM graph_edge WHERE relation = 'owns'", [], |r| r.get(0)).unwrap();
    assert_eq!((leaked, relations_in_clear), (0, 0));
    let _ = std::fs::remove_file(key);
}

#[test]
fn the_model_extractor_writes_only_triples_the_text_supports_and_caches_them() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    write(docs.path(), "atlas.md", "# Atlas\n\nThe Atlas service depends on Borealis.\n");
    write(docs.path(), "borealis.md", "# Borealis\n\nBorealis is owned by the Payments Team. Borealis uses Orion DB.\n");
    z.ingest("eng", &[docs.path()], &[]);
    let built = z.json(&["graph", "build", "--kb", "eng", "--rebuild", "--extractor", "llm", "--json"]);
    let model = &built["model"];
    let chunks = built["chunks"].as_u64().unwrap();
    assert_eq!(chunks, 2);
    assert_eq!(model["read"].as_u64().unwrap() + model["fallback"].as_u64().unwrap(), chunks, "{built}");
    // Whatever the model wrote, every relation's ends are named in the document that states it:
    // the grammar fixes the shape, the check against the text keeps inventions out.
    let (_, edges) = export_csv(&z, "eng", "llm-csv");
    assert!(!edges.is_empty(), "no relation at all");
    for [from, relation, to, source] in &edges {
        let text = std::fs::read_to_string(source).unwrap().to_lowercase();
        for end in [from, to] {
            assert!(text.contains(&end.to_lowercase()), "'{end}' of {from} {relation} {to} is not in {source}");
        }
    }
    // Again: every chunk from the cache, the model not asked.
    let again = z.json(&["graph", "build", "--kb", "eng", "--rebuild", "--extractor", "llm", "--json"]);
    assert_eq!(again["model"]["cached"].as_u64().unwrap(), chunks, "{again}");
    assert_eq!(again["relations"], built["relations"]);
}

#[test]
fn communities_group_related_entities_and_feed_global_retrieval() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    catalogue_with_people_and_databases(docs.path());
    z.ingest("eng", &[docs.path()], &["group:staff"]);
    // Borealis's page is the board's only.
    let secret = tempfile::tempdir().unwrap();
    write(secret.path(), "borealis.md", "# Borealis\n\nBorealis is owned by the Payments Team. Borealis uses Orion DB for its queues.\n");
    std::fs::remove_file(docs.path().join("borealis.md")).unwrap();
    z.json(&["ingest", docs.path().to_str().unwrap(), "--kb", "eng", "--sync", "--acl", "group:staff", "--json"]);
    z.ingest("eng", &[secret.path()], &["group:board"]);
    assert!(z.run(&["group", "add-member", "staff", "carol"]).status.success());

    let all = z.json(&["graph", "communities", "--kb", "eng", "--limit", "100", "--json"]);
    let communities = all["communities"].as_array().unwrap();
    let members =
        |c: &Value| -> BTreeSet<String> { c["entities"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect() };
    let payments = communities.iter().find(|c| members(c).contains("Payments Team")).expect("a community with the Payments Team");
    assert!(members(payments).contains("Borealis") || members(payments).contains("Dana Lee"), "{payments}");
    for c in communities {
        let m = members(c);
        assert!(!(m.contains("Borealis") && m.contains("Cirrus")), "unrelated services in one community: {m:?}");
    }
    // Carol's view leaves out what only the board's page says.
    let carol = z.json(&["graph", "communities", "--kb", "eng", "--limit", "100", "--as", "carol", "--json"]);
    let text = carol.to_string();
    assert!(
        !text.contains("owns Borealis") && !text.contains("uses Orion DB") && !text.contains(secret.path().to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("Dana Lee"), "{text}");

    // A global question about the Payments Team's world reaches documents that do not name it.
    let question = "Give me an overview of everything around the Payments Team";
    let global =
        z.json(&["search", question, "--kb", "eng", "--top-k", "6", "--retrieval", "global", "--json"])["hits"].as_array().unwrap().clone();
    let sources = Zhiku::sources(&global);
    println!("global: {sources:?}");
    assert!(sources.iter().any(|s| s.ends_with("payments-team.md")), "{sources:?}");
    assert!(sources.iter().any(|s| s.ends_with("borealis.md")), "{sources:?}");
    assert!(global.iter().any(|h| h["via_graph"] == true));
}

#[test]
fn names_spelt_nearly_alike_with_the_same_meaning_are_one_entity() {
    let z = Zhiku::new();
    let docs = tempfile::tempdir().unwrap();
    write(docs.path(), "atlas.md", "# Atlas\n\nThe Atlas service depends on PostgreSQL.\n");
    write(
        docs.path(),
        "db.md",
        "# Databases\n\nPostgres runs on the Frankfurt Cluster. Server01 runs on the Paris Cluster. Server02 runs on the Oslo Cluster.\n",
    );
    z.ingest("eng", &[docs.path()], &[]);
    // Two edits apart and alike in meaning (all-MiniLM-L6-v2 puts them at 0.90): one entity.
    let postgres = query(&z, "eng", "PostgreSQL", None);
    let rels = relations(&postgres);
    assert!(rels.contains(&pair("Frankfurt Cluster", "runs_on")) && rels.contains(&pair("Atlas", "depends_on")), "{postgres}");
    assert_eq!(postgres["aliases"], serde_json::json!(["Postgres"]));
    // One digit apart: two machines.
    let server = query(&z, "eng", "Server01", None);
    assert_eq!(relations(&server), BTreeSet::from([pair("Paris Cluster", "runs_on")]), "{server}");
    // Removing the document that spelt it the other way undoes the merge.
    std::fs::remove_file(docs.path().join("db.md")).unwrap();
    z.json(&["ingest", docs.path().to_str().unwrap(), "--kb", "eng", "--sync", "--json"]);
    let alone = query(&z, "eng", "PostgreSQL", None);
    assert_eq!(alone["aliases"], serde_json::json!([]));
    assert_eq!(relations(&alone), BTreeSet::from([pair("Atlas", "depends_on")]));
}
