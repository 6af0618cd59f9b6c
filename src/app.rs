//! Wires the subsystems together: config → scheduler → pipeline (metrics, state, store)
//! and the web server, with reload and graceful shutdown.
//!
//! [`App::start`] returns once the server is listening, so tests run the whole daemon
//! in-process; [`run`] is the daemon's main loop with shutdown as a parameter.
//!
//! size: `App::start` wires every subsystem in the order they depend on one another — one place to read the wiring.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors};
use crate::delivery::{Outlook, outbox};
use crate::metrics::Metrics;
use crate::model::now_ms;
use crate::pipeline::{Control, Event, Outputs, Pipeline, Resume};
use crate::probe::Prober;
use crate::probe::heartbeat::{Beat, HeartbeatBook};
use crate::scheduler::Scheduler;
use crate::status::Board;
use crate::store;
use crate::web::{self, ReloadError, ReloadRequest, WebState};

/// Connections waiting to be accepted: Rust's default of 128 overflows when a scrape burst
/// or many `/probe` requests arrive at once (seen at 200 parallel requests: SYNs dropped,
/// clients retrying after 1 s).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the server's listening socket (address reuse on, a deep accept queue).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A tokio listener on a copy of an already bound socket.
fn adopt(bound: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    let socket = bound.try_clone()?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket)
}

/// Descriptors kept for the store, the server's connections and the ICMP sockets.
const FILES_BESIDE_PROBES: u64 = 256;

/// Raises the soft limit on open files to the hard limit (as Go programs such as
/// blackbox_exporter do), so `max_concurrent_probes` sockets can be open at once; warns
/// when even the hard limit is too low.
fn raise_open_files_limit(max_concurrent_probes: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        tracing::warn!(soft, hard, "cannot raise the open-files limit");
    }
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s);
    let needed = max_concurrent_probes as u64 + FILES_BESIDE_PROBES;
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            "the open-files limit is below scheduler.max_concurrent_probes + {FILES_BESIDE_PROBES}: \
             raise it (LimitNOFILE= in the systemd unit) or lower max_concurrent_probes"
        );
    }
}

/// Where the configuration comes from (and is re-read from on reload).
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A root file on disk.
    File(PathBuf),
    /// Text in memory (the demo's), with the path used in messages, and values for its
    /// `${NAME}` references (and its includes'), looked up before the process environment.
    Text { path: PathBuf, text: String, env: Vec<(String, String)> },
}

impl ConfigSource {
    /// Loads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::File(path) => config::load(path),
            ConfigSource::Text { path, text, env } => {
                let lookup = |name: &str| {
                    env.iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .or_else(|| config::env::process_env(name))
                };
                config::load_from_text(path, text, &lookup)
            }
        }
    }
}

/// The part of `config` this instance runs: its shard's (`--shard`), or as a cluster node,
/// the targets the live `members` give it (all of them while the members are not known:
/// duplicates over silence) — plus, either way, the helpers those depend on.
fn owned_part(
    config: Config,
    shard: Option<config::shard::Shard>,
    members: Option<&crate::cluster::Members>,
) -> Config {
    let config = match shard {
        Some(shard) => shard.apply(config),
        None => config,
    };
    let (Some(members), Some(cluster)) = (members, config.cluster.as_ref()) else { return config };
    let live = members.read().unwrap_or_else(|p| p.into_inner()).clone();
    if live.is_empty() {
        return config;
    }
    let live: Vec<(String, Vec<String>)> = live.into_iter().map(|m| (m.name, m.labels)).collect();
    let (node, replicas) = (cluster.node.clone(), cluster.replicas);
    config::shard::node_part(config, &live, &node, replicas)
}

/// Targets run as their owner (helpers not counted).
fn owned_targets(config: &Config) -> usize {
    config.targets().filter(|(_, _, t)| !config.helpers.contains_key(t.id())).count()
}

/// Options that override the configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Listen here instead of `server.listen`.
    pub listen: Option<SocketAddr>,
    /// Serve only, without probing (to look at a configuration's pages safely).
    pub no_probes: bool,
    /// The clock the pipeline decides by (reminders, escalations, flapping, maintenance);
    /// the system's when None. Tests hand in a [`crate::model::TestClock`].
    pub clock: Option<Arc<dyn crate::model::Clock>>,
    /// Run only this shard's targets (`--shard i/n`), at start and at every reload.
    pub shard: Option<config::shard::Shard>,
    /// Serve on this already bound socket (its address is `listen`), so nothing else can
    /// take the port between choosing it and serving on it.
    pub listener: Option<Arc<std::net::TcpListener>>,
}

