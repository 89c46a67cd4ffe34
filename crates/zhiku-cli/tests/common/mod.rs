//! Test harness: runs the real `zhiku` binary against a fresh data directory, with the real
//! models installed by scripts/test.sh.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The crate's directory, as `cargo test` gives it to the running test: a test binary built from
/// another checkout sharing the target directory (CI caches it) has that checkout's path compiled
/// in, and it may be gone.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ZHIKU_TEST_MODELS")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_MODELS is not set: run the tests through scripts/test.sh, which installs the models");
    assert!(dir.is_dir(), "ZHIKU_TEST_MODELS={} does not exist; run scripts/test.sh", dir.display());
    dir
}

/// The Debian Reference HTML files (Debian packages debian-reference-en/-zh-cn).
pub fn debian_reference() -> PathBuf {
    let dir = std::env::var_os("ZHIKU_TEST_DEBIAN_REFERENCE")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_DEBIAN_REFERENCE is not set: run the tests through scripts/test.sh, which fetches it");
    assert!(dir.join("ch04.en.html").is_file(), "{} lacks ch04.en.html; run scripts/test.sh", dir.display());
    dir
}

pub struct Zhiku {
    pub data: tempfile::TempDir,
    /// Environment given to every command (configuration overrides such as ZHIKU_RETRIEVAL_*).
    env: Vec<(String, String)>,
}

impl Zhiku {
    pub fn new() -> Self {
        Self { data: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    /// Every command of this instance runs with `key=value` in its environment.
    #[allow(dead_code)] // not every test binary sets configuration
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn command(&self) -> Command {
        self.command_in(self.data.path())
    }

    /// A command on another data directory, with the same models.
    pub fn command_in(&self, data_dir: &Path) -> Command {
        let models = models_dir();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zhiku"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .env("ZHIKU_MODELS_EMBEDDING", models.join("all-MiniLM-L6-v2"))
            .env("ZHIKU_MODELS_LLM", models.join("SmolLM2-135M-Instruct.Q4_1.gguf"))
            .env("ZHIKU_MODELS_MULTILINGUAL_EMBEDDING", models.join("multilingual-e5-small-q4.bin"))
            .env_remove("ZHIKU_CONFIG")
            .env_remove("ZHIKU_LOG")
            .env_remove("ZHIKU_DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs, requires exit code 0, returns stdout parsed as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "zhiku {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("zhiku {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    pub fn ingest(&self, kb: &str, paths: &[&Path], acl: &[&str]) -> Value {
        let mut args: Vec<String> = vec!["ingest".into()];
        args.extend(paths.iter().map(|p| p.to_string_lossy().into_owned()));
        args.extend(["--kb".into(), kb.into(), "--json".into()]);
        for a in acl {
            args.extend(["--acl".into(), a.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.json(&refs)
    }

    pub fn search(&self, kb: &str, query: &str, as_user: Option<&str>, top_k: usize) -> Vec<Value> {
        let k = top_k.to_string();
        let mut args = vec!["search", query, "--kb", kb, "--top-k", &k, "--json"];
        if let Some(u) = as_user {
            args.extend(["--as", u]);
        }
        self.json(&args)["hits"].as_array().unwrap().clone()
    }

    pub fn sources(hits: &[Value]) -> Vec<String> {
        hits.iter().map(|h| h["source"].as_str().unwrap().to_string()).collect()
    }
}

/// A running `zhiku serve`, killed however the test ends.
#[allow(dead_code)] // only the HTTP tests serve
pub struct Server {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Zhiku {
    /// Starts `zhiku serve` on a free port and waits until it listens.
    #[allow(dead_code)]
    pub fn serve(&self) -> Server {
        use std::io::BufRead;
        let mut child = self
            .command()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let mut server = Server { child, url: String::new() };
        // Read after the guard exists, so a failed start still ends the process.
        server.url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("zhiku serve printed {line:?} instead of its address"))
            .to_string();
        server
    }
}

/// Writes a file under `dir`, creating parents, and returns its path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}

/// An HTTP response read whole.
#[allow(dead_code)] // only the HTTP tests use it
pub struct Reply {
    pub status: u16,
    head: String,
    pub body: String,
}

#[allow(dead_code)]
impl Reply {
    pub fn parts(self) -> (u16, String) {
        (self.status, self.body)
    }

    /// A response header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
    }
}

/// One HTTP/1.1 request over a plain socket (no client library between the test and the server).
#[allow(dead_code)]
pub fn http(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Reply { status, head: head.to_string(), body: body.to_string() }
}
