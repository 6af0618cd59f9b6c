//! A real PostgreSQL for the tests: Debian's server binaries, `initdb` in a temporary
//! directory, listening on a loopback port only, run as the `postgres` user when the tests
//! run as root (CI does); stopped (by its own `pg_ctl`) when dropped.

use std::path::PathBuf;
use std::process::Command;

/// A running test instance.
pub struct Postgres {
    /// `host=127.0.0.1 port=… user=vigil dbname=postgres`.
    pub dsn: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL's server is missing: apt-get install postgresql (scripts/test does this)")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `program` as the `postgres` user when we are root (the server refuses root).
fn as_owner(program: &std::path::Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// initdb and start on a free loopback port; waits until it accepts connections.
    pub fn start() -> Postgres {
        let bin = server_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown the test database's directory to postgres");
        }
        let out = as_owner(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "vigil", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = super::free_port();
        let dsn = format!("host=127.0.0.1 port={port} user=vigil dbname=postgres");
        let pg = Postgres { dsn, port, bin, data, _dir: dir };
        pg.run();
        pg
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn run(&self) {
        let dir = self._dir.path();
        let options = format!("-p {} -h 127.0.0.1 -k {} -c fsync=off", self.port, dir.display());
        let out = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("server.log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as in a crash).
    pub fn stop(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ =
            as_owner(&self.bin.join("pg_ctl")).args(["-D"]).arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}
