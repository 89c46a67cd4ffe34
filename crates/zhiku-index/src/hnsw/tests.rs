use super::*;
use crate::IdFilter;

/// Clustered data: real embeddings are not uniform, and clusters are what trips a graph whose
/// neighbour selection is naive. The same 20 centres for every call (queries come from the
/// distribution of the data); `seed` varies the points around them.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let generator = |mut state: u64| {
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        }
    };
    let mut centre = generator(1);
    let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| centre() * 4.0).collect()).collect();
    let mut noise = generator(seed);
    (0..n).flat_map(|i| centres[(i * 7 + seed as usize) % centres.len()].iter().map(|c| c + noise()).collect::<Vec<_>>()).collect()
}

fn exact(index: &Hnsw, query: &[f32], k: usize, allowed: impl Fn(u32) -> bool) -> Vec<u32> {
    let q = index.prepare_query(query);
    let mut all: Vec<(f32, u32)> = (0..index.len() as u32).filter(|n| allowed(*n)).map(|n| (index.distance(&q, n), n)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, n)| n).collect()
}

fn recall(found: &[(u32, f32)], truth: &[u32]) -> f32 {
    found.iter().filter(|(n, _)| truth.contains(n)).count() as f32 / truth.len().max(1) as f32
}

#[test]
fn recall_against_exact_search_for_every_metric() {
    let (n, dim) = (3000, 24);
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let data = clustered(n, dim, 7);
        let queries = clustered(100, dim, 99);
        let config = HnswConfig { m: 12, ef_construction: 100, metric, ..Default::default() };
        let index = Hnsw::build(dim, data, config, 2);
        assert_eq!(index.len(), n);
        let mut total = 0.0;
        for q in queries.chunks(dim) {
            let found = index.search(q, 10, 64, None);
            assert_eq!(found.len(), 10);
            assert!(found.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
            total += recall(&found, &exact(&index, q, 10, |_| true));
        }
        let mean = total / 100.0;
        assert!(mean >= 0.95, "{metric:?}: recall@10 {mean}");
    }
}

#[test]
fn filtered_search_returns_only_allowed_nodes_and_keeps_recall() {
    let (n, dim) = (4000, 16);
    let index = Hnsw::build(dim, clustered(n, dim, 3), HnswConfig { m: 12, ef_construction: 100, ..Default::default() }, 2);
    let queries = clustered(50, dim, 5);
    // From a filter that lets half through (walked in the graph) to one that lets 1% through
    // (scanned), and one that lets nothing through.
    for step in [2u32, 5, 30, 100, u32::MAX] {
        let allowed = |id: u32| id % step == 1;
        let filter = IdFilter::from_fn(n, allowed);
        let mut total = 0.0;
        for q in queries.chunks(dim) {
            let found = index.search(q, 10, 64, Some(&filter));
            assert!(found.iter().all(|(id, _)| allowed(*id)), "step {step}: a node outside the filter came back");
            let truth = exact(&index, q, 10, allowed);
            assert_eq!(found.len(), truth.len(), "step {step}");
            total += if truth.is_empty() { 1.0 } else { recall(&found, &truth) };
        }
        let mean = total / 50.0;
        assert!(mean >= 0.95, "step {step}: filtered recall@10 {mean}");
    }
}

#[test]
fn nodes_added_one_by_one_are_found_like_a_parallel_build() {
    let (n, dim) = (1500, 8);
    let data = clustered(n, dim, 11);
    let mut one_by_one = Hnsw::new(dim, HnswConfig { m: 8, ef_construction: 64, metric: Metric::L2, ..Default::default() });
    for (i, v) in data.chunks(dim).enumerate() {
        assert_eq!(one_by_one.add(v), i as u32);
    }
    for (i, v) in data.chunks(dim).enumerate().step_by(97) {
        assert_eq!(one_by_one.search(v, 1, 32, None)[0].0, i as u32, "a stored vector is its own nearest");
    }
    assert!(one_by_one.bytes() >= n * dim * 4);
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let empty = Hnsw::build(4, Vec::new(), HnswConfig::default(), 1);
    assert!(empty.search(&[0.0; 4], 5, 10, None).is_empty());
    let one = Hnsw::build(4, vec![1.0, 0.0, 0.0, 0.0], HnswConfig::default(), 1);
    assert_eq!(one.search(&[1.0, 0.0, 0.0, 0.0], 5, 10, None), vec![(0, 0.0)]);
    assert!(one.search(&[1.0, 0.0], 5, 10, None).is_empty(), "wrong dimension");
    // Many identical vectors: the heuristic must still connect them.
    let same = Hnsw::build(2, [0.5f32, 0.5].repeat(300), HnswConfig { m: 4, ..Default::default() }, 2);
    assert_eq!(same.search(&[0.5, 0.5], 10, 20, None).len(), 10);
}

