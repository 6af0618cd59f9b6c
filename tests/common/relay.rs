//! A TCP relay the test controls, between one node and its database on loopback: `cut`
//! closes every relayed connection and turns new ones away (accepted and closed at once,
//! as a refused port would), `heal` lets them through again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// A running relay to `127.0.0.1:<upstream>`, stopped when dropped.
pub struct Relay {
    /// Where the node connects instead of the database.
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Cancelled at a cut: every connection relayed until then ends.
    links: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Relay {
    /// Starts relaying to the loopback port `upstream`.
    pub async fn start(upstream: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (c, l, s) = (cut.clone(), links.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let mut inbound = tokio::select! {
                    _ = s.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                // The token first: a cut between the two cancels it.
                let link = l.lock().expect("links").child_token();
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = link.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Relay { port, cut, links, stop }
    }

    /// Cuts the node off: its open connections close, new ones are turned away.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut links = self.links.lock().expect("links");
        links.cancel();
        *links = CancellationToken::new();
    }

    /// Lets the node's connections through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
