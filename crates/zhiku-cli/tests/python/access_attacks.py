"""Roles, scopes and attacks over HTTP against a running `zhiku serve` (driven by tests/governance.rs).

The knowledge base `docs` has group:staff as viewers, user:ed as editor and user:kim as admin.
`handbook.md` inherits the knowledge base's ACL; `board.md` has its own ACL (user:boss).
Keys (environment): ZHIKU_KEY_<NAME> for VERA (staff), ED, ED_RO (ed, scope read only), KIM,
MALLORY (no role anywhere), ADMIN, EXPIRED and REVOKED (dead keys). Exits non-zero with the
failed check on stderr.
"""
import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["ZHIKU_URL"]


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def auth(name):
    return {"Authorization": f"Bearer {os.environ['ZHIKU_KEY_' + name]}", "Content-Type": "application/json"}


def http_full(method, path, headers, body=None):
    """(status, response headers, body text); a dict or list body is sent as JSON."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def http(method, path, headers, body=None):
    status, _, text = http_full(method, path, headers, body)
    return status, text


def expect(status, want, text, what):
    check(status == want, f"{what}: {status}, want {want}: {text[:300]}")
    if status >= 400:
        error = json.loads(text).get("error", {})
        check(isinstance(error.get("message"), str) and error.get("type"), f"{what}: not an OpenAI error: {text[:300]}")
        check("panicked" not in text and "backtrace" not in text.lower(), f"{what}: leaks internals")


def search(who, query="travel and holidays policy", kb="docs"):
    status, text = http("POST", "/api/search", auth(who), {"kb": kb, "query": query, "top_k": 10})
    return status, (json.loads(text).get("hits") if status == 200 else text)


def sources(hits):
    return sorted(h["source"].rsplit("/", 1)[-1] for h in hits)


def multipart(name, content):
    boundary = "zhikuaccessboundary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: text/markdown\r\n\r\n'.encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# Dead, forged and malformed keys: 401, nothing else said.
for name, headers in [
    ("expired", auth("EXPIRED")), ("revoked", auth("REVOKED")),
    ("forged", {"Authorization": "Bearer zk_0123456789ab_" + "f" * 64}),
    ("malformed", {"Authorization": "Bearer ' OR 1=1 --"}), ("empty", {"Authorization": "Bearer "}),
]:
    status, text = http("GET", "/api/kbs", headers)
    expect(status, 401, text, f"{name} key")

# A viewer reads what the ACLs allow, and changes nothing.
status, hits = search("VERA")
check(status == 200 and sources(hits) == ["handbook.md"], f"vera's search: {hits}")
status, text = http("GET", "/api/kbs", auth("VERA"))
check(json.loads(text)["kbs"] == [{"name": "docs", "role": "viewer"}], f"vera's knowledge bases: {text}")
docs = {d["source"].rsplit("/", 1)[-1]: d for d in json.loads(http("GET", "/api/kbs/docs/documents", auth("ED"))[1])["documents"]}
check(sorted(docs) == ["handbook.md"], f"ed reads only the inherited document: {sorted(docs)}")
handbook = docs["handbook.md"]["id"]
check(docs["handbook.md"]["acl_inherited"] is True, f"acl_inherited: {docs}")
upload = multipart("notes.md", b"# Notes\n\nThe canteen opens at eight.\n")
for method, path, body, what in [
    ("POST", "/api/keys", {"name": "mine", "scopes": ["admin"]}, "a viewer created a key"),
    ("PUT", "/api/kbs/docs/roles", {"principal": "user:vera", "role": "admin"}, "a viewer made herself admin"),
    ("PUT", f"/api/kbs/docs/documents/{handbook}/acl", {"acl": ["user:vera"]}, "a viewer edited an ACL"),
    ("PATCH", "/api/kbs/docs", {"pii": "keep"}, "a viewer changed settings"),
    ("DELETE", f"/api/kbs/docs/documents/{handbook}", None, "a viewer deleted a document"),
    ("POST", "/api/users", {"name": "vera2", "admin": True}, "a viewer created an admin"),
    ("POST", "/api/groups/staff/members", {"member": "user:mallory"}, "a viewer added a group member"),
    ("GET", "/api/audit", None, "a viewer read the audit log"),
]:
    status, text = http(method, path, auth("VERA"), body)
    expect(status, 403, text, what)
status, text = http("POST", "/api/kbs/docs/documents", dict(auth("VERA"), **{"Content-Type": upload[1]}), upload[0])
expect(status, 403, text, "a viewer uploaded")

# Without a role a knowledge base does not exist, whatever is asked of it.
status, text = http("GET", "/api/kbs", auth("MALLORY"))
check(json.loads(text)["kbs"] == [], f"mallory lists {text}")
for method, path, body in [
    ("POST", "/api/search", {"kb": "docs", "query": "travel"}), ("GET", "/api/kbs/docs", None),
    ("GET", "/api/kbs/docs/documents", None), ("GET", f"/api/kbs/docs/documents/{handbook}/original", None),
    ("GET", "/api/kbs/docs/chunks/1", None),
]:
    status, text = http(method, path, auth("MALLORY"), body)
    expect(status, 404, text, f"mallory {method} {path}")
status, text = http("POST", "/v1/chat/completions", auth("MALLORY"), {"model": "kb/docs", "messages": [{"role": "user", "content": "travel?"}]})
expect(status, 404, text, "mallory's chat with kb/docs")
models = [m["id"] for m in json.loads(http("GET", "/v1/models", auth("MALLORY"))[1])["data"]]
check("kb/docs" not in models, f"mallory's models: {models}")

# An editor changes documents and their ACLs, not roles or settings; a read-only key of hers
# changes nothing.
status, text = http("POST", "/api/kbs/docs/documents", dict(auth("ED_RO"), **{"Content-Type": upload[1]}), upload[0])
expect(status, 403, text, "a read-only key uploaded")
check("scope" in json.loads(text)["error"]["message"], f"the refusal names the scope: {text}")
check(search("ED_RO")[0] == 200, "a read-only key searches")
status, text = http("PUT", f"/api/kbs/docs/documents/{handbook}/acl", auth("ED"), {"acl": ["user:ed"]})
expect(status, 200, text, "an editor set an ACL")
check(json.loads(text)["acl"] == ["user:ed"], f"acl: {text}")
status, hits = search("VERA")
check(status == 200 and hits == [], f"vera still finds the document after its ACL changed: {hits}")
check(sources(search("ED")[1]) == ["handbook.md"], "ed finds what he may read now")
for body, what in [({"acl": ["user:x"], "inherit": True}, "acl and inherit"), ({}, "neither"), ({"acl": ["root"]}, "a bad principal")]:
    status, text = http("PUT", f"/api/kbs/docs/documents/{handbook}/acl", auth("ED"), body)
    expect(status, 400, text, what)
status, text = http("PUT", f"/api/kbs/docs/documents/{handbook}/acl", auth("ED"), {"inherit": True})
expect(status, 200, text, "back to the inherited ACL")
check(sources(search("VERA")[1]) == ["handbook.md"], "vera finds it again")
for method, path, body, what in [
    ("PUT", "/api/kbs/docs/roles", {"principal": "user:ed", "role": "admin"}, "an editor made himself admin"),
    ("PATCH", "/api/kbs/docs", {"log_questions": False}, "an editor changed settings"),
    ("DELETE", "/api/kbs/docs", None, "an editor deleted the knowledge base"),
]:
    status, text = http(method, path, auth("ED"), body)
    expect(status, 403, text, what)

# Path traversal: an upload's name is reduced to a plain file name; ids are numbers.
evil = multipart("../../../escape.md", b"# Escape\n\nThis file tried to leave the uploads folder.\n")
status, text = http("POST", "/api/kbs/docs/documents", dict(auth("ED"), **{"Content-Type": evil[1]}), evil[0])
expect(status, 202, text, "an upload with a path in its name")
job = json.loads(text)["job"]["id"]
events = http("GET", f"/api/jobs/{job}/events", auth("ED"))[1]
final = [json.loads(line[5:]) for line in events.splitlines() if line.startswith("data:")][-1]["job"]
check(final["state"] == "done" and final["files"][0]["source"].endswith("/uploads/docs/escape.md"), f"stored as: {final}")
for path in ["/api/kbs/docs/documents/..%2F..%2Fzhiku.db/original", "/api/kbs/..%2F..%2Fetc/documents", "/api/kbs/docs/documents/-1/original"]:
    status, text = http("GET", path, auth("ED"))
    check(status in (400, 404), f"{path}: {status}")

# A knowledge-base admin manages roles (the change reaches inheriting documents at once) and
# settings, but makes no keys.
status, text = http("PATCH", "/api/kbs/docs", auth("KIM"), {"log_questions": False})
check(status == 200 and json.loads(text)["log_questions"] is False and json.loads(text)["roles"], f"kim's settings: {text[:300]}")
status, text = http("PUT", "/api/kbs/docs/roles", auth("KIM"), {"principal": "user:mallory", "role": "viewer"})
expect(status, 200, text, "a knowledge-base admin granted a role")
check(json.loads(text)["documents_updated"] >= 1, f"inheriting documents updated: {text}")
check("handbook.md" in sources(search("MALLORY")[1]), "mallory reads the inherited document once a viewer")
check("board.md" not in sources(search("MALLORY", "board meeting minutes")[1]), "the board's own ACL still keeps mallory out")
status, text = http("PUT", "/api/kbs/docs/roles", auth("KIM"), {"principal": "user:mallory", "role": None})
expect(status, 200, text, "revoke")
check(search("MALLORY")[0] == 404, "mallory still sees the knowledge base after the revocation")
status, text = http("PUT", "/api/kbs/docs/roles", auth("KIM"), {"principal": "user:x", "role": "owner"})
expect(status, 400, text, "an unknown role")
status, text = http("POST", "/api/keys", auth("KIM"), {"name": "kims"})
expect(status, 403, text, "a knowledge-base admin made a key")

# SQL injection strings are data wherever they go.
injection = "x'); DROP TABLE document; --"
status, hits = search("VERA", injection)
check(status == 200, f"an injection string as a query: {hits}")
for method, path, body in [
    ("PUT", "/api/kbs/docs/roles", {"principal": f"user:{injection}", "role": "viewer"}),
    ("POST", "/api/users", {"name": injection}),
    ("POST", "/api/groups/staff/members", {"member": f"user:{injection}"}),
    ("POST", "/api/kbs", {"name": injection}),
    ("POST", "/api/keys", {"name": injection}),
]:
    status, text = http(method, path, auth("ADMIN"), body)
    expect(status, 400, text, f"injection into {path}")
status, text = http("POST", "/api/search", auth("ADMIN"), {"kb": injection, "query": "x"})
expect(status, 404, text, "injection as a knowledge base name")
check("handbook.md" in sources(search("VERA")[1]), "the store survived")

# Administrators: users and nested groups over HTTP.
status, text = http("POST", "/api/users", auth("ADMIN"), {"name": "nina", "password": "short"})
expect(status, 400, text, "a short password")
status, text = http("POST", "/api/users", auth("ADMIN"), {"name": "nina", "password": "long enough secret"})
expect(status, 201, text, "create user")
check(http("POST", "/api/users", auth("ADMIN"), {"name": "nina"})[0] == 409, "a second nina")
check(http("POST", "/api/groups/interns/members", auth("ADMIN"), {"member": "group:staff"})[0] == 200, "nest staff in interns")
status, text = http("POST", "/api/groups/staff/members", auth("ADMIN"), {"member": "group:interns"})
expect(status, 400, text, "a cycle of groups")
listing = json.loads(http("GET", "/api/users", auth("ADMIN"))[1])
check(any(u["name"] == "nina" and u["has_password"] for u in listing["users"]), f"users: {listing}")
check("long enough secret" not in json.dumps(listing) and "argon2" not in json.dumps(listing), "a password (hash) in the listing")
check({"group": "interns", "member": "group:staff"} in listing["groups"], f"groups: {listing['groups']}")

# The audit log saw all of it, chained.
status, text = http("GET", "/api/audit", auth("ADMIN"))
log = json.loads(text)
check(status == 200 and log["chain"]["ok"], f"chain: {log.get('chain')}")
actions = [e["action"] for e in log["entries"]]
for action in ["auth.failed", "access.denied", "document.acl", "kb.grant", "kb.revoke", "kb.update", "ingest", "search", "user.create", "group.add"]:
    check(action in actions, f"no {action} in the audit log: {sorted(set(actions))}")
failed = [e for e in log["entries"] if e["action"] == "auth.failed"]
secrets = [os.environ[f"ZHIKU_KEY_{n}"].rsplit("_", 1)[-1] for n in ["EXPIRED", "REVOKED"]]
check(not any(s in text for s in secrets), "a key's secret in the audit log")
check(any(e["detail"]["key_id"] for e in failed), f"failed logins name the key id: {failed}")
denied = [e for e in log["entries"] if e["action"] == "access.denied" and e["actor"].endswith("user:vera")]
check({"method": "POST", "path": "/api/keys"} in [e["detail"] for e in denied], f"vera's attempt at a key is on record: {denied[:3]}")
acl_change = next(e for e in log["entries"] if e["action"] == "document.acl")
check(acl_change["actor"].endswith("user:ed") and acl_change["kb"] == "docs", f"who changed the ACL: {acl_change}")
vera_search = next(e for e in log["entries"] if e["action"] == "search" and e["actor"].endswith("user:vera"))
check(vera_search["detail"]["retrieved"] and vera_search["detail"]["question"], f"vera's search: {vera_search}")
late = [e for e in log["entries"] if e["action"] == "search" and e["actor"].endswith("user:mallory")][-1]
check(late["detail"]["question"] is None and late["detail"]["question_sha256"], f"question kept against log_questions=false: {late}")
mine = json.loads(http("GET", "/api/audit?user=ed", auth("ADMIN"))[1])["entries"]
check(mine and all(e["actor"].endswith("user:ed") for e in mine), f"filtered by user: {mine[:2]}")
# Web sessions: a password log-in sets an HttpOnly, SameSite=Strict cookie; changes need the
# session's CSRF token; logging out ends it; failed logins are throttled.

check(http("PUT", "/api/kbs/docs/roles", auth("ADMIN"), {"principal": "user:nina", "role": "viewer"})[0] == 200, "nina's role")
plain = {"Content-Type": "application/json"}
status, _, text = http_full("POST", "/api/login", plain, {"user": "nina", "password": "wrong password"})
expect(status, 401, text, "a wrong password")
status, headers, text = http_full("POST", "/api/login", plain, {"user": "nina", "password": "long enough secret"})
check(status == 200, f"login: {status} {text[:200]}")
set_cookie = headers.get("Set-Cookie", "")
check(all(flag in set_cookie for flag in ["zhiku_session=zs_", "HttpOnly", "SameSite=Strict", "Path=/"]), f"cookie: {set_cookie}")
check(headers.get("X-Content-Type-Options") == "nosniff" and headers.get("X-Frame-Options") == "DENY", f"security headers: {dict(headers)}")
csrf = json.loads(text)["csrf_token"]
cookie = {"Cookie": set_cookie.split(";")[0], "Content-Type": "application/json"}
status, text = http("GET", "/api/kbs", cookie)
check(status == 200 and json.loads(text)["kbs"] == [{"name": "docs", "role": "viewer"}], f"nina's knowledge bases: {text}")
query = {"kb": "docs", "query": "travel policy"}
status, text = http("POST", "/api/search", cookie, query)
expect(status, 403, text, "a change without the CSRF token")
status, text = http("POST", "/api/search", dict(cookie, **{"X-CSRF-Token": "0" * 32}), query)
expect(status, 403, text, "a wrong CSRF token")
status, text = http("POST", "/api/search", dict(cookie, **{"X-CSRF-Token": csrf}), query)
check(status == 200 and "handbook.md" in sources(json.loads(text)["hits"]), f"nina's search: {text[:200]}")
status, text = http("POST", "/api/logout", dict(cookie, **{"X-CSRF-Token": csrf}))
check(status == 200 and json.loads(text)["logged_out"], f"logout: {text}")
status, text = http("GET", "/api/kbs", cookie)
expect(status, 401, text, "an ended session")
for _ in range(3):  # with the wrong password above, four failures from this address
    http("POST", "/api/login", plain, {"user": "nina", "password": "guess"})
status, headers, text = http_full("POST", "/api/login", plain, {"user": "nina", "password": "long enough secret"})
check(status == 200, f"four failures do not lock anything: {status} {text[:200]}")
for _ in range(5):
    http("POST", "/api/login", plain, {"user": "nina", "password": "guess"})
status, headers, text = http_full("POST", "/api/login", plain, {"user": "nina", "password": "long enough secret"})
expect(status, 429, text, "a locked account, right password or not")
check(int(headers.get("Retry-After", "0")) > 0, f"Retry-After: {dict(headers)}")
log = json.loads(http("GET", "/api/audit", auth("ADMIN"))[1])["entries"]
actions = [e["action"] for e in log]
check("login" in actions and "login.failed" in actions and "logout" in actions, f"logins audited: {sorted(set(actions))}")
check(not any("long enough secret" in json.dumps(e) or "guess" in json.dumps(e) for e in log), "a password in the audit log")
# Disabling an account stops its keys at once; enabling it brings them back.
made = json.loads(http("POST", "/api/keys", auth("ADMIN"), {"name": "nina-key", "user": "nina", "scopes": ["read"]})[1])
nina_key = {"Authorization": f"Bearer {made['key']}"}
check(http("GET", "/api/kbs", nina_key)[0] == 200, "nina's key works")
check(http("PATCH", "/api/users/vera", auth("VERA"), {"disabled": True})[0] == 403, "a viewer disabled an account")
status, text = http("PATCH", "/api/users/nina", auth("ADMIN"), {"disabled": True})
check(status == 200 and json.loads(text)["disabled"] is True, f"disable: {status} {text[:200]}")
check(http("GET", "/api/kbs", nina_key)[0] == 401, "a disabled account's key still works")
check(http("PATCH", "/api/users/nina", auth("ADMIN"), {"disabled": False})[0] == 200, "enable")
check(http("GET", "/api/kbs", nina_key)[0] == 200, "an enabled account's key works again")
check(http("PATCH", "/api/users/nobody", auth("ADMIN"), {"disabled": True})[0] == 404, "an unknown account")
print("all checks passed")
