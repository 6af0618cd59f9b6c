//! Channels: build the message for one channel, send it once, and say whether a failure
//! is worth retrying. Retries, backoff, fallback, metrics and logs belong to the outbox.

mod alertmanager;
mod email;
mod webhook;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::alert::message::{MessageContext, Rendered};
use crate::config::alerting::Channel;
use crate::model::incident::Notification;

pub use alertmanager::{alert as alertmanager_alert, post_alerts};
pub use email::message_id;
pub use webhook::generic_body;

/// How long one delivery attempt may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

pub use crate::http_client::{HttpClient, http_client};

/// A failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether trying again later may succeed (a refused connection, 5xx, 429, timeout).
    pub retryable: bool,
    pub message: String,
}

impl SendError {
    /// A failure worth trying again.
    pub fn retry(message: impl Into<String>) -> SendError {
        SendError { retryable: true, message: message.into() }
    }

    fn permanent(message: impl Into<String>) -> SendError {
        SendError { retryable: false, message: message.into() }
    }
}

/// Sends one notification through one channel, once.
pub async fn send(
    channel: &Channel,
    n: &Notification,
    rendered: &Rendered,
    ctx: &MessageContext,
    http: &HttpClient,
) -> Result<(), SendError> {
    let attempt = async {
        match channel {
            Channel::Email(e) => email::send(e, n, rendered).await,
            Channel::Webhook(w) => webhook::send(w, n, rendered, ctx, http).await,
            Channel::Alertmanager(a) => alertmanager::send(a, n, rendered, ctx, http).await,
        }
    };
    match tokio::time::timeout(SEND_TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err(SendError::retry(format!("no answer within {}", humantime::format_duration(SEND_TIMEOUT)))),
    }
}

/// POSTs a JSON body; 2xx is success, 429/5xx and transport errors are retryable.
async fn post_json(http: &HttpClient, url: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Result<(), SendError> {
    let mut req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("Vigil/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| SendError::permanent(format!("bad request: {e}")))?;
    // Errors are logged and stored: the URL shows without its path, query or userinfo.
    let shown = crate::config::redact_url(url);
    let resp = http.request(req).await.map_err(|e| SendError::retry(format!("{shown}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else if status.as_u16() == 429 || status.is_server_error() {
        Err(SendError::retry(format!("{shown} answered {status}")))
    } else {
        Err(SendError::permanent(format!("{shown} answered {status}")))
    }
}
