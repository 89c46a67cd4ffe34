//! One knowledge base on both backends: the embedded store and a PostgreSQL copy of it made by
//! `zhiku migrate`. Measured inside one process, with one embedding model loaded once.
//!
//! We will: time hybrid search (embedding + vector + keyword + fusion + fetching the chunks) on
//! each backend for every query of a file (after a warm-up pass), compare the passages the two
//! return, and measure pgvector's HNSW recall@10 against an exact scan of the same vectors.
//!
//! ```sh
//! cargo run --release --example backends -- DATA_DIR KB postgres://USER@HOST/DB QUERIES.txt
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zhiku_core::{Caller, Embedder};
use zhiku_models::BertEmbedder;
use zhiku_pg::PgStore;
use zhiku_rag::cluster::ClusterEngine;
use zhiku_rag::{Engine, RagConfig, SearchHit};
use zhiku_store::Store;

fn percentiles(mut millis: Vec<f64>) -> String {
    millis.sort_by(f64::total_cmp);
    let pct = |p: f64| millis[((millis.len() - 1) as f64 * p).round() as usize];
    let mean = millis.iter().sum::<f64>() / millis.len() as f64;
    format!("mean_ms={mean:.1} p50_ms={:.1} p95_ms={:.1}", pct(0.5), pct(0.95))
}

/// A passage by where it is, the same on both backends (chunk ids are each store's own).
fn key(source: &str, char_start: usize) -> (String, usize) {
    (source.to_string(), char_start)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, kb, url, queries] = args.as_slice() else {
        eprintln!("usage: backends DATA_DIR KB DATABASE_URL QUERIES.txt");
        std::process::exit(2);
    };
    let data = PathBuf::from(data);
    let store = Arc::new(Store::open(&data.join("zhiku.db"))?);
    let embedder: Arc<dyn Embedder> = Arc::new(BertEmbedder::load(&data.join("models/all-MiniLM-L6-v2"))?);
    let embedded = Engine::new(&data, store.clone(), embedder.clone(), RagConfig::default());
    let shared = ClusterEngine::connect(url, embedder.clone(), RagConfig::default())?;
    let mut pg = PgStore::connect(url)?;
    let pg_kb = pg.kb(kb)?;
    let queries: Vec<String> = std::fs::read_to_string(queries)?.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();

    for q in &queries {
        embedded.search(kb, q, &Caller::Admin, 5)?;
        shared.search(kb, q, &Caller::Admin, 5)?;
    }
    let (mut here_ms, mut there_ms, mut common, mut total) = (Vec::new(), Vec::new(), 0, 0);
    let keys = |hits: &[SearchHit]| hits.iter().map(|h| key(&h.source, h.char_start)).collect::<BTreeSet<_>>();
    for q in &queries {
        let started = Instant::now();
        let here = embedded.search(kb, q, &Caller::Admin, 5)?;
        here_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let there = shared.search(kb, q, &Caller::Admin, 5)?;
        there_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        common += keys(&here).intersection(&keys(&there)).count();
        total += here.len();
    }

    // Recall@10 of pgvector's index scan against an exact scan over the embedded store's vectors.
    let chunks = store.chunks(kb)?;
    let (mut found, mut wanted, mut index_ms) = (0, 0, Vec::new());
    for q in &queries {
        let v = embedder.embed_queries(&[q.as_str()])?.pop().unwrap_or_default();
        let mut exact: Vec<(f32, (String, usize))> =
            chunks.iter().map(|c| (zhiku_index::dot(&v, &c.embedding), key(&c.source, c.chunk.char_start))).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: BTreeSet<_> = exact.into_iter().take(10).map(|e| e.1).collect();
        let started = Instant::now();
        let ids: Vec<u64> = pg.vector_search(&pg_kb, &v, &Caller::Admin, 10)?.into_iter().map(|h| h.0).collect();
        index_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let got: BTreeSet<_> = pg.chunks_by_id(&pg_kb, &ids)?.iter().map(|c| key(&c.source, c.chunk.char_start)).collect();
        found += truth.intersection(&got).count();
        wanted += truth.len();
    }
    println!("queries={} chunks={}", queries.len(), chunks.len());
    println!("embedded_hybrid {}", percentiles(here_ms));
    println!("postgres_hybrid {}", percentiles(there_ms));
    println!("postgres_vector_only {}", percentiles(index_ms));
    println!("overlap_at_5={common}/{total} pgvector_recall_at_10={found}/{wanted}");
    Ok(())
}
