//! Cluster nodes for the tests: `vigil run` processes over their own configurations, and
//! their gauges read from `/metrics`.

use std::time::{Duration, Instant};

use super::{Reaped, get, sample};

/// A node's gauge, if it shows yet.
pub async fn gauge(port: u16, name: &str) -> Option<f64> {
    sample(&get(&format!("http://127.0.0.1:{port}/metrics")).await, name, &[])
}

/// Waits until every node listens (failing if one exits).
pub async fn wait_listening(nodes: &mut [Reaped], ports: &[u16]) {
    for (node, port) in nodes.iter_mut().zip(ports) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
            assert!(node.try_wait().expect("status").is_none(), "a node exited at start");
            assert!(Instant::now() < deadline, "a node listens");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `vigil run` over the node's configuration, stopped when dropped.
pub fn start_node(dir: &std::path::Path) -> Reaped {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "-c"])
        .arg(dir.join("vigil.yaml"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("node starts");
    Reaped(child)
}

/// A node's gauge, waiting for it to appear.
pub async fn wait_gauge(port: u16, name: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = gauge(port, name).await {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} on port {port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
