//! The `mail` capability's transport: the operator's SMTP server
//! (`MALIPO_SMTP_URL`), or nothing, in which case plugins keep their
//! messages queued.

use super::bindings::mail::{Message, SendError};

/// Where plugin mail goes.
#[derive(Default)]
pub struct Mailer {
    /// The configured SMTP URL, if any.
    url: Option<String>,
}

impl Mailer {
    /// The transport the environment configures (`MALIPO_SMTP_URL`).
    pub fn from_env() -> Self {
        Self {
            url: std::env::var("MALIPO_SMTP_URL")
                .ok()
                .filter(|url| !url.trim().is_empty()),
        }
    }

    /// Sends one message.
    pub fn send(&self, _message: &Message) -> Result<(), SendError> {
        match &self.url {
            None => Err(SendError::NotConfigured),
            Some(_) => Err(SendError::Unavailable(
                "SMTP delivery is not built yet".into(),
            )),
        }
    }
}
