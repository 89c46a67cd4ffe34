//! Log-in and group sync against a real OpenLDAP server (Debian `slapd`, started here on a
//! loopback port with a generated directory): directory passwords, directory groups as zhiku
//! groups (and so as roles), `zhiku ldap sync` creating and disabling accounts; the same
//! through server replicas over a shared PostgreSQL database.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, write, Zhiku};
use serde_json::Value;

const BASE: &str = "dc=example,dc=com";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
const ADMIN_PASSWORD: &str = "directory-admin-secret";

/// A slapd with its own configuration and database in a temporary folder, killed on drop.
struct Slapd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    fn start(entries: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let conf = write(
            dir.path(),
            "slapd.conf",
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 pidfile {dir}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
                 database mdb\nmaxsize 10485760\nsuffix \"{BASE}\"\nrootdn \"{ADMIN_DN}\"\nrootpw {ADMIN_PASSWORD}\ndirectory {dir}/db\n",
                dir = dir.path().display()
            ),
        );
        let data = write(dir.path(), "data.ldif", entries);
        let loaded = Command::new("slapadd").arg("-f").arg(&conf).arg("-l").arg(&data).output().expect("slapadd (Debian slapd)");
        assert!(loaded.status.success(), "slapadd: {}", String::from_utf8_lossy(&loaded.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Command::new("slapd")
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("{url}/"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd (Debian slapd)");
        let slapd = Slapd { child, url, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        slapd
    }

    /// Applies an LDIF change as the directory's administrator.
    fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify (Debian ldap-utils)");
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn person(uid: &str, name: &str, password: &str) -> String {
    format!("dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {name}\nuserPassword: {password}\n\n")
}

fn group(cn: &str, members: &[&str]) -> String {
    let members: String = members.iter().map(|m| format!("member: uid={m},ou=people,{BASE}\n")).collect();
    format!("dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
}

/// (status, Set-Cookie, body) of a log-in.
fn login(url: &str, user: &str, password: &str) -> (u16, String, String) {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let reply = http(url, "POST", "/api/login", &[("Content-Type", "application/json")], &body);
    (reply.status, reply.header("set-cookie").unwrap_or("").to_string(), reply.body)
}

fn ldap_zhiku(slapd: &Slapd) -> Zhiku {
    Zhiku::new()
        .with_env("ZHIKU_LDAP_URL", &format!("\"{}\"", slapd.url))
        .with_env("ZHIKU_LDAP_BIND_DN", &format!("\"{ADMIN_DN}\""))
        .with_env("ZHIKU_LDAP_BIND_PASSWORD", &format!("\"{ADMIN_PASSWORD}\""))
        .with_env("ZHIKU_LDAP_USER_BASE", &format!("\"ou=people,{BASE}\""))
        .with_env("ZHIKU_LDAP_GROUP_BASE", &format!("\"ou=groups,{BASE}\""))
        .with_env("ZHIKU_LDAP_ADMIN_GROUP", "\"zhiku admins\"")
}

#[test]
fn directory_users_log_in_with_their_directory_password_and_groups() {
    let entries = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n{}{}{}{}{}",
        person("lin", "Lin Fang", "lins-directory-password"),
        person("omar", "Omar Haddad", "omars-directory-password"),
        group("finance", &["lin", "omar"]),
        group("zhiku admins", &["omar"]),
        group("Domain Users", &["lin", "omar"]),
    );
    let slapd = Slapd::start(&entries);
    let z = ldap_zhiku(&slapd);
    let dir = tempfile::tempdir().unwrap();
    let budget = write(dir.path(), "budget.md", "# Budget\n\nThe travel budget for next year is reviewed in October.\n");
    let out = z.run(&["kb", "create", "finance", "--acl", "group:finance"]);
    assert!(out.status.success());
    z.ingest("finance", &[Path::new(&budget)], &[]);
    let server = z.serve();

    // A wrong password, an empty one (an anonymous bind to LDAP) and an unknown user fail alike.
    for (user, password) in [("lin", "wrong"), ("lin", ""), ("nobody", "whatever-password"), ("lin)(uid=*", "x")] {
        let (status, cookie, body) = login(&server.url, user, password);
        assert_eq!(status, 401, "{user}/{password}: {body}");
        assert!(cookie.is_empty());
    }
    let (status, cookie, body) = login(&server.url, "lin", "lins-directory-password");
    assert_eq!(status, 200, "{body}");
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"].as_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    let headers = [("Cookie", session.as_str()), ("X-CSRF-Token", csrf.as_str()), ("Content-Type", "application/json")];
    let (status, body) = http(&server.url, "POST", "/api/search", &headers, r#"{"kb":"finance","query":"travel budget"}"#).parts();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("budget.md"), "lin reads through the directory's finance group: {body}");

    let (status, _, body) = login(&server.url, "omar", "omars-directory-password");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["admin"], true, "omar is in the directory's admin group");
    drop(server);

    let users = z.json(&["user", "list", "--json"]);
    let lin = users["users"].as_array().unwrap().iter().find(|u| u["name"] == "lin").unwrap().clone();
    assert_eq!((lin["origin"].as_str(), lin["has_password"].as_bool()), (Some("ldap"), Some(false)), "no password kept: {lin}");
    let groups = String::from_utf8(z.run(&["group", "list"]).stdout).unwrap();
    assert!(groups.contains("group:finance\tuser:lin") && groups.contains("group:Domain-Users\tuser:lin"), "{groups}");

    // The directory changes: lin leaves finance, omar leaves the company.
    slapd.modify(&format!("dn: cn=finance,ou=groups,{BASE}\nchangetype: modify\ndelete: member\nmember: uid=lin,ou=people,{BASE}\n"));
    slapd.modify(&format!("dn: uid=omar,ou=people,{BASE}\nchangetype: delete\n"));
    let report = z.json(&["ldap", "sync", "--json"]);
    assert_eq!(report["users"], 1, "{report}");
    assert_eq!(report["disabled"], serde_json::json!(["omar"]), "{report}");
    let groups = String::from_utf8(z.run(&["group", "list"]).stdout).unwrap();
    assert!(!groups.contains("group:finance\tuser:lin"), "{groups}");
    assert!(z.search("finance", "travel budget", Some("lin"), 3).is_empty(), "lin left finance");

    let server = z.serve();
    let (status, _, _) = login(&server.url, "omar", "omars-directory-password");
    assert_eq!(status, 401, "a user gone from the directory cannot log in");
    drop(server);
    let audit = String::from_utf8(z.run(&["audit", "export"]).stdout).unwrap();
    assert!(audit.contains("\"ldap.sync\"") && audit.contains("\"login\"") && !audit.contains("directory-password"));
}

#[test]
fn a_directory_that_cannot_be_reached_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let z = Zhiku::new()
        .with_env("ZHIKU_LDAP_URL", &format!("\"ldap://127.0.0.1:{port}\""))
        .with_env("ZHIKU_LDAP_USER_BASE", "\"ou=people,dc=example,dc=com\"");
    let out = z.run(&["ldap", "sync"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("ldap://127.0.0.1:{port}")), "{stderr}");
    let bad = Zhiku::new().with_env("ZHIKU_LDAP_URL", "\"ldaps://x\"").run(&["ldap", "sync"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("ldap.url"));
}

#[test]
fn directory_users_log_in_through_any_replica_over_a_shared_database() {
    let entries = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n{}{}{}",
        person("lin", "Lin Fang", "lins-directory-password"),
        person("omar", "Omar Haddad", "omars-directory-password"),
        group("finance", &["lin", "omar"]),
    );
    let slapd = Slapd::start(&entries);
    let pg = postgres::Postgres::start();
    let url = pg.database("directory");
    let cli = ldap_zhiku(&slapd).with_env("ZHIKU_DATABASE_URL", &url);
    let dir = tempfile::tempdir().unwrap();
    let budget = write(dir.path(), "budget.md", "# Budget\n\nThe travel budget for next year is reviewed in October.\n");
    cli.json(&["ingest", budget.to_str().unwrap(), "--kb", "finance", "--acl", "group:finance", "--json"]);
    let (replica_a, replica_b) =
        (ldap_zhiku(&slapd).with_env("ZHIKU_DATABASE_URL", &url), ldap_zhiku(&slapd).with_env("ZHIKU_DATABASE_URL", &url));
    let (a, b) = (replica_a.serve(), replica_b.serve());

    assert_eq!(login(&a.url, "lin", "wrong").0, 401);
    let (status, cookie, body) = login(&a.url, "lin", "lins-directory-password");
    assert_eq!(status, 200, "{body}");
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"].as_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    // The account and its directory groups are the database's: the other replica knows both.
    let headers = [("Cookie", session.as_str()), ("X-CSRF-Token", csrf.as_str()), ("Content-Type", "application/json")];
    let (status, body) = http(&b.url, "POST", "/api/search", &headers, r#"{"kb":"finance","query":"travel budget"}"#).parts();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("budget.md"), "lin reads through the directory's finance group on the other replica: {body}");
    let users = cli.json(&["user", "list", "--json"]);
    assert_eq!(users["users"][0]["origin"], "ldap", "{users}");

    // A sync against the shared database: omar's account appears, lin leaves finance everywhere.
    slapd.modify(&format!("dn: cn=finance,ou=groups,{BASE}\nchangetype: modify\ndelete: member\nmember: uid=lin,ou=people,{BASE}\n"));
    let report = cli.json(&["ldap", "sync", "--json"]);
    assert_eq!(report["created"], serde_json::json!(["omar"]), "{report}");
    let (status, body) = http(&a.url, "POST", "/api/search", &headers, r#"{"kb":"finance","query":"travel budget"}"#).parts();
    assert_eq!(status, 200);
    assert!(!body.contains("budget.md"), "lin left finance: {body}");
}
