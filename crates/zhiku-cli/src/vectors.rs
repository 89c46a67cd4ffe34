//! `zhiku vectors bench`: the vector engine measured on its own, over .npy matrices, for
//! comparison with other libraries (bench/vectors.sh).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde_json::json;
use zhiku_index::{ExactIndex, Hnsw, HnswConfig, IdFilter, IvfPq, IvfPqConfig, Metric};

use crate::cli::VectorsBenchArgs;
use crate::npy;

enum Index {
    Exact(ExactIndex),
    Hnsw(Hnsw, usize),
    /// With nprobe and the re-rank factor.
    IvfPq(IvfPq, usize, usize),
}

impl Index {
    fn search(&self, query: &[f32], k: usize, filter: Option<&IdFilter>, full: &(dyn Fn(u32) -> Vec<f32> + Sync)) -> Vec<(u32, f32)> {
        match self {
            Index::Exact(index) => index.search(query, k, filter),
            Index::Hnsw(index, ef) => index.search(query, k, *ef, filter),
            Index::IvfPq(index, nprobe, 0) => index.search(query, k, *nprobe, filter, 1, None),
            Index::IvfPq(index, nprobe, rerank) => index.search(query, k, *nprobe, filter, *rerank, Some(full)),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Index::Exact(index) => index.bytes(),
            Index::Hnsw(index, _) => index.bytes(),
            Index::IvfPq(index, ..) => index.bytes(),
        }
    }
}

pub fn bench(args: VectorsBenchArgs) -> Result<ExitCode> {
    let metric = Metric::parse(&args.metric).unwrap_or_default();
    if args.quant != "f32" {
        bail!("--quant {} is not built yet; vectors are stored as f32", args.quant);
    }
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let base = npy::read_f32(&args.base)?;
    let queries = npy::read_f32(&args.queries)?;
    if base.cols != queries.cols {
        bail!("the base has dimension {} and the queries {}: they must match", base.cols, queries.cols);
    }
    let filter = match args.filter_fraction {
        None => None,
        Some(f) if f > 0.0 && f <= 1.0 => {
            let step = (1.0 / f).round().max(1.0) as u32;
            Some(IdFilter::from_fn(base.rows, |id| id % step == 0))
        }
        Some(f) => bail!("--filter-fraction must be in (0, 1], got {f}"),
    };
    let threads = args.threads.max(1);
    let started = Instant::now();
    let (mut load_s, mut build_s) = (0.0, 0.0);
    // Only IVF-PQ re-ranks from the full vectors, which stay outside the index.
    let full_vectors = if args.index == "ivfpq" { base.data.clone() } else { Vec::new() };
    let dim = base.cols;
    let full = |id: u32| full_vectors[id as usize * dim..(id as usize + 1) * dim].to_vec();
    let index = match (args.index.as_str(), &args.load) {
        ("ivfpq", Some(path)) => {
            let index = IvfPq::load(path)?;
            if index.len() != base.rows || index.dimension() != base.cols || index.metric() != metric {
                bail!("{} does not index this --base with this --metric", path.display());
            }
            load_s = started.elapsed().as_secs_f64();
            let nprobe = args.nprobe.unwrap_or((index.lists() / 16).max(1));
            Index::IvfPq(index, nprobe, args.rerank)
        }
        ("ivfpq", None) => {
            let mut config = IvfPqConfig::for_size(base.rows, base.cols, metric);
            config.nlist = args.nlist.unwrap_or(config.nlist);
            config.m = args.pq_m.unwrap_or(config.m);
            if config.m == 0 || base.cols % config.m != 0 {
                bail!("--pq-m {} does not divide the dimension {}", config.m, base.cols);
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
            let index = pool.install(|| IvfPq::build(base.cols, &base.data, config));
            build_s = started.elapsed().as_secs_f64();
            if let Some(path) = &args.save {
                index.save(path)?;
            }
            let nprobe = args.nprobe.unwrap_or((config.nlist / 16).max(1));
            Index::IvfPq(index, nprobe, args.rerank)
        }
        ("flat", _) => {
            let index = ExactIndex::new(base.cols, base.data, metric);
            build_s = started.elapsed().as_secs_f64();
            Index::Exact(index)
        }
        (_, Some(path)) => {
            let (index, _) = Hnsw::load(path)?;
            if index.len() != base.rows || index.dimension() != base.cols || index.metric() != metric {
                bail!(
                    "{} holds {} × {} vectors ({:?}), not this --base and --metric",
                    path.display(),
                    index.len(),
                    index.dimension(),
                    index.metric()
                );
            }
            load_s = started.elapsed().as_secs_f64();
            Index::Hnsw(index, args.ef_search)
        }
        _ => {
            let config = HnswConfig { m: args.m, ef_construction: args.ef_construction, metric, ..Default::default() };
            let index = Hnsw::build(base.cols, base.data, config, threads);
            build_s = started.elapsed().as_secs_f64();
            if let Some(path) = &args.save {
                index.save(path, 0)?;
            }
            Index::Hnsw(index, args.ef_search)
        }
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let started = Instant::now();
    let found: Vec<Vec<(u32, f32)>> =
        pool.install(|| queries.data.par_chunks(queries.cols.max(1)).map(|q| index.search(q, args.k, filter.as_ref(), &full)).collect());
    let query_s = started.elapsed().as_secs_f64();
    let mut ids = Vec::with_capacity(queries.rows * args.k);
    for hits in &found {
        ids.extend(hits.iter().map(|(id, _)| i64::from(*id)));
        ids.extend(std::iter::repeat_n(-1, args.k - hits.len()));
    }
    npy::write_i64(&args.out, queries.rows, args.k, &ids)?;
    let qps = queries.rows as f64 / query_s.max(1e-9);
    let summary = json!({ "build_s": build_s, "load_s": load_s, "query_s": query_s, "qps": qps, "index_bytes": index.bytes() });
    if args.json {
        println!("{summary}");
    } else {
        eprintln!(
            "{} vectors × {}: built in {build_s:.2}s; {} queries in {query_s:.3}s ({qps:.0}/s); index {:.1} MiB",
            base.rows,
            base.cols,
            queries.rows,
            index.bytes() as f64 / (1 << 20) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}
