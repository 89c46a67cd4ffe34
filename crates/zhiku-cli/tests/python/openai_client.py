"""The official `openai` Python client against a running `zhiku serve` (driven by tests/server.rs).

Environment: ZHIKU_URL (http://host:port), ZHIKU_KEY_ANN (a key of a user in group staff, who
may read kb/hr), ZHIKU_KEY_EVE (a key of a user who may read nothing), ZHIKU_KEY_ADMIN (an
administrator's key), ZHIKU_SOURCE (the ingested file's source path). Exits non-zero with the failed check on stderr.
"""
import json
import math
import os
import sys

import urllib.error
import urllib.request
import openai
from openai import OpenAI

URL = os.environ["ZHIKU_URL"]
ann = OpenAI(base_url=f"{URL}/v1", api_key=os.environ["ZHIKU_KEY_ANN"], max_retries=0, timeout=120)
eve = OpenAI(base_url=f"{URL}/v1", api_key=os.environ["ZHIKU_KEY_EVE"], max_retries=0, timeout=120)
SOURCE = os.environ["ZHIKU_SOURCE"]
QUESTION = "How many days of annual leave can employees carry over?"


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def expect_error(kind, status, call):
    try:
        call()
    except kind as e:
        check(e.status_code == status, f"{kind.__name__}: status {e.status_code}, want {status}")
        body = e.body if isinstance(e.body, dict) else {}
        check(isinstance(body.get("message"), str) and body.get("type"), f"{kind.__name__}: not an OpenAI error object: {e.body}")
        return e
    check(False, f"expected {kind.__name__} ({status})")


# Models: the knowledge base, the chat model and the embedding model.
ids = [m.id for m in ann.models.list().data]
check("kb/hr" in ids, f"kb/hr not in {ids}")
chat_model = next((i for i in ids if i.startswith("SmolLM2")), None)
check(chat_model is not None, f"no chat model in {ids}")
check("all-MiniLM-L6-v2" in ids, f"no embedding model in {ids}")

# A knowledge-base answer, not streamed: cited from the ingested file.
answer = ann.chat.completions.create(model="kb/hr", messages=[{"role": "user", "content": QUESTION}])
text = answer.choices[0].message.content
check(text and answer.choices[0].finish_reason == "stop", f"empty answer: {answer}")
citations = (answer.model_extra or {}).get("citations")
check(citations and citations[0]["source"] == SOURCE, f"citations {citations}")
check(answer.usage.completion_tokens > 0, f"usage {answer.usage}")

# Streamed: the pieces arrive as chunks, the citations in the final one.
pieces, final = [], None
for chunk in ann.chat.completions.create(model="kb/hr", messages=[{"role": "user", "content": QUESTION}], stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        final = chunk
check(len(pieces) >= 2, f"stream came in {len(pieces)} pieces")
check(final is not None and (final.model_extra or {}).get("citations"), f"no citations in the final chunk: {final}")

# Someone who may read nothing gets no answer from the documents and no citations.
refused = eve.chat.completions.create(model="kb/hr", messages=[{"role": "user", "content": QUESTION}])
check("not found in the knowledge base" in refused.choices[0].message.content.lower(), f"eve got: {refused.choices[0].message.content}")
check(not (refused.model_extra or {}).get("citations"), "eve got citations")
check("five" not in refused.choices[0].message.content.lower(), "eve saw the document's content")

# Plain chat with the model itself.
plain = ann.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)
check(plain.choices[0].message.content.strip(), "empty plain chat answer")
check(0 < plain.usage.completion_tokens <= 8, f"max_tokens not honoured: {plain.usage}")

# Embeddings: the client asks for base64 by default; floats on request; both agree.
texts = ["Employees may carry over five days of annual leave.", "The cafeteria serves lunch at noon.", "How much leave carries over?"]
by_default = ann.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
as_floats = ann.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
check(len(by_default.data) == 3 and all(len(d.embedding) == 384 for d in by_default.data), "three 384-d embeddings")
for a, b in zip(by_default.data, as_floats.data):
    check(max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-6, "base64 and float embeddings differ")
cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
e = [d.embedding for d in as_floats.data]
check(cos(e[0], e[2]) > cos(e[1], e[2]), "the leave question is nearer the leave sentence than the lunch one")
check(as_floats.usage.prompt_tokens > 0, "embedding usage")

# Errors, as the client raises them.
bad_key = OpenAI(base_url=f"{URL}/v1", api_key="zk_nothere_0000", max_retries=0)
expect_error(openai.AuthenticationError, 401, lambda: bad_key.models.list())
expect_error(openai.NotFoundError, 404, lambda: ann.chat.completions.create(model="kb/nope", messages=[{"role": "user", "content": "x"}]))
expect_error(openai.NotFoundError, 404, lambda: ann.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
expect_error(openai.BadRequestError, 400, lambda: ann.chat.completions.create(model="kb/hr", messages=[]))
expect_error(openai.BadRequestError, 400, lambda: ann.chat.completions.create(model="kb/hr", messages=[{"role": "user", "content": "x"}], temperature=5))
expect_error(openai.NotFoundError, 404, lambda: ann.embeddings.create(model="text-embedding-3-small", input="x"))
expect_error(openai.BadRequestError, 400, lambda: ann.embeddings.create(model="all-MiniLM-L6-v2", input=[[1, 2, 3]]))

# Raw HTTP (the standard library's client): malformed JSON, wrong types, too large, no key,
# unknown path, wrong method — all OpenAI-shaped errors with the right status.
auth = {"Authorization": f"Bearer {os.environ['ZHIKU_KEY_ANN']}", "Content-Type": "application/json"}


def http(method, path, headers, body=None):
    request = urllib.request.Request(URL + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


cases = [
    ("POST", "/v1/chat/completions", auth, b'{"model": "kb/hr", "messages": [', 400),
    ("POST", "/v1/chat/completions", auth, json.dumps({"model": "kb/hr", "messages": "hi"}).encode(), 400),
    ("POST", "/v1/chat/completions", auth, json.dumps({"model": 7, "messages": []}).encode(), 400),
    ("POST", "/v1/embeddings", auth, json.dumps({"model": "all-MiniLM-L6-v2", "input": "x" * (2 << 20)}).encode(), 413),
    ("POST", "/v1/chat/completions", {"Content-Type": "application/json"}, b"{}", 401),
    ("GET", "/v1/models", {"Authorization": "Basic abc"}, None, 401),
    ("GET", "/v1/nothing", auth, None, 404),
    ("DELETE", "/v1/models", auth, None, 405),
]
for method, path, headers, body, status in cases:
    got, text = http(method, path, headers, body)
    check(got == status, f"{method} {path}: {got}, want {status}: {text[:200]}")
    error = json.loads(text).get("error", {})
    check(isinstance(error.get("message"), str) and error.get("type"), f"{method} {path}: not an OpenAI error: {text[:200]}")
    check("panicked" not in text and "backtrace" not in text.lower(), f"{method} {path} leaks internals")

# The native search acts as the key's user too.
status, text = http("POST", "/api/search", auth, json.dumps({"kb": "hr", "query": "annual leave", "top_k": 3}).encode())
found = json.loads(text)["hits"]
check(status == 200 and found and found[0]["source"] == SOURCE, f"ann's search: {text[:300]}")
eve_auth = {"Authorization": f"Bearer {os.environ['ZHIKU_KEY_EVE']}", "Content-Type": "application/json"}
status, text = http("POST", "/api/search", eve_auth, json.dumps({"kb": "hr", "query": "annual leave"}).encode())
check(status == 200 and json.loads(text)["hits"] == [], f"eve's search: {text[:300]}")
check(json.loads(http("GET", "/healthz", {})[1])["status"] == "ok", "health")

# Documents over HTTP: only an administrator's key changes anything; readers see what ACLs allow.
admin_auth = {"Authorization": f"Bearer {os.environ['ZHIKU_KEY_ADMIN']}", "Content-Type": "application/json"}


def multipart(files, acl):
    boundary = "zhikutestboundary7d1"
    body = b""
    for value in acl:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="acl"\r\n\r\n{value}\r\n'.encode()
    for name, content in files:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        body += content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


status, text = http("POST", "/api/kbs", auth, json.dumps({"name": "policies"}).encode())
check(status == 403 and json.loads(text)["error"]["type"] == "permission_error", f"a reader created a knowledge base: {status} {text[:200]}")
status, text = http("POST", "/api/kbs", admin_auth, json.dumps({"name": "policies", "acl": ["group:staff"]}).encode())
check(status == 201, f"create: {status} {text[:200]}")
travel = "# Travel\n\nTrain journeys under four hours are booked in second class.\n".encode()
body, content_type = multipart([("travel.md", travel), ("broken.pdf", b"%PDF-1.7 not really")], [])
status, text = http("POST", "/api/kbs/policies/documents", dict(auth, **{"Content-Type": content_type}), body)
check(status == 403, f"a reader uploaded: {status}")
status, text = http("POST", "/api/kbs/policies/documents", dict(admin_auth, **{"Content-Type": content_type}), body)
check(status == 202, f"upload: {status} {text[:300]}")
job = json.loads(text)["job"]["id"]
# The job's events stream until it has ended; the last one tells how each file went.
status, text = http("GET", f"/api/jobs/{job}/events", admin_auth)
events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
final = events[-1]["job"]
check(status == 200 and final["state"] == "done" and final["files_done"] == 2, f"job events: {text[-400:]}")
outcomes = sorted(f["status"] for f in final["files"])
check(outcomes == ["failed", "ingested"], f"outcomes {outcomes}")
check(http("GET", f"/api/jobs/{job}", auth)[0] == 403, "a reader watched a job")

status, text = http("GET", "/api/kbs/policies/documents", auth)
docs = json.loads(text)["documents"]
check(status == 200 and [d["source"].split("/")[-1] for d in docs] == ["travel.md"], f"ann's documents: {text[:300]}")
check(http("GET", "/api/kbs/policies/documents", eve_auth)[0] == 404, "eve, without a role, sees the knowledge base")
doc = docs[0]["id"]
status, original = http("GET", f"/api/kbs/policies/documents/{doc}/original", auth)
check(status == 200 and original.encode() == travel, f"download: {status}")
check(http("GET", f"/api/kbs/policies/documents/{doc}/original", eve_auth)[0] == 404, "eve downloaded")
check(http("DELETE", f"/api/kbs/policies/documents/{doc}", auth)[0] == 403, "a reader deleted")
status, text = http("DELETE", f"/api/kbs/policies/documents/{doc}", admin_auth)
check(status == 200 and json.loads(text)["deleted"], f"delete: {status} {text[:200]}")
check(json.loads(http("GET", "/api/kbs/policies/documents", auth)[1])["documents"] == [], "the document is gone")
status, text = http("POST", "/api/search", auth, json.dumps({"kb": "policies", "query": "train journeys second class"}).encode())
check(json.loads(text)["hits"] == [], f"a deleted document is still found: {text[:200]}")

# Stored exchanges: history per user, and feedback only from the asker.
kept = ann.chat.completions.create(model="kb/hr", messages=[{"role": "user", "content": QUESTION}], store=True, extra_body={"conversation": "leave-talk"})
check((kept.model_extra or {}).get("conversation") == "leave-talk", f"conversation: {kept.model_extra}")
status, text = http("GET", "/api/conversations", auth)
check(status == 200 and [c["id"] for c in json.loads(text)["conversations"]] == ["leave-talk"], f"ann's history: {text[:300]}")
check(json.loads(http("GET", "/api/conversations", eve_auth)[1])["conversations"] == [], "eve sees ann's history")
check(http("GET", "/api/conversations/leave-talk", eve_auth)[0] == 404, "eve reads ann's conversation")
feedback = lambda who, body: http("POST", "/api/feedback", who, json.dumps(body).encode())
check(feedback(eve_auth, {"completion_id": kept.id, "rating": "up"})[0] == 404, "eve rated ann's answer")
check(feedback(auth, {"completion_id": kept.id, "rating": "meh"})[0] == 400, "a rating that is neither up nor down")
check(feedback(auth, {"completion_id": answer.id, "rating": "up"})[0] == 404, "an answer that was not stored was rated")
status, text = feedback(auth, {"completion_id": kept.id, "rating": "down", "correction": "Five days, and they expire in March."})
check(status == 200, f"feedback: {status} {text[:200]}")
exchange = json.loads(http("GET", "/api/conversations/leave-talk", auth)[1])["exchanges"][0]
check(exchange["completion_id"] == kept.id and exchange["question"] == QUESTION and exchange["citations"], f"stored exchange: {exchange}")
check(exchange["rating"] == -1 and exchange["correction"] == "Five days, and they expire in March.", f"stored feedback: {exchange}")
check(exchange["answer"] == kept.choices[0].message.content, "the stored answer is the one given")

# Browsers: only the configured origin (ZHIKU_SERVER_CORS_ORIGINS) may call the API cross-origin.
preflight = {"Origin": "http://intranet.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
request = urllib.request.Request(URL + "/v1/chat/completions", headers=preflight, method="OPTIONS")
with urllib.request.urlopen(request) as r:
    check(r.headers.get("Access-Control-Allow-Origin") == "http://intranet.test", f"preflight: {dict(r.headers)}")
    check("authorization" in r.headers.get("Access-Control-Allow-Headers", ""), "preflight allows the key header")
request = urllib.request.Request(URL + "/v1/chat/completions", headers=dict(preflight, Origin="http://evil.test"), method="OPTIONS")
with urllib.request.urlopen(request) as r:
    check(r.headers.get("Access-Control-Allow-Origin") is None, "another origin was allowed")
request = urllib.request.Request(URL + "/v1/models", headers={"Origin": "http://intranet.test", "Authorization": auth["Authorization"]})
with urllib.request.urlopen(request) as r:
    check(r.headers.get("Access-Control-Allow-Origin") == "http://intranet.test", "the allowed origin may read responses")

# Knowledge-base settings, re-ingestion and deletion.
status, text = http("GET", "/api/kbs/policies", auth)
check(status == 200 and json.loads(text)["role"] == "viewer" and json.loads(text)["acl"] is None, f"a viewer's settings: {status} {text[:200]}")
status, text = http("GET", "/api/kbs/policies", admin_auth)
check(status == 200 and json.loads(text)["acl"] == ["group:staff"], f"settings: {status} {text[:200]}")
patch = lambda who, body: http("PATCH", "/api/kbs/policies", who, json.dumps(body).encode())
check(patch(auth, {"pii": "mask"})[0] == 403, "a reader changed settings")
check(patch(admin_auth, {"pii": "bogus"})[0] == 400, "a bogus PII policy was taken")
status, text = patch(admin_auth, {"pii": "mask", "vector_index": "hnsw"})
check(status == 200 and json.loads(text)["pii"] == "mask" and json.loads(text)["vector_index"] == "hnsw", f"patch: {status} {text[:200]}")


def run_job(body, content_type):
    status, text = http("POST", "/api/kbs/policies/documents", dict(admin_auth, **{"Content-Type": content_type}), body)
    check(status == 202, f"upload: {status} {text[:200]}")
    return wait_job(json.loads(text)["job"]["id"])


def wait_job(job):
    text = http("GET", f"/api/jobs/{job}/events", admin_auth)[1]
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")][-1]["job"]


run_job(*multipart([("travel.md", travel)], []))
doc = json.loads(http("GET", "/api/kbs/policies/documents", admin_auth)[1])["documents"][0]
status, text = http("POST", f"/api/kbs/policies/documents/{doc['id']}/reingest", admin_auth)
check(status == 202, f"reingest: {status} {text[:200]}")
final = wait_job(json.loads(text)["job"]["id"])
check(final["state"] == "done" and final["files"][0]["status"] == "ingested", f"reingest job: {final}")
again = json.loads(http("GET", "/api/kbs/policies/documents", auth)[1])["documents"]
check([d["source"] for d in again] == [doc["source"]] and again[0]["id"] != doc["id"], f"after re-ingestion: {again}")
hits = json.loads(http("POST", "/api/search", auth, json.dumps({"kb": "policies", "query": "train journeys second class"}).encode())[1])["hits"]
check(hits and hits[0]["source"] == doc["source"], "the re-ingested document is found, in the graph index now")
check(http("DELETE", "/api/kbs/policies", auth)[0] == 403, "a reader deleted a knowledge base")
check(http("DELETE", "/api/kbs/policies", admin_auth)[0] == 200, "delete knowledge base")
check(http("GET", "/api/kbs/policies", admin_auth)[0] == 404, "the deleted knowledge base is still there")
check("kb/policies" not in [m.id for m in ann.models.list().data], "the deleted knowledge base is still a model")

# Keys over HTTP, for administrators only; a key made there works at once and stops when revoked.
check(http("GET", "/api/keys", auth)[0] == 403, "a reader listed keys")
check(http("POST", "/api/keys", auth, json.dumps({"name": "x"}).encode())[0] == 403, "a reader made a key")
status, text = http("POST", "/api/keys", admin_auth, json.dumps({"name": "carol"}).encode())
check(status == 201, f"key create: {status} {text[:200]}")
made = json.loads(text)
check(made["user"] == "carol" and not made["admin"], f"new key: {made}")
carol = {"Authorization": f"Bearer {made['key']}"}
check(http("GET", "/v1/models", carol)[0] == 200, "the new key works")
listed = http("GET", "/api/keys", admin_auth)[1]
check(made["key"].split("_")[-1] not in listed and "carol" in listed, "listing shows the key but never its secret")
check(http("DELETE", f"/api/keys/{made['id']}", admin_auth)[0] == 200, "revoke")
check(http("GET", "/v1/models", carol)[0] == 401, "a revoked key still works")
check(http("DELETE", f"/api/keys/{made['id']}", admin_auth)[0] == 404, "revoking twice")
jobs = json.loads(http("GET", "/api/jobs", admin_auth)[1])["jobs"]
check(jobs and jobs[0]["state"] == "done", f"jobs: {jobs}")

# The OpenAPI document describes every route, generated from the code.
status, text = http("GET", "/openapi.json", {})
spec = json.loads(text)
check(status == 200 and spec["openapi"].startswith("3."), f"openapi: {status} {text[:200]}")
for path in ["/v1/models", "/v1/chat/completions", "/v1/embeddings", "/api/search", "/api/kbs", "/api/kbs/{kb}/documents",
             "/api/kbs/{kb}/documents/{id}", "/api/kbs/{kb}/documents/{id}/original", "/api/kbs/{kb}/chunks/{id}", "/api/jobs/{id}",
             "/api/jobs/{id}/events", "/api/me", "/healthz", "/api/conversations", "/api/conversations/{id}", "/api/feedback",
             "/api/keys", "/api/keys/{id}", "/api/jobs", "/api/kbs/{kb}", "/api/kbs/{kb}/documents/{id}/reingest"]:
    check(path in spec["paths"], f"{path} missing from the OpenAPI document")
check("ChatRequest" in spec["components"]["schemas"] and "bearer" in spec["components"]["securitySchemes"], "schemas and security")

print("openai client: all checks passed")
