//! Vigil: a health monitor for critical 24/7 systems.
//!
//! # Layout
//! Data flows one way: scheduler → probe → outcome → pipeline (metrics, state machine,
//! store, status board) → web.
//!
//! - [`config`]: YAML → validated, typed configuration (every error with file:line:col).
//! - [`condition`]: the Gatus-style condition language (parse, evaluate, display).
//! - [`probe`]: one attempt against one target per kind (http, tcp), giving an outcome.
//! - [`scheduler`]: one timer per target, start jitter, a concurrency bound.
//! - [`alert`]: the pure per-target state machine.
//! - [`pipeline`]: the single consumer of results.
//! - [`store`]: SQLite history and current state, written by one thread.
//! - [`metrics`]: Prometheus families in an app-owned registry.
//! - [`status`]: the live board behind `/api/v1/status`.
//! - [`web`]: the hyper server.
//! - [`app`]: wiring, reload and shutdown.
//! - [`history`]: state intervals split by day (heartbeat bars, badges).
//! - [`report`]: uptime arithmetic and report renderers (html, csv, json, md).
//! - [`demo`]: simulated systems on loopback for `vigil demo` and tests.
//! - [`fuzzing`]: entry points of the fuzz targets (`fuzz/`) and of their corpus replay.
//! - [`cli`]: the `vigil` command's subcommands.

pub mod alert;
pub mod app;
pub mod cli;
pub mod condition;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod fuzzing;
pub mod history;
pub mod http_client;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod scheduler;
pub mod status;
pub mod store;
pub mod web;
