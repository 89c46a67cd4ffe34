"""The embedding peer for bench/embedding.sh: all-MiniLM-L6-v2 on onnxruntime (CPU).

No ONNX export of the model is available offline, so the BERT graph is written here with the ONNX
operators (Gather, MatMul, LayerNormalization, Softmax, Erf) from the same model.safetensors; onnxruntime
then applies its own graph optimisations (attention, GELU and LayerNorm fusion). Tokenization with
the same tokenizer.json (padding per batch to the longest, truncation at 256), batches of 32 sorted
by length, mean pooling and L2 normalisation — what sentence-transformers does.

usage: embedding_peer.py MODEL_DIR LINES.txt THREADS [ZHIKU_VECTORS.npy]
prints JSON: {"count", "seconds", "cosine_min"} (cosine against zhiku's vectors when given)
"""
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def build_graph(model_dir):
    config = json.load(open(f"{model_dir}/config.json"))
    weights = load_file(f"{model_dir}/model.safetensors")
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    w = lambda name: weights[prefix + name].astype(np.float32)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    d = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def dense(x, name, out):
        weight = const(f"{name}.wT", w(f"{name}.weight").T.copy())
        return node("Add", [node("MatMul", [x, weight], f"{out}.mm"), const(f"{name}.b", w(f"{name}.bias"))], out)

    def norm(x, name, out):
        return node("LayerNormalization", [x, const(f"{name}.g", w(f"{name}.weight")), const(f"{name}.beta", w(f"{name}.bias"))], out, axis=-1, epsilon=eps)

    e = "embeddings"
    x = node("Add", [node("Gather", [const("word", w(f"{e}.word_embeddings.weight")), "input_ids"], "we"),
                     node("Gather", [const("pos", w(f"{e}.position_embeddings.weight")), "position_ids"], "pe")], "wp")
    x = node("Add", [x, node("Gather", [const("type", w(f"{e}.token_type_embeddings.weight")), "token_type_ids"], "te")], "emb")
    x = norm(x, f"{e}.LayerNorm", "x0")
    split = const("split_shape", np.array([0, 0, heads, d], dtype=np.int64))
    merge = const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(d), dtype=np.float32))
    half, one, rsqrt2 = const("half", np.float32(0.5)), const("one", np.float32(1.0)), const("rsqrt2", np.float32(1 / np.sqrt(2)))
    for i in range(config["num_hidden_layers"]):
        l = f"encoder.layer.{i}"
        heads_of = lambda t, perm: node("Transpose", [node("Reshape", [t, split], f"{t}.r")], f"{t}.t", perm=perm)
        q = heads_of(dense(x, f"{l}.attention.self.query", f"q{i}"), [0, 2, 1, 3])
        k = heads_of(dense(x, f"{l}.attention.self.key", f"k{i}"), [0, 2, 3, 1])
        v = heads_of(dense(x, f"{l}.attention.self.value", f"v{i}"), [0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"qk{i}"), scale], f"qks{i}"), "mask_bias"], f"scores{i}")
        probs = node("Softmax", [scores], f"probs{i}", axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v], f"ctx{i}")], f"ctxt{i}", perm=[0, 2, 1, 3]), merge], f"ctxm{i}")
        attn = norm(node("Add", [dense(ctx, f"{l}.attention.output.dense", f"ao{i}"), x], f"ar{i}"), f"{l}.attention.output.LayerNorm", f"a{i}")
        inter = dense(attn, f"{l}.intermediate.dense", f"i{i}")
        erf = node("Erf", [node("Mul", [inter, rsqrt2], f"is{i}")], f"ie{i}")
        gelu = node("Mul", [node("Mul", [inter, half], f"ih{i}"), node("Add", [erf, one], f"ie1{i}")], f"g{i}")
        out = node("Add", [dense(gelu, f"{l}.output.dense", f"o{i}"), attn], f"or{i}")
        x = norm(out, f"{l}.output.LayerNorm", f"x{i + 1}")
    ints = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["b", "s"])
    graph = helper.make_graph(
        nodes, "minilm",
        [ints("input_ids"), ints("token_type_ids"), ints("position_ids"), helper.make_tensor_value_info("mask_bias", TensorProto.FLOAT, ["b", 1, 1, "s"])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["b", "s", hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), x


def main():
    model_dir, lines_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lines = open(lines_path, encoding="utf-8").read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    model, output = build_graph(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)

    def embed(texts):
        out = np.zeros((len(texts), model.graph.output[0].type.tensor_type.shape.dim[2].dim_value), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 32):
            group = order[start:start + 32]
            enc = tokenizer.encode_batch([texts[i] for i in group])
            seq = max(len(e.ids) for e in enc)
            ids = np.zeros((len(group), seq), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros((len(group), seq), dtype=np.float32)
            for r, e in enumerate(enc):
                ids[r, :len(e.ids)] = e.ids
                types[r, :len(e.ids)] = e.type_ids
                mask[r, :len(e.ids)] = 1
            positions = np.broadcast_to(np.arange(seq, dtype=np.int64), ids.shape).copy()
            bias = ((mask - 1.0) * 1e9).reshape(len(group), 1, 1, seq).astype(np.float32)
            (hidden,) = session.run([output], {"input_ids": ids, "token_type_ids": types, "position_ids": positions, "mask_bias": bias})
            pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[group] = pooled
        return out

    embed(lines[:32])  # warm-up, as zhiku's model load is not timed either
    started = time.perf_counter()
    vectors = embed(lines)
    seconds = time.perf_counter() - started
    result = {"count": len(lines), "seconds": seconds}
    if len(sys.argv) > 4:
        theirs = np.load(sys.argv[4])
        result["cosine_min"] = float((vectors * theirs).sum(1).min())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
