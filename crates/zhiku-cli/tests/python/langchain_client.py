"""LangChain's ChatOpenAI and OpenAIEmbeddings against a running `zhiku serve` (driven by
tests/server.rs): existing tools work unchanged with a knowledge base as the model.

Environment: ZHIKU_URL, ZHIKU_KEY_ANN (a user who may read kb/hr). Exits non-zero with the
failed check on stderr.
"""
import os
import sys

from langchain_openai import ChatOpenAI, OpenAIEmbeddings

URL, KEY = os.environ["ZHIKU_URL"], os.environ["ZHIKU_KEY_ANN"]


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


chat = ChatOpenAI(base_url=f"{URL}/v1", api_key=KEY, model="kb/hr", max_retries=0, timeout=120)
reply = chat.invoke("How many days of annual leave can employees carry over?")
check(isinstance(reply.content, str) and reply.content.strip(), f"invoke: {reply!r}")
pieces = [chunk.content for chunk in chat.stream("How many days of annual leave can employees carry over?")]
check(len([p for p in pieces if p]) >= 2 and "".join(pieces).strip(), f"stream: {pieces}")

# Strings, not token ids: LangChain's token counting would need tiktoken's files from the net.
embeddings = OpenAIEmbeddings(base_url=f"{URL}/v1", api_key=KEY, model="all-MiniLM-L6-v2", check_embedding_ctx_length=False)
vectors = embeddings.embed_documents(["annual leave", "the canteen"])
query = embeddings.embed_query("annual leave")
check(len(vectors) == 2 and len(query) == 384, "embedding shapes")
check(max(abs(a - b) for a, b in zip(vectors[0], query)) < 1e-5, "the same text embeds the same")
print("langchain: all checks passed")
