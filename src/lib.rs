//! Vigil: a health monitor for critical 24/7 systems.
//!
//! # Layout
//! Data flows one way: scheduler → probe → outcome → pipeline (state machine, incidents,
//! metrics, store, status board) → delivery (outbox, notifiers). The web, the reports and
//! the CLI read what the pipeline and the store hold. The rooms, from the bottom up
//! (`scripts/check-modules` keeps every import pointing down and fails on a cycle):
//!
//! - [`model`]: the shared vocabulary — states, health, incidents, notifications, time.
//! - [`condition`]: the Gatus-style condition language (parse, evaluate, display).
//! - [`config`]: YAML → validated, typed configuration (every error with file:line:col),
//!   and the probe kinds ([`config::Kind`]: http, tcp, tls, icmp, dns, exec, heartbeat, smtp, websocket, sip, ntp).
//! - [`probe`]: one attempt against one target per kind, giving an outcome.
//! - [`alert`]: pure decisions — the per-target state machine, incidents, routes, messages.
//! - [`store`]: SQLite history and state: one writer thread, one reader ([`store::Reader`]).
//! - [`metrics`]: Prometheus families in an app-owned registry.
//! - [`status`]: the live board behind `/api/v1/status` and the pages.
//! - [`http_client`]: the one outbound HTTP(S) client.
//! - [`delivery`]: the outbox and the notifiers (email, webhook, Alertmanager).
//! - [`report`]: the one uptime accounting ([`report::Ledger`]), the report renderers, the
//!   monthly email task and reading history back from Prometheus.
//! - [`history`]: the colour of the pages' day bars.
//! - [`scheduler`]: one timer per target, start jitter, a concurrency bound.
//! - [`pipeline`]: the single consumer of results (targets, judging, watching).
//! - [`web`]: the hyper server — pages, badges, the API, `/probe`, `/metrics`.
//! - [`app`]: wiring, reload and shutdown.
//! - [`memory`]: freed memory given back to the system after a start or a reload.
//! - [`demo`]: simulated systems on loopback for `vigil demo` and tests.
//! - [`fuzzing`]: entry points of the fuzz targets (`fuzz/`) and of their corpus replay.
//! - [`cli`]: the `vigil` command's subcommands.

pub mod agent;
pub mod alert;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod condition;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod fuzzing;
pub mod history;
pub mod http_client;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod scheduler;
pub mod status;
pub mod store;
pub mod web;