/// A running daemon.
pub struct App {
    addr: SocketAddr,
    shutdown: CancellationToken,
    reload: mpsc::Sender<ReloadRequest>,
    events: broadcast::Sender<Event>,
    control: mpsc::Sender<Control>,
    monthly_checks: watch::Receiver<u64>,
    monthly_queued: Arc<std::sync::atomic::AtomicU64>,
    /// The status board (what `/api/v1/status` shows).
    status: Arc<RwLock<Board>>,
    done: JoinHandle<()>,
}

impl App {
    /// Loads the configuration, opens the store, binds the server and starts probing.
    pub async fn start(source: ConfigSource, overrides: Overrides) -> Result<App, StartError> {
        let loaded = source.load().map_err(StartError::Config)?;
        let members = match &loaded.cluster {
            Some(cluster) => Some(crate::cluster::join(cluster, loaded.storage.postgres.is_some()).await),
            None => None,
        };
        // A node sharing its store with a cluster shows the whole cluster on its pages.
        let cluster_view = (loaded.cluster.is_some() && loaded.storage.postgres.is_some()).then(|| {
            let full = Arc::new(loaded.clone());
            Arc::new(RwLock::new(crate::status::ClusterView {
                config: full,
                states: Default::default(),
                open_incidents: Vec::new(),
            }))
        });
        let config = Arc::new(owned_part(loaded, overrides.shard, members.as_ref()));
        if let Some(shard) = overrides.shard {
            tracing::info!(%shard, helpers = config.helpers.len(), "running one shard of the configuration");
        }
        for warning in config.warnings(overrides.listen) {
            tracing::warn!("{warning}");
        }
        raise_open_files_limit(config.scheduler.max_concurrent_probes);
        // An agent queues what it measures for its centre, in the transaction that stores it.
        if let Err(e) = store::forward::set_forwarding(&config.storage.path, config.agent.is_some()) {
            if config.agent.is_some() {
                tracing::error!(error = %e, "cannot queue results for the centre");
            } else {
                tracing::debug!(error = %e, "cannot check the store's forwarding triggers");
            }
        }
        let spool = config.storage.postgres.is_some().then(|| store::SpoolAt {
            path: config.storage.path.with_extension("spool"),
            node: config.cluster.as_ref().map(|c| c.node.clone()),
        });
        let (store, mut restored) = store::open_or_degraded(store::Location::of(&config.storage), spool);
        if config.storage.postgres.is_some() {
            store.send(store::Record::ReleaseUnstoredAfter(config.unstored_grace()));
        }
        let fence = match (&config.cluster, &config.storage.postgres) {
            (Some(cluster), Some(_)) => Some(store::Fence::new(&cluster.node)),
            _ => None,
        };
        if let Some(fence) = &fence {
            store.send(store::Record::Fence(fence.clone()));
        }
        if let (Some(cluster), Some(_)) = (&config.cluster, &config.storage.postgres) {
            // A shared outbox: this node delivers what it made; the sweeper claims the rest
            // once their makers are gone.
            restored.pending.retain(|n| n.node.as_deref() == Some(cluster.node.as_str()));
        }
        let heartbeats = Arc::new(HeartbeatBook::default());
        heartbeats.set_tokens(&config);
        for h in restored.heartbeats {
            heartbeats.restore(h.target, Beat { at_ms: h.at_ms, ok: h.ok, message: h.message });
        }
        let store_writer = store.writer();
        let store_health = store.health();
        let metrics = Arc::new(Metrics::new(config.instance.location.as_deref()));
        metrics.reload_ok.set(1);
        metrics.reload_time.set(now_ms() as f64 / 1000.0);
        let listen = overrides.listen.unwrap_or(config.server.listen);
        let listener = match &overrides.listener {
            Some(bound) => adopt(bound),
            None => bind(listen),
        }
        .map_err(|error| StartError::Listen { addr: listen, error })?;
        let addr = listener.local_addr().map_err(|error| StartError::Listen { addr: listen, error })?;

        let board = Arc::new(RwLock::new(Board {
            config: config.clone(),
            targets: Default::default(),
            open_incidents: Vec::new(),
            vantages: Default::default(),
        }));
        let (events, _) = broadcast::channel(4096);
        let (results_tx, results_rx) = mpsc::channel(4096);
        let (control_tx, control_rx) = mpsc::channel(16);
        let (reload_tx, reload_rx) = mpsc::channel(8);

        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let notes_sweeper = notes_tx.clone();
        let (outlook, outlook_rx) = watch::channel(Outlook {
            config: config.clone(),
            open_incidents: restored.open_incidents.clone(),
            retired: Vec::new(),
        });
        let resume = Resume {
            states: restored.states,
            open_incidents: restored.open_incidents,
            last_incident_id: restored.last_incident_id,
            maintenance: restored.maintenance,
            watched: restored.watched,
            flap_changes: restored.flap_changes,
        };
        let monthly_stop = CancellationToken::new();
        let monthly = crate::report::monthly::spawn(
            outlook_rx.clone(),
            store::Location::of(&config.storage),
            store_writer.clone(),
            notes_tx.clone(),
            monthly_stop.clone(),
        );
        let on_demand = Arc::new(crate::scheduler::OnDemand::default());
        // An agent's centre counts as reachable from the start: its own alerts wait
        // `alert_after` before they speak.
        // An agent's last answer from its centre; a cluster node's last lease renewal.
        let centre_contact = (config.agent.is_some() || config.cluster.is_some())
            .then(|| Arc::new(std::sync::atomic::AtomicI64::new(now_ms())));
        let outputs = Outputs {
            board: board.clone(),
            outlook,
            events: events.clone(),
            notifications: notes_tx.clone(),
            on_demand: on_demand.clone(),
            centre_contact: centre_contact.clone(),
        };
        let clock = overrides.clock.clone().unwrap_or_else(|| Arc::new(crate::model::SystemClock));
        let pipeline = Pipeline::new(config.clone(), metrics.clone(), store, resume, outputs, clock.clone());
        let pipeline = if overrides.no_probes { pipeline.without_watchdog() } else { pipeline };
        let pipeline = tokio::spawn(pipeline.run(results_rx, control_rx));
        let delivery_stop = CancellationToken::new();
        let dispatcher = outbox::spawn(
            restored.pending,
            restored.pending_attempts,
            notes_rx,
            outlook_rx,
            store_writer.clone(),
            metrics.clone(),
            delivery_stop.clone(),
        );
        let forwarder = match (&config.agent, store_writer.clone()) {
            (Some(agent), Some(writer)) => Some(crate::agent::spawn(
                agent.clone(),
                crate::agent::Links {
                    store: config.storage.path.clone(),
                    writer,
                    metrics: metrics.clone(),
                    clock: clock.clone(),
                    reload: reload_tx.clone(),
                    contact: centre_contact.clone().unwrap_or_default(),
                },
                delivery_stop.clone(),
            )),
            _ => None,
        };
        let prober = Arc::new(Prober::with_heartbeats(heartbeats.clone()));
        let mut scheduler = Scheduler::new(
            prober.clone(),
            results_tx,
            config.scheduler.max_concurrent_probes,
            on_demand,
            clock.clone(),
        );
        if !overrides.no_probes {
            scheduler.apply(&config);
        }

        let status_board = board.clone();
        let web_state = Arc::new(WebState {
            metrics: metrics.clone(),
            board,
            reload: reload_tx.clone(),
            tls: RwLock::new(config.server.tls.clone().map(tokio_rustls::TlsAcceptor::from)),
            admin_token: RwLock::new(config.server.admin_token.clone()),
            ready: AtomicBool::new(true),
            heartbeats: heartbeats.clone(),
            store: store_writer,
            prober,
            pipeline: control_tx.clone(),
            reader: store::Reader::new(store::Location::of(&config.storage)),
            store_health,
            probe_permits: tokio::sync::Semaphore::new(web::PROBE_CONCURRENCY),
            sessions: Default::default(),
            heavy: tokio::sync::Semaphore::new(web::HEAVY_AT_ONCE),
            cluster_view: cluster_view.clone(),
        });
        let shutdown = CancellationToken::new();
        let web = tokio::spawn(web::serve(listener, web_state.clone(), shutdown.child_token()));
        tracing::info!(%addr, systems = config.systems.len(), targets = config.targets().count(), "vigil is running");
        crate::memory::give_back_later();

        let app_control = control_tx.clone();
        let monthly_task = monthly.task;
        if let (Some(cluster), Some(members)) = (&config.cluster, &members) {
            metrics.cluster_assigned.set(owned_targets(&config) as i64);
            if let Some(view) = cluster_view {
                let every = (cluster.failover_delay / 3).min(std::time::Duration::from_secs(2));
                let links = crate::cluster::ViewLinks {
                    view,
                    board: status_board.clone(),
                    metrics: metrics.clone(),
                    pipeline: control_tx.clone(),
                    store: web_state.store.clone(),
                };
                crate::cluster::spawn_view(links, store::Location::of(&config.storage), every, shutdown.child_token());
            }
            if config.storage.postgres.is_some() {
                crate::cluster::spawn_sweeper(
                    cluster.clone(),
                    store::Location::of(&config.storage),
                    notes_sweeper.clone(),
                    shutdown.child_token(),
                );
            }
            crate::cluster::spawn(
                cluster.clone(),
                crate::cluster::Links {
                    members: members.clone(),
                    metrics: metrics.clone(),
                    reload: reload_tx.clone(),
                    renewed: centre_contact.clone().unwrap_or_default(),
                    fence,
                },
                shutdown.child_token(),
            );
        }
        let control = ControlLoop {
            source,
            shard: overrides.shard,
            members,
            scheduler,
            control: control_tx,
            metrics,
            web: web_state,
            probing: !overrides.no_probes,
        };
        let stop = shutdown.clone();
        let done = tokio::spawn(async move {
            control.run(reload_rx, stop).await;
            monthly_stop.cancel();
            let _ = monthly_task.await;
            let store = pipeline.await;
            // Deliveries in flight finish and record their outcome; the rest stay in the outbox.
            delivery_stop.cancel();
            let _ = dispatcher.await;
            if let Some(forwarder) = forwarder {
                let _ = forwarder.await;
            }
            match store {
                Ok(store) => store.close().await,
                Err(e) => tracing::error!(error = %e, "pipeline task failed"),
            }
            let _ = web.await;
            tracing::info!("vigil stopped");
        });
        Ok(App {
            addr,
            shutdown,
            reload: reload_tx,
            events,
            control: app_control,
            monthly_checks: monthly.checks,
            monthly_queued: monthly.queued,
            status: status_board,
            done,
        })
    }

