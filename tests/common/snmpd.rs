//! A real SNMP agent for the tests: Debian's snmpd (net-snmp) on a chosen address — the
//! loopback, or an address inside a test namespace — answering v2c with a community and
//! v3 with one authPriv user (SHA, AES); stopped when dropped. Its state lives in the
//! test's directory (`SNMP_PERSISTENT_DIR`), never in /var/lib/snmp.
//!
//! net-snmp reloads its interface table every 3 s, so counters read between reloads are
//! up to 3 s old; the helper sets that cache's timeout to 0 (`nsCacheTimeout`, the agent's
//! own knob in NET-SNMP-AGENT-MIB) so a rate over a few seconds is exact.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The v2c community of the test agent.
pub const COMMUNITY: &str = "vigil-test-community";
/// The community that may set the agent's cache timeout (the helper only).
const WRITE_COMMUNITY: &str = "vigil-test-write";
/// `nsCacheTimeout` of the ifTable cache (indexed by the table's OID).
const IFTABLE_CACHE_TIMEOUT: &str = "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6.1.2.1.2.2";
/// The v3 user, its authentication (SHA) and privacy (AES) passwords.
pub const V3_USER: &str = "vigilv3";
pub const V3_AUTH: &str = "vigil-auth-pass-1";
pub const V3_PRIV: &str = "vigil-priv-pass-1";

/// A running snmpd.
pub struct Snmpd {
    /// `ip:port` it answers on.
    pub address: String,
    _child: super::Reaped,
}

impl Snmpd {
    /// snmpd answering on `ip:port`, inside network namespace `netns` when given.
    pub fn start(dir: &Path, netns: Option<&str>, ip: &str, port: u16) -> Snmpd {
        let binary = Path::new("/usr/sbin/snmpd");
        assert!(binary.exists(), "snmpd is not installed: run `apt-get install -y snmpd` (scripts/test does this)");
        let run = dir.join(format!("snmpd-{port}"));
        // Its persistent state apart from the configuration: snmpd rewrites that directory's
        // snmpd.conf as its own state file.
        std::fs::create_dir_all(run.join("state")).expect("run dir");
        let conf = run.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "rocommunity {COMMUNITY} default\nrwcommunity {WRITE_COMMUNITY} default\ncreateUser {V3_USER} SHA \"{V3_AUTH}\" AES \"{V3_PRIV}\"\n\
                 rouser {V3_USER} priv\nsysName vigil-test-agent\n"
            ),
        )
        .expect("config");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let address = format!("{ip}:{port}");
        let child = command
            .env("SNMP_PERSISTENT_DIR", run.join("state"))
            .env("MIBS", "")
            .args(["-f", "-C", "-Lf"])
            .arg(run.join("snmpd.log"))
            .arg("-c")
            .arg(&conf)
            .arg(format!("udp:{address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start snmpd");
        let agent = Snmpd { address, _child: super::Reaped(child) };
        // Ready once net-snmp's own snmpget reads sysUpTime from it.
        let deadline = Instant::now() + Duration::from_secs(15);
        while agent.get("1.3.6.1.2.1.1.3.0").is_none() {
            assert!(Instant::now() < deadline, "snmpd answers on {}", agent.address);
            std::thread::sleep(Duration::from_millis(100));
        }
        let set = super::tool("snmpset", "snmp")
            .env("MIBS", "")
            .args(["-v2c", "-c", WRITE_COMMUNITY, &agent.address, IFTABLE_CACHE_TIMEOUT, "i", "0"])
            .output()
            .expect("snmpset");
        assert!(set.status.success(), "set the ifTable cache timeout: {}", String::from_utf8_lossy(&set.stderr));
        agent
    }

    /// One value read with net-snmp's `snmpget` (v2c), to cross-check what Vigil reads.
    pub fn get(&self, oid: &str) -> Option<String> {
        let out = super::tool("snmpget", "snmp")
            .env("MIBS", "")
            .args(["-v2c", "-c", COMMUNITY, "-t", "0.5", "-r", "0", "-Oqv", &self.address, oid])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
}
