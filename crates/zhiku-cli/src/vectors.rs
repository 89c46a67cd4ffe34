//! `zhiku vectors bench`: the vector engine measured on its own, over .npy matrices, for
//! comparison with other libraries (bench/vectors.sh).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::json;
use zhiku_index::{ExactIndex, Hnsw, HnswConfig, IdFilter, IvfPq, IvfPqConfig, MappedRows, Metric, Quant};

use crate::cli::VectorsBenchArgs;
use crate::npy;

enum Index {
    Exact(ExactIndex),
    /// With ef and, for f16/int8 storage, the re-score factor.
    Hnsw(Hnsw, usize, usize),
    /// With nprobe and the re-rank factor.
    IvfPq(IvfPq, usize, usize),
}

impl Index {
    fn search(&self, query: &[f32], k: usize, filter: Option<&IdFilter>, full: &(dyn Fn(u32) -> Vec<f32> + Sync)) -> Vec<(u32, f32)> {
        match self {
            Index::Exact(index) => index.search(query, k, filter),
            Index::Hnsw(index, ef, 0) => index.search(query, k, *ef, filter),
            Index::Hnsw(index, ef, rescore) => index.search_rescored(query, k, *ef, filter, *rescore, full),
            Index::IvfPq(index, nprobe, 0) => index.search(query, k, *nprobe, filter, 1, None),
            Index::IvfPq(index, nprobe, rerank) => index.search(query, k, *nprobe, filter, *rerank, Some(full)),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Index::Exact(index) => index.bytes(),
            Index::Hnsw(index, ..) => index.bytes(),
            Index::IvfPq(index, ..) => index.bytes(),
        }
    }
}

pub fn bench(args: VectorsBenchArgs) -> Result<ExitCode> {
    let metric = Metric::parse(&args.metric).unwrap_or_default();
    let quant = Quant::parse(&args.quant).unwrap_or_default();
    if quant != Quant::F32 && args.index != "hnsw" {
        bail!("--quant {} applies to --index hnsw (IVF-PQ has its own codes, flat is exact)", args.quant);
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
    // Re-ranking reads the full vectors, which are not part of the index: mapped from the
    // --base file (float32) or, for float64 input, a float32 copy written next to the output.
    let rerank = if args.index == "ivfpq" || quant != Quant::F32 { args.rerank } else { 0 };
    let full_rows = if rerank > 0 { Some(full_vectors(&args, &base)?) } else { None };
    let full = |id: u32| full_rows.as_ref().map_or_else(Vec::new, |rows| rows.row(id));
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
            let rescore = if index.quant() == Quant::F32 { 0 } else { args.rerank };
            Index::Hnsw(index, args.ef_search, rescore)
        }
        _ => {
            let config = HnswConfig { m: args.m, ef_construction: args.ef_construction, metric, quant, ..Default::default() };
            let index = Hnsw::build(base.cols, base.data, config, threads);
            build_s = started.elapsed().as_secs_f64();
            if let Some(path) = &args.save {
                index.save(path, 0)?;
            }
            Index::Hnsw(index, args.ef_search, rerank)
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

fn full_vectors(args: &VectorsBenchArgs, base: &npy::Matrix) -> Result<MappedRows> {
    if let Some(offset) = base.f32_offset {
        return Ok(MappedRows::open(&args.base, offset, base.rows, base.cols)?);
    }
    let copy = args.out.with_extension("base-f32");
    let bytes: Vec<u8> = base.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&copy, bytes).with_context(|| format!("cannot write {}", copy.display()))?;
    let rows = MappedRows::open(&copy, 0, base.rows, base.cols);
    // The mapping outlives the name.
    let _ = std::fs::remove_file(&copy);
    Ok(rows?)
}
