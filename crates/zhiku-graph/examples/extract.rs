//! Extraction throughput of the local extractor over real chunks: reads `zhiku parse --json`
//! output (one or more files of it) and prints chunks per second, entities and relations, per
//! language. Used by bench/graph.sh.
//!
//! cargo run --release -p zhiku-graph --example extract -- parsed.json [more.json…] [--rounds N]

use std::collections::{BTreeMap, HashSet};

use zhiku_graph::{ChunkText, DocumentText, Extractor, LocalExtractor};

/// (language, format, chunks as (heading path, text)) of one parsed file.
type ParsedFile = (String, String, Vec<(Vec<String>, String)>);

fn main() {
    let mut rounds = 3usize;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rounds" {
            rounds = args.next().and_then(|n| n.parse().ok()).expect("--rounds N");
        } else {
            inputs.push(a);
        }
    }
    let mut docs: Vec<ParsedFile> = Vec::new();
    for path in &inputs {
        let parsed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("readable input")).expect("zhiku parse --json output");
        for f in parsed["files"].as_array().into_iter().flatten() {
            let chunks = f["chunks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let path = c["heading_path"].as_array().into_iter().flatten().filter_map(|h| h.as_str().map(str::to_string)).collect();
                    (path, c["text"].as_str().unwrap_or("").to_string())
                })
                .collect();
            docs.push((f["language"].as_str().unwrap_or("und").into(), f["format"].as_str().unwrap_or("text").into(), chunks));
        }
    }
    let mut by_language: BTreeMap<String, (usize, f64, usize, usize, HashSet<String>)> = BTreeMap::new();
    for (language, format, chunks) in &docs {
        let view =
            DocumentText { format, language, chunks: chunks.iter().map(|(path, text)| ChunkText { text, heading_path: path }).collect() };
        let mut best = f64::MAX;
        let mut found = Vec::new();
        for _ in 0..rounds {
            let started = std::time::Instant::now();
            found = LocalExtractor.extract(&view);
            best = best.min(started.elapsed().as_secs_f64());
        }
        let slot = by_language.entry(language.clone()).or_default();
        slot.0 += chunks.len();
        slot.1 += best;
        slot.2 += found.iter().map(|e| e.relations.iter().filter(|r| r.relation != zhiku_graph::RELATED_TO).count()).sum::<usize>();
        slot.3 += found.iter().map(|e| e.relations.len()).sum::<usize>();
        for e in &found {
            slot.4.extend(e.mentions.iter().map(|m| zhiku_graph::resolve::entity_key(&m.name, m.kind)));
        }
    }
    println!("| language | chunks | seconds | chunks/s | distinct entities | stated relations | all relations |");
    println!("|---|---|---|---|---|---|---|");
    for (language, (chunks, seconds, stated, all, entities)) in by_language {
        println!("| {language} | {chunks} | {seconds:.3} | {:.0} | {} | {stated} | {all} |", chunks as f64 / seconds, entities.len());
    }
}
