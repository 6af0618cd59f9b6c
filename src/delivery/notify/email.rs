//! Email through SMTP (lettre): STARTTLS, implicit TLS, or plain for a loopback relay;
//! multipart text + HTML; the idempotency key as Message-ID, and later mails of the same
//! incident threaded under the first with In-Reply-To/References.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::SendError;
use crate::alert::message::Rendered;
use crate::config::alerting::{EmailChannel, SmtpSecurity};
use crate::model::incident::Notification;

/// The Message-ID of a notification key.
pub fn message_id(key: &str) -> String {
    format!("<{key}@vigil>")
}

pub(super) async fn send(channel: &EmailChannel, n: &Notification, rendered: &Rendered) -> Result<(), SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SendError::permanent(format!("{what}: {e}"));
    let from: Mailbox = channel.from.parse().map_err(|e| bad("from", &e))?;
    let mut builder =
        Message::builder().from(from).subject(rendered.subject.clone()).message_id(Some(message_id(&n.key)));
    for to in &channel.to {
        builder = builder.to(to.parse::<Mailbox>().map_err(|e| bad("to", &e))?);
    }
    if let Some(first) = &n.reply_to {
        let first = message_id(first);
        builder = builder.in_reply_to(first.clone()).references(first);
    }
    let body = MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone());
    let body = match &n.report {
        // The monthly report: the HTML report as the body, the CSV as an attachment.
        Some(r) => {
            let csv_type = ContentType::parse("text/csv; charset=utf-8").map_err(|e| bad("content type", &e))?;
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(rendered.text.clone(), r.html.clone()))
                .singlepart(Attachment::new(format!("vigil-report-{}.csv", r.month)).body(r.csv.clone(), csv_type))
        }
        None => body,
    };
    let email = builder.multipart(body).map_err(|e| bad("building the mail", &e))?;
    let transport = match (channel.security, &channel.ca_pem) {
        (SmtpSecurity::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&channel.host),
        (security, Some(pem)) => {
            // The system's roots and the organisation's CA.
            let ca = Certificate::from_pem(pem).map_err(|e| bad("smtp ca_file", &e))?;
            let params = TlsParameters::builder(channel.host.clone())
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| bad("smtp tls", &e))?;
            let tls = if security == SmtpSecurity::Tls { Tls::Wrapper(params) } else { Tls::Required(params) };
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&channel.host).tls(tls)
        }
        (SmtpSecurity::StartTls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&channel.host).map_err(|e| bad("smtp", &e))?
        }
        (SmtpSecurity::Tls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&channel.host).map_err(|e| bad("smtp", &e))?
        }
    };
    let mut transport = transport.port(channel.port).timeout(Some(super::SEND_TIMEOUT));
    if let (Some(user), Some(password)) = (&channel.username, &channel.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.expose().to_string()));
    }
    match transport.build().send(email).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::permanent(format!("smtp {}: {e}", channel.host))),
        Err(e) => Err(SendError::retry(format!("smtp {}:{}: {e}", channel.host, channel.port))),
    }
}
