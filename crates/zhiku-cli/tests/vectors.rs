//! `zhiku vectors bench`, the vector engine's outside contract: .npy in, int64 ids out, timings
//! as JSON; HNSW against the exact index on the same data.

mod common;

use std::path::Path;

use common::Zhiku;

fn write_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(data.iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// The int64 matrix written by --out, as rows.
fn read_ids(path: &Path, k: usize) -> Vec<Vec<i64>> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<i8'"), "{header}");
    let ids: Vec<i64> = bytes[10 + header_len..].chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    ids.chunks(k).map(<[i64]>::to_vec).collect()
}

fn data(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..rows * cols)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Ten clusters, so neighbours mean something.
            ((i / cols) % 10) as f32 + ((state >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

#[test]
fn hnsw_finds_what_the_exact_index_finds_and_honours_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = (dir.path().join("base.npy"), dir.path().join("q.npy"));
    write_npy(&base, 3000, 32, &data(3000, 32, 1));
    write_npy(&queries, 50, 32, &data(50, 32, 2));
    let z = Zhiku::new();
    let run = |extra: &[&str], out: &str| {
        let out_path = dir.path().join(out);
        let mut args = vec!["vectors", "bench", "--base", base.to_str().unwrap(), "--queries", queries.to_str().unwrap()];
        args.extend_from_slice(&["--k", "10", "--metric", "l2", "--json", "--out", out_path.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let summary = z.json(&args);
        for key in ["build_s", "query_s", "qps", "index_bytes"] {
            assert!(summary[key].as_f64().is_some(), "{key} missing: {summary}");
        }
        (summary, read_ids(&out_path, 10))
    };
    let (_, exact) = run(&["--index", "flat"], "flat.npy");
    let index_file = dir.path().join("index.hnsw");
    let (summary, approx) = run(&["--index", "hnsw", "--threads", "2", "--save", index_file.to_str().unwrap()], "hnsw.npy");
    assert_eq!(exact.len(), 50);
    let hits: usize = exact.iter().zip(&approx).map(|(e, a)| a.iter().filter(|id| e.contains(id)).count()).sum();
    assert!(hits as f64 / 500.0 >= 0.9, "recall@10 {}", hits as f64 / 500.0);
    assert!(summary["index_bytes"].as_u64().unwrap() >= 3000 * 32 * 4);

    // The saved index answers the same without a build.
    let (loaded, again) = run(&["--load", index_file.to_str().unwrap()], "loaded.npy");
    assert_eq!(again, approx);
    assert_eq!(loaded["build_s"], 0.0);

    // Only every 10th id may come back; the few that may are all found.
    let (_, filtered) = run(&["--filter-fraction", "0.1"], "filtered.npy");
    assert!(filtered.iter().flatten().all(|id| *id % 10 == 0), "{filtered:?}");
    let (_, filtered_exact) = run(&["--index", "flat", "--filter-fraction", "0.1"], "filtered-flat.npy");
    assert_eq!(filtered, filtered_exact);

    // Quantized storage: a fraction of the vectors' memory, re-scored back to the exact answers.
    let f32_bytes = summary["index_bytes"].as_u64().unwrap();
    for (quant, saved) in [("f16", 0.45), ("int8", 0.7)] {
        let (summary, found) = run(&["--quant", quant, "--rerank", "4"], &format!("{quant}.npy"));
        let hits: usize = exact.iter().zip(&found).map(|(e, a)| a.iter().filter(|id| e.contains(id)).count()).sum();
        assert!(hits as f64 / 500.0 >= 0.9, "{quant} recall@10 {}", hits as f64 / 500.0);
        let bytes = summary["index_bytes"].as_u64().unwrap();
        assert!((f32_bytes - bytes) as f64 >= saved * (3000.0 * 32.0 * 4.0), "{quant}: {bytes} bytes against {f32_bytes} for f32");
    }
    let (_, quant_filtered) = run(&["--quant", "int8", "--filter-fraction", "0.1"], "int8-filtered.npy");
    assert_eq!(quant_filtered, filtered_exact, "the few allowed ids are scanned and re-scored exactly");

    // IVF-PQ: a fraction of the memory, re-ranked from the full vectors to the same answers.
    let (summary, ivf) = run(&["--index", "ivfpq", "--nlist", "32", "--nprobe", "8", "--pq-m", "8", "--rerank", "20"], "ivf.npy");
    let hits: usize = exact.iter().zip(&ivf).map(|(e, a)| a.iter().filter(|id| e.contains(id)).count()).sum();
    assert!(hits as f64 / 500.0 >= 0.9, "IVF-PQ recall@10 {}", hits as f64 / 500.0);
    assert!(summary["index_bytes"].as_u64().unwrap() * 4 < 3000 * 32 * 4, "{summary}");
    let odd = z.run(&[
        "vectors",
        "bench",
        "--index",
        "ivfpq",
        "--pq-m",
        "5",
        "--base",
        base.to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--out",
        "x.npy",
    ]);
    assert!(String::from_utf8_lossy(&odd.stderr).contains("does not divide"));

    // Bad input: a clear error, no panic.
    std::fs::write(dir.path().join("bad.npy"), b"not numpy").unwrap();
    let bad = z.run(&[
        "vectors",
        "bench",
        "--base",
        dir.path().join("bad.npy").to_str().unwrap(),
        "--queries",
        queries.to_str().unwrap(),
        "--out",
        "x.npy",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("bad.npy") && !err.contains("panicked"), "{err}");
}

#[test]
fn an_index_save_killed_midway_leaves_the_previous_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = (dir.path().join("base.npy"), dir.path().join("q.npy"));
    write_npy(&base, 2000, 16, &data(2000, 16, 3));
    write_npy(&queries, 20, 16, &data(20, 16, 4));
    let index_file = dir.path().join("index.hnsw");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            ["vectors", "bench", "--base", base.to_str().unwrap(), "--queries", queries.to_str().unwrap(), "--k", "5"]
                .map(String::from)
                .to_vec();
        args.extend(["--out".to_string(), dir.path().join("ids.npy").to_string_lossy().into_owned()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let z = Zhiku::new();
    let saved = z.command().args(args(&["--m", "8", "--save", index_file.to_str().unwrap()])).output().unwrap();
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    let before = read_ids(&dir.path().join("ids.npy"), 5);
    let first_file = std::fs::read(&index_file).unwrap();

    // A second save dies 4 KiB into the new file, as a kill -9 or a power cut would leave it.
    let crashed = z
        .command()
        .args(args(&["--m", "12", "--quant", "int8", "--save", index_file.to_str().unwrap()]))
        .env("ZHIKU_CRASH_INDEX_WRITE_AFTER", "4096")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the injected crash did not happen");
    assert_eq!(std::fs::metadata(index_file.with_extension("tmp")).unwrap().len(), 4096, "the partial file is the temporary one");
    assert_eq!(std::fs::read(&index_file).unwrap(), first_file, "the saved index is untouched");
    let reloaded = z.command().args(args(&["--load", index_file.to_str().unwrap()])).output().unwrap();
    assert!(reloaded.status.success(), "{}", String::from_utf8_lossy(&reloaded.stderr));
    assert_eq!(read_ids(&dir.path().join("ids.npy"), 5), before);

    // The next save replaces both the file and the leftover.
    let again = z.command().args(args(&["--m", "12", "--quant", "int8", "--save", index_file.to_str().unwrap()])).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!index_file.with_extension("tmp").exists());
    assert_ne!(std::fs::read(&index_file).unwrap(), first_file);
}
