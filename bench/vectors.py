"""The vector engine against hnswlib and faiss (HNSW), in one run on the same data and machine.

Called by bench/vectors.sh with: ZHIKU_BIN WORK_DIR GEMMA_GGUF MINILM_NPY THREADS OUT_PNG
Prints a Markdown report. Recall@10 against brute force; single-thread queries; builds on THREADS.
"""
import json, subprocess, sys, time
from pathlib import Path

import numpy as np

zhiku, work, gguf_path, minilm_npy, threads, out_png = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
M, EFC, K = 16, 200, 10
# Gemma's token embeddings are a hard set (recall ~0.75 at ef 256 for every engine): the sweep
# goes far enough for 0.95.
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048]
IVF_PROBES = [2, 4, 8, 16, 32, 64, 128, 256]
rng = np.random.default_rng(0)


def gemma_embeddings():
    import gguf
    reader = gguf.GGUFReader(gguf_path)
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert tensor.tensor_type.name == "Q8_0", tensor.tensor_type.name
    return np.ascontiguousarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)


def split(matrix, queries=1000):
    held = rng.choice(len(matrix), size=queries, replace=False)
    mask = np.ones(len(matrix), bool)
    mask[held] = False
    return np.ascontiguousarray(matrix[mask]), np.ascontiguousarray(matrix[held])


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def truth(base, queries, allowed=None):
    b, q = unit(base), unit(queries)
    out = []
    for start in range(0, len(q), 100):
        scores = q[start:start + 100] @ b.T
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        out.append(np.argsort(-scores, axis=1)[:, :K])
    return np.vstack(out)


def recall(found, gt):
    return float(np.mean([len(set(f[f >= 0]) & set(g)) / K for f, g in zip(found, gt)]))


def zhiku_run(name, base_path, q_path, extra):
    out = work / f"{name}-ids.npy"
    cmd = [zhiku, "vectors", "bench", "--base", str(base_path), "--queries", str(q_path), "--metric", "cosine", "--k", str(K), "--out", str(out), "--json"] + extra
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout), np.load(out)


