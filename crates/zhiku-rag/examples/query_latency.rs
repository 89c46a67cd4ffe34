//! Hybrid-search latency over an existing knowledge base, measured inside one process.
//!
//! We will: open the store and the embedding model of a data directory, run every query of a
//! file once to warm up, then time each query again (embedding + vector search + BM25 + fusion +
//! fetching the chunks) and print the distribution.
//!
//! ```sh
//! cargo run --release --example query_latency -- DATA_DIR KB QUERIES.txt [USER]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zhiku_core::Caller;
use zhiku_models::BertEmbedder;
use zhiku_rag::{Engine, RagConfig};
use zhiku_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, kb, queries, rest @ ..] = args.as_slice() else {
        eprintln!("usage: query_latency DATA_DIR KB QUERIES.txt [USER]");
        std::process::exit(2);
    };
    let data = PathBuf::from(data);
    let store = Arc::new(Store::open(&data.join("zhiku.db"))?);
    let embedder = Arc::new(BertEmbedder::load(&data.join("models/all-MiniLM-L6-v2"))?);
    let engine = Engine::new(&data, store, embedder, RagConfig::default());
    let caller = match rest.first() {
        Some(user) => engine.caller_for(user)?,
        None => Caller::Admin,
    };
    let queries: Vec<String> = std::fs::read_to_string(queries)?.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();

    for q in &queries {
        engine.search(kb, q, &caller, 5)?;
    }
    let mut millis = Vec::with_capacity(queries.len());
    for q in &queries {
        let started = Instant::now();
        let hits = engine.search(kb, q, &caller, 5)?;
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(hits);
    }
    millis.sort_by(f64::total_cmp);
    let pct = |p: f64| millis[((millis.len() - 1) as f64 * p).round() as usize];
    let mean = millis.iter().sum::<f64>() / millis.len() as f64;
    println!("queries={} mean_ms={mean:.1} p50_ms={:.1} p95_ms={:.1} max_ms={:.1}", millis.len(), pct(0.5), pct(0.95), pct(1.0));
    Ok(())
}
