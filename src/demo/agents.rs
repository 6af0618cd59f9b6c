//! The demo's vantage points: two commune agents (`vigil agent`, in-process) forwarding to
//! the demo's monitor; the Mường Tè agent reaches it through a link the fault schedule cuts
//! for a while, so a newcomer sees "vantage lost", the agent keeping its results, and the
//! back-fill when the link returns.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Faults;
use crate::app::{App, ConfigSource, Overrides};

/// The demo's vantage points (slug, Vietnamese name); the last one's link drops.
pub const DEMO_VANTAGES: [(&str, &str); 2] = [("tan-phong", "Tân Phong"), ("muong-te", "Mường Tè")];

/// The running agents and the link that can be cut.
pub struct Agents {
    apps: Vec<App>,
    stop: CancellationToken,
}

impl Agents {
    /// Starts one agent per [`DEMO_VANTAGES`] entry, with its `tokens` entry, forwarding to
    /// `centre` (the last one through the flaky link).
    pub async fn start(
        centre: SocketAddr,
        faults: Faults,
        tokens: &[String],
        data_dir: &Path,
    ) -> Result<Agents, super::DemoError> {
        let stop = CancellationToken::new();
        let link = flaky_link(centre, faults, stop.clone()).await?;
        let mut apps = Vec::new();
        for (i, ((slug, _), token)) in DEMO_VANTAGES.iter().zip(tokens).enumerate() {
            let via = if i + 1 == DEMO_VANTAGES.len() { link } else { centre };
            let text = format!(
                "instance: {{ name: {slug}, timezone: Asia/Ho_Chi_Minh, language: vi }}\n\
                 server: {{ listen: \"127.0.0.1:0\" }}\n\
                 storage: {{ path: \"{store}\" }}\n\
                 agent: {{ vantage: {slug}, centre: \"http://{via}\", token: \"{token}\", refresh: 5s, \
                 alert_after: 1h, assignment_file: \"{assignment}\" }}\n",
                store = data_dir.join(format!("agent-{slug}.db")).display(),
                assignment = data_dir.join(format!("assignment-{slug}.yaml")).display(),
            );
            let source = ConfigSource::Text { path: format!("agent-{slug}.yaml").into(), text, env: Vec::new() };
            apps.push(App::start(source, Overrides::default()).await?);
        }
        Ok(Agents { apps, stop })
    }

    /// Stops the agents and the link.
    pub async fn stop(self) {
        for app in self.apps {
            app.shutdown().await;
        }
        self.stop.cancel();
    }
}

/// A TCP relay to `centre` that refuses connections, and drops those it carries, while the
/// fault schedule says the link is down; returns its address.
async fn flaky_link(centre: SocketAddr, faults: Faults, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            };
            if !faults.agent_link_up() {
                continue; // dropped: the connection is closed at once
            }
            let faults = faults.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(centre).await else { return };
                let relay = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                tokio::pin!(relay);
                let mut check = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = &mut relay => return,
                        _ = check.tick() => if !faults.agent_link_up() { return },
                    }
                }
            });
        }
    });
    Ok(addr)
}
