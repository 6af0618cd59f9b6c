//! A real SIP server for the tests: Debian's kamailio with a minimal configuration on a
//! loopback port (UDP and TCP), answering OPTIONS with a chosen code.

use std::os::unix::process::CommandExt;
use std::path::Path;

/// A kamailio and its worker processes (its own process group), stopped — all of them —
/// when dropped.
pub struct Kamailio(std::process::Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while self.0.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Its workers too, whatever the main process did.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// kamailio on `port` (UDP and TCP), answering OPTIONS with `code`; stopped when dropped.
pub fn kamailio(dir: &Path, port: u16, code: &str, reason: &str) -> Kamailio {
    let binary = Path::new("/usr/sbin/kamailio");
    assert!(binary.exists(), "kamailio is not installed: run `apt-get install -y kamailio` (scripts/test does this)");
    let run = dir.join(format!("kamailio-{port}"));
    std::fs::create_dir_all(&run).expect("run dir");
    let cfg = run.join("kamailio.cfg");
    std::fs::write(
        &cfg,
        format!(
            "#!KAMAILIO\ndebug=0\nlog_stderror=yes\nchildren=1\n\
             listen=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}\n\
             mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\n\
             request_route {{\n  if ($rm == \"OPTIONS\") {{ sl_send_reply(\"{code}\", \"{reason}\"); exit; }}\n  sl_send_reply(\"501\", \"Not Implemented\");\n}}\n"
        ),
    )
    .expect("config");
    let child = std::process::Command::new(binary)
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-Y"])
        .arg(&run)
        .arg("-P")
        .arg(run.join("kamailio.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start kamailio");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "kamailio listens on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Kamailio(child)
}