/// The true nearest ids from the raw data, by the metric (on normalised vectors for cosine).
fn exact_f32(data: &[f32], dim: usize, metric: Metric, query: &[f32], k: usize, allowed: impl Fn(u32) -> bool) -> Vec<u32> {
    let prepare = |v: &[f32]| {
        let mut v = v.to_vec();
        if metric == Metric::Cosine {
            crate::distance::normalize(&mut v);
        }
        v
    };
    let q = prepare(query);
    let mut all: Vec<(f32, u32)> = data
        .chunks(dim)
        .enumerate()
        .filter(|(i, _)| allowed(*i as u32))
        .map(|(i, v)| (metric.distance(&q, &prepare(v)), i as u32))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, n)| n).collect()
}

#[test]
fn quantized_storage_with_rescoring_keeps_recall_at_a_fraction_of_the_memory() {
    let (n, dim) = (3000, 32);
    let data = clustered(n, dim, 7);
    let queries = clustered(60, dim, 99);
    let full = |node: u32| data[node as usize * dim..(node as usize + 1) * dim].to_vec();
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let f32_bytes = Hnsw::build(dim, data.clone(), HnswConfig { m: 12, ef_construction: 100, metric, ..Default::default() }, 2).bytes();
        for (quant, share) in [(Quant::F16, 0.5), (Quant::Int8, 0.25)] {
            let config = HnswConfig { m: 12, ef_construction: 100, metric, quant, ..Default::default() };
            let index = Hnsw::build(dim, data.clone(), config, 2);
            assert_eq!(index.quant(), quant);
            let vector_bytes = n * dim * 4;
            let saved = f32_bytes - index.bytes();
            assert!(saved as f64 >= (1.0 - share) * vector_bytes as f64 * 0.95, "{metric:?} {quant:?}: only {saved} bytes saved");
            let (mut plain, mut rescored) = (0.0, 0.0);
            for q in queries.chunks(dim) {
                let truth = exact_f32(&data, dim, metric, q, 10, |_| true);
                plain += recall(&index.search(q, 10, 64, None), &truth);
                let found = index.search_rescored(q, 10, 64, None, 4, &full);
                assert!(found.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
                rescored += recall(&found, &truth);
            }
            let (plain, rescored) = (plain / 60.0, rescored / 60.0);
            assert!(rescored >= 0.95, "{metric:?} {quant:?}: re-scored recall@10 {rescored} (plain {plain})");
            assert!(rescored >= plain, "{metric:?} {quant:?}: re-scoring lost recall ({plain} → {rescored})");
        }
    }
}

#[test]
fn quantized_index_filters_grows_and_reloads() {
    let (n, dim) = (2500, 16);
    let data = clustered(n, dim, 3);
    let config = HnswConfig { m: 10, ef_construction: 80, metric: Metric::L2, quant: Quant::Int8, ..Default::default() };
    let mut index = Hnsw::build(dim, data[..2000 * dim].to_vec(), config, 2);
    for v in data[2000 * dim..].chunks(dim) {
        index.add(v);
    }
    let full = |node: u32| data[node as usize * dim..(node as usize + 1) * dim].to_vec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int8.hnsw");
    index.save(&path, 3).unwrap();
    let (loaded, _) = Hnsw::load(&path).unwrap();
    assert_eq!(loaded.quant(), Quant::Int8);
    assert_eq!(loaded.bytes(), index.bytes());
    for step in [3u32, 100] {
        let allowed = |id: u32| id % step == 2;
        let filter = IdFilter::from_fn(n, allowed);
        let mut total = 0.0;
        for q in clustered(40, dim, 5).chunks(dim) {
            let found = loaded.search_rescored(q, 10, 64, Some(&filter), 4, &full);
            assert_eq!(found, index.search_rescored(q, 10, 64, Some(&filter), 4, &full), "reloaded index answers the same");
            assert!(found.iter().all(|(id, _)| allowed(*id)), "step {step}: a node outside the filter came back");
            total += recall(&found, &exact_f32(&data, dim, Metric::L2, q, 10, allowed));
        }
        assert!(total / 40.0 >= 0.95, "step {step}: filtered recall@10 {}", total / 40.0);
    }
}
