//! A real NTP server for the tests: Debian's chronyd serving a local clock (`local
//! stratum`) on a loopback port, never touching the system clock (`-x`); stopped when
//! dropped.

use std::path::Path;

/// A running chronyd.
pub struct Chrony {
    pub port: u16,
    _child: super::Reaped,
}

impl Chrony {
    /// chronyd on a free loopback port, as a stratum-`stratum` server.
    pub fn start(dir: &Path, stratum: u8) -> Chrony {
        let binary = Path::new("/usr/sbin/chronyd");
        assert!(binary.exists(), "chrony is not installed: run `apt-get install -y chrony` (scripts/test does this)");
        let port = super::free_port();
        let run = dir.join(format!("chrony-{port}"));
        std::fs::create_dir_all(&run).expect("run dir");
        let conf = run.join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum {stratum}\ncmdport 0\n\
                 pidfile {}\ndriftfile {}\n",
                run.join("chronyd.pid").display(),
                run.join("drift").display()
            ),
        )
        .expect("config");
        let child = std::process::Command::new(binary)
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chronyd");
        // Ready once it answers a request.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut request = [0u8; 48];
        request[0] = 0x23;
        loop {
            let _ = socket.send_to(&request, ("127.0.0.1", port));
            if socket.recv(&mut [0u8; 64]).is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "chronyd answers on {port}");
        }
        Chrony { port, _child: super::Reaped(child) }
    }
}