def curve(name, base, queries, gt):
    rows = {}
    base_path, q_path = work / f"{name}-base.npy", work / f"{name}-q.npy"
    np.save(base_path, base)
    np.save(q_path, queries)
    index_file = work / f"{name}.hnsw"

    # zhiku: built once, queried per ef from the saved index.
    summary, _ = zhiku_run(name, base_path, q_path, ["--m", str(M), "--ef-construction", str(EFC), "--threads", str(threads), "--save", str(index_file)])
    z = {"build_s": summary["build_s"], "bytes": summary["index_bytes"], "points": []}
    for ef in EFS:
        s, ids = zhiku_run(name, base_path, q_path, ["--load", str(index_file), "--ef-search", str(ef), "--threads", "1"])
        z["points"].append((recall(ids, gt), s["qps"]))
    rows["zhiku"] = z

    # zhiku with int8 codes in the graph (a quarter of the vector memory), re-scoring the best
    # 4 × k of each beam from the full vectors (memory-mapped from the .npy, outside the index).
    int8_file = work / f"{name}-int8.hnsw"
    summary, _ = zhiku_run(name, base_path, q_path, ["--m", str(M), "--ef-construction", str(EFC), "--threads", str(threads), "--quant", "int8", "--save", str(int8_file)])
    z8 = {"build_s": summary["build_s"], "bytes": summary["index_bytes"], "points": []}
    for ef in EFS:
        s, ids = zhiku_run(name, base_path, q_path, ["--load", str(int8_file), "--ef-search", str(ef), "--threads", "1", "--rerank", "4"])
        z8["points"].append((recall(ids, gt), s["qps"]))
    rows["zhiku int8"] = z8

    import hnswlib
    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=M, ef_construction=EFC, random_seed=1)
    index.set_num_threads(threads)
    started = time.perf_counter()
    index.add_items(base)
    h = {"build_s": time.perf_counter() - started, "points": []}
    index.save_index(str(work / f"{name}.hnswlib"))
    h["bytes"] = (work / f"{name}.hnswlib").stat().st_size
    index.set_num_threads(1)
    for ef in EFS:
        index.set_ef(ef)
        started = time.perf_counter()
        ids, _ = index.knn_query(queries, k=K)
        h["points"].append((recall(ids, gt), len(queries) / (time.perf_counter() - started)))
    rows["hnswlib"] = h
    del index

    import faiss
    faiss.omp_set_num_threads(threads)
    f_index = faiss.IndexHNSWFlat(base.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    f_index.hnsw.efConstruction = EFC
    started = time.perf_counter()
    f_index.add(unit(base).astype(np.float32))
    f = {"build_s": time.perf_counter() - started, "bytes": None, "points": []}
    faiss.omp_set_num_threads(1)
    uq = unit(queries).astype(np.float32)
    for ef in EFS:
        f_index.hnsw.efSearch = ef
        started = time.perf_counter()
        _, ids = f_index.search(uq, K)
        f["points"].append((recall(ids, gt), len(queries) / (time.perf_counter() - started)))
    rows["faiss"] = f
    del f_index

    # IVF-PQ: 4 dimensions per byte (1/16 of the f32 vectors with the ids), re-ranking 10
    # candidates per result from the full vectors (kept outside the index by both engines'
    # callers).
    nlist, pq_m = 1024 if len(base) > 100_000 else 256, base.shape[1] // 4
    ivf_file = work / f"{name}.ivfpq"
    s, _ = zhiku_run(name, base_path, q_path, ["--index", "ivfpq", "--nlist", str(nlist), "--pq-m", str(pq_m), "--threads", str(threads), "--save", str(ivf_file)])
    z_ivf = {"points": [], "f32_bytes": base.nbytes, "build_s": s["build_s"], "bytes": s["index_bytes"]}
    for nprobe in IVF_PROBES:
        s, ids = zhiku_run(name, base_path, q_path, ["--index", "ivfpq", "--load", str(ivf_file), "--nprobe", str(nprobe), "--rerank", "10", "--threads", "1"])
        z_ivf["points"].append((recall(ids, gt), s["qps"]))
    faiss.omp_set_num_threads(threads)
    quantizer = faiss.IndexFlatIP(base.shape[1])
    ivf = faiss.IndexIVFPQ(quantizer, base.shape[1], nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    ub = unit(base).astype(np.float32)
    started = time.perf_counter()
    ivf.train(ub[rng.choice(len(ub), size=min(len(ub), 65_536), replace=False)])
    refined = faiss.IndexRefineFlat(ivf)  # after training: it takes is_trained from its base
    refined.add(ub)
    f_ivf = {"build_s": time.perf_counter() - started, "points": [], "bytes": faiss.serialize_index(ivf).nbytes}
    refined.k_factor = 10
    faiss.omp_set_num_threads(1)
    for nprobe in IVF_PROBES:
        ivf.nprobe = nprobe
        started = time.perf_counter()
        _, ids = refined.search(uq, K)
        f_ivf["points"].append((recall(ids, gt), len(queries) / (time.perf_counter() - started)))
    rows["zhiku ivfpq"], rows["faiss ivfpq"] = z_ivf, f_ivf
    del refined, ivf

    # Filtered: 1% of the ids allowed (every 100th), as --filter-fraction 0.01 defines it.
    allowed = np.arange(len(base)) % 100 == 0
    s, ids = zhiku_run(name, base_path, q_path, ["--load", str(index_file), "--ef-search", "64", "--threads", "1", "--filter-fraction", "0.01"])
    z["filtered"] = (recall(ids, truth(base, queries, allowed)), s["qps"], bool(np.all((ids < 0) | (ids % 100 == 0))))
    return rows


def best_qps(points, target):
    qps = [q for r, q in points if r >= target]
    return max(qps) if qps else None


def fmt(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"


datasets = []
gemma = gemma_embeddings()
datasets.append(("Gemma-3-270M token embeddings", *split(gemma)))
del gemma
datasets.append(("MiniLM embeddings of Debian Reference lines", *split(np.load(minilm_npy))))

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5))
print(f"M={M}, ef_construction={EFC}, builds on {threads} threads, queries on 1 thread, recall@{K} vs brute force (cosine).\n")
for ax, (title, base, queries) in zip(axes, datasets):
    gt = truth(base, queries)
    rows = curve(title.split()[0].lower(), base, queries, gt)
    print(f"### {title}: {len(base):,} × {base.shape[1]}, {len(queries):,} queries\n")
    print("| engine | build s | index MiB | QPS @ R≥0.90 | QPS @ R≥0.95 | QPS @ R≥0.99 |")
    print("|---|---|---|---|---|---|")
    for engine, r in rows.items():
        mib = fmt(r["bytes"] / 2**20, 1) if r["bytes"] else "—"
        print(f"| {engine} | {r['build_s']:.1f} | {mib} | " + " | ".join(fmt(best_qps(r["points"], t)) for t in (0.90, 0.95, 0.99)) + " |")
        recalls, qps = zip(*r["points"])
        ax.plot(recalls, qps, marker="o", label=engine)
    for t in (0.90, 0.95, 0.99):
        z, h = best_qps(rows["zhiku"]["points"], t), best_qps(rows["hnswlib"]["points"], t)
        ratio = f"{z / h:.2f}×" if z and h else "—"
        print(f"\nzhiku / hnswlib QPS at recall ≥ {t}: **{ratio}**", end="")
    fr, fq, only = rows["zhiku"]["filtered"]
    print(f"\n\nFiltered (1% of ids allowed): zhiku recall@10 {fr:.3f} at {fq:,.0f} QPS; results all inside the filter: {only}.\n")
    hnsw_rows = ["zhiku", "zhiku int8", "hnswlib", "faiss"]
    print("ef sweep (recall / QPS): " + "; ".join(f"ef {e}: " + ", ".join(f"{n} {rows[n]['points'][i][0]:.3f}/{rows[n]['points'][i][1]:,.0f}" for n in hnsw_rows) for i, e in enumerate(EFS)) + "\n")
    print("IVF-PQ nprobe sweep (recall / QPS, 1 thread): " + "; ".join(f"nprobe {p}: " + ", ".join(f"{n} {rows[n]['points'][i][0]:.3f}/{rows[n]['points'][i][1]:,.0f}" for n in ["zhiku ivfpq", "faiss ivfpq"]) for i, p in enumerate(IVF_PROBES)))
    zi = rows["zhiku ivfpq"]
    print(f"\nzhiku IVF-PQ index: {zi['bytes'] / 2**20:.1f} MiB = 1/{zi['f32_bytes'] / zi['bytes']:.0f} of the f32 vectors ({zi['f32_bytes'] / 2**20:.0f} MiB).\n")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"recall@{K}")
    ax.set_ylabel("queries per second (1 thread)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
fig.tight_layout()
fig.savefig(out_png, dpi=90)
