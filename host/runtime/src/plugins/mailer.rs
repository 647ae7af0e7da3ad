//! The `mail` capability's transport: the operator's SMTP server
//! (`MALIPO_SMTP_URL`), or nothing, in which case plugins keep their
//! messages queued. Nothing else in the host opens an SMTP connection.
//!
//! `MALIPO_SMTP_URL` takes lettre's URL forms: `smtp://host:port` (plain),
//! `smtp://user:pass@host:587?tls=required` (STARTTLS, or
//! `tls=opportunistic`), `smtps://user:pass@host:465` (TLS from the start).
//! `MALIPO_SMTP_FROM` is the sender (default `Malipo <no-reply@localhost>`).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{SmtpTransport, Transport};

use crate::plugins::bindings::mail::{Message, SendError};

/// The sender when `MALIPO_SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "Malipo <no-reply@localhost>";
/// How long one send may take (connect, each command).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where plugin mail goes.
#[derive(Default)]
pub struct Mailer {
    /// The transport, or why the configured URL is unusable; `None` when no
    /// URL is configured.
    transport: Option<Result<SmtpTransport, String>>,
    /// The `From` address.
    from: Option<Mailbox>,
}

impl Mailer {
    /// The transport the environment configures (`MALIPO_SMTP_URL`,
    /// `MALIPO_SMTP_FROM`).
    pub fn from_env() -> Self {
        let url = malipo_foundations::config::var("MALIPO_SMTP_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        let from = malipo_foundations::config::var("MALIPO_SMTP_FROM")
            .ok()
            .filter(|from| !from.trim().is_empty());
        Self::new(url.as_deref(), from.as_deref())
    }

    /// A transport to `url` (none: mail stays queued) sending as `from`.
    pub fn new(url: Option<&str>, from: Option<&str>) -> Self {
        let transport = url.map(|url| {
            SmtpTransport::from_url(url.trim())
                .map(|builder| builder.timeout(Some(TIMEOUT)).build())
                .map_err(|error| {
                    tracing::error!(%error, "MALIPO_SMTP_URL is not a usable SMTP URL");
                    format!("MALIPO_SMTP_URL is not a usable SMTP URL: {error}")
                })
        });
        let from = match from.unwrap_or(DEFAULT_FROM).trim().parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(error) => {
                tracing::error!(%error, "MALIPO_SMTP_FROM is not a mailbox");
                None
            }
        };
        Self { transport, from }
    }

    /// Whether a transport is configured.
    pub fn configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends one message.
    pub fn send(&self, message: &Message) -> Result<(), SendError> {
        let transport = match &self.transport {
            None => return Err(SendError::NotConfigured),
            Some(Err(error)) => return Err(SendError::Unavailable(error.clone())),
            Some(Ok(transport)) => transport,
        };
        let Some(from) = self.from.clone() else {
            return Err(SendError::Unavailable(
                "MALIPO_SMTP_FROM is not a mailbox".into(),
            ));
        };
        let email = build(from, message)?;
        transport.send(&email).map(|_| ()).map_err(classify)
    }
}

/// The MIME message: text alone, or text and HTML as alternatives.
fn build(from: Mailbox, message: &Message) -> Result<lettre::Message, SendError> {
    let to: Mailbox = message
        .to
        .trim()
        .parse()
        .map_err(|error| SendError::Rejected(format!("bad recipient address: {error}")))?;
    let builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()));
    let built = match &message.html {
        Some(html) => builder.multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(message.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
        ),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone()),
    };
    built.map_err(|error| SendError::Rejected(format!("the message cannot be built: {error}")))
}

/// A refusal for good (5xx) is `Rejected`, except the server refusing our
/// own authentication (530, 534, 535, 538: the operator's configuration,
/// which can be fixed); everything else (4xx, connection, TLS, timeout) is
/// `Unavailable`.
fn classify(error: SmtpError) -> SendError {
    let text = error.to_string();
    let auth_problem = error
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535" | "538"));
    if error.is_permanent() && !auth_problem {
        SendError::Rejected(text)
    } else {
        SendError::Unavailable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str) -> Message {
        Message {
            to: to.into(),
            subject: "Hi".into(),
            text: "text".into(),
            html: Some("<p>html</p>".into()),
            message_id: "<e1.payment_receipt@malipo>".into(),
        }
    }

    #[test]
    fn no_url_keeps_mail_queued() {
        let mailer = Mailer::new(None, None);
        assert!(!mailer.configured());
        assert!(matches!(
            mailer.send(&message("a@example.com")),
            Err(SendError::NotConfigured)
        ));
    }

    #[test]
    fn a_bad_url_or_an_unreachable_server_is_unavailable_and_a_bad_address_rejected() {
        let bad = Mailer::new(Some("ftp://nowhere"), None);
        assert!(matches!(
            bad.send(&message("a@example.com")),
            Err(SendError::Unavailable(_))
        ));
        // Nothing listens on port 9 of loopback (discard is never enabled).
        let down = Mailer::new(Some("smtp://127.0.0.1:9"), None);
        assert!(matches!(
            down.send(&message("a@example.com")),
            Err(SendError::Unavailable(_))
        ));
        assert!(matches!(
            down.send(&message("not an address")),
            Err(SendError::Rejected(_))
        ));
    }

    #[test]
    fn html_goes_as_an_alternative_with_the_stable_message_id() {
        let from: Mailbox = DEFAULT_FROM.parse().expect("default from");
        let built = build(from, &message("a@example.com")).expect("built");
        let raw = String::from_utf8_lossy(&built.formatted()).to_string();
        assert!(
            raw.contains("Message-ID: <e1.payment_receipt@malipo>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
    }
}