    /// What `/api/v1/status` shows now (for tests that cannot speak the server's TLS).
    pub fn status_json(&self) -> serde_json::Value {
        self.status.read().unwrap_or_else(|p| p.into_inner()).to_json()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Events of every processed probe result.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Reloads the configuration (as SIGHUP does); returns its warnings, or the errors of a
    /// rejected one.
    pub async fn reload(&self) -> Result<Vec<String>, ReloadError> {
        request_reload(&self.reload).await
    }

    /// Runs the pipeline's timers now and waits until every notification and record they
    /// (and every result before) decided is committed to the store — so a test proves that
    /// something did not happen without sleeping. The monthly report task's first look at
    /// the clock is waited for too.
    pub async fn settle(&self) {
        let (done, answer) = oneshot::channel();
        if self.control.send(Control::Settle(done)).await.is_ok() {
            let _ = answer.await;
        }
        let mut checked = self.monthly_checks.clone();
        let _ = checked.wait_for(|n| *n > 0).await;
    }

    /// How many monthly reports were queued since start (each one a notification per
    /// receiver not yet sent it).
    pub fn monthly_reports_queued(&self) -> u64 {
        self.monthly_queued.load(Ordering::Relaxed)
    }

    /// A handle that can request reloads (for signal handlers).
    pub fn reload_handle(&self) -> mpsc::Sender<ReloadRequest> {
        self.reload.clone()
    }

    /// Stops probing, lets probes in flight finish, flushes the store and stops serving.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }
}

/// Asks the control loop for a reload and waits for its answer.
pub async fn request_reload(sender: &mpsc::Sender<ReloadRequest>) -> Result<Vec<String>, ReloadError> {
    let (respond, answer) = oneshot::channel();
    sender.send(ReloadRequest { respond }).await.map_err(|_| ReloadError::ShuttingDown)?;
    answer.await.map_err(|_| ReloadError::ShuttingDown)?
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n{0}")]
    Config(ConfigErrors),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
}

/// How long a reload in a cluster sharing a store waits for this node's records to be written.
const SETTLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Owns the scheduler; applies reloads, and stops everything at shutdown.
struct ControlLoop {
    source: ConfigSource,
    shard: Option<config::shard::Shard>,
    /// The cluster's live nodes, when this is a cluster node.
    members: Option<crate::cluster::Members>,
    scheduler: Scheduler,
    control: mpsc::Sender<Control>,
    metrics: Arc<Metrics>,
    web: Arc<WebState>,
    probing: bool,
}

impl ControlLoop {
    async fn run(mut self, mut requests: mpsc::Receiver<ReloadRequest>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(req) = requests.recv() => {
                    let result = self.reload().await;
                    let _ = req.respond.send(result);
                }
            }
        }
        self.web.ready.store(false, Ordering::Relaxed);
        self.scheduler.stop().await;
        // Dropping the scheduler and the control sender lets the pipeline drain and end.
    }

    /// Waits (a while at most) until what this node decided so far is in the shared store,
    /// so the targets a reload gives it are read from the store after its own last word
    /// on them — after a cut from the database, what it kept is written first.
    async fn settle_store(&self) {
        let (done, answer) = oneshot::channel();
        if self.control.send(Control::Settle(done)).await.is_ok()
            && tokio::time::timeout(SETTLE_PATIENCE, answer).await.is_err()
        {
            tracing::warn!("the store did not take this node's records in time: the reload goes on");
        }
    }

    async fn reload(&mut self) -> Result<Vec<String>, ReloadError> {
        match self.source.load() {
            Ok(config) => {
                if let Some(view) = &self.web.cluster_view {
                    view.write().unwrap_or_else(|p| p.into_inner()).config = Arc::new(config.clone());
                }
                let config = Arc::new(owned_part(config, self.shard, self.members.as_ref()));
                if config.cluster.is_some() {
                    self.metrics.cluster_assigned.set(owned_targets(&config) as i64);
                }
                *self.web.admin_token.write().unwrap_or_else(|p| p.into_inner()) = config.server.admin_token.clone();
                *self.web.tls.write().unwrap_or_else(|p| p.into_inner()) =
                    config.server.tls.clone().map(tokio_rustls::TlsAcceptor::from);
                self.web.heartbeats.set_tokens(&config);
                if config.cluster.is_some() && config.storage.postgres.is_some() {
                    self.settle_store().await;
                }
                let (respond, answer) = oneshot::channel();
                if self.control.send(Control::Reconfigure(config.clone(), respond)).await.is_err() {
                    return Err(ReloadError::ShuttingDown);
                }
                let mut warnings = answer.await.map_err(|_| ReloadError::ShuttingDown)?;
                if self.probing {
                    self.scheduler.apply(&config);
                }
                self.metrics.reload_ok.set(1);
                self.metrics.reload_time.set(now_ms() as f64 / 1000.0);
                tracing::info!(targets = config.targets().count(), "configuration reloaded");
                crate::memory::give_back_later();
                warnings.extend(config.warnings(None).into_iter().map(|w| w.to_string()));
                for warning in &warnings {
                    tracing::warn!("{warning}");
                }
                Ok(warnings)
            }
            Err(errors) => {
                self.metrics.reload_ok.set(0);
                tracing::error!(errors = %errors, "configuration reload failed; the previous configuration keeps running");
                Err(ReloadError::Invalid(errors))
            }
        }
    }
}

/// Runs the daemon until `shutdown` completes; SIGHUP reloads.
pub async fn run(
    source: ConfigSource,
    overrides: Overrides,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let app = App::start(source, overrides).await?;
    let reload = app.reload_handle();
    #[cfg(unix)]
    let hup = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading configuration");
            let _ = request_reload(&reload).await;
        }
    });
    shutdown.await;
    tracing::info!("shutting down");
    #[cfg(unix)]
    hup.abort();
    app.shutdown().await;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
