//! The mail outbox of last resort. Email goes through a tenant's
//! `notifications` plugin (see `events::emit_host_event`); a password reset
//! for a user who belongs to no organization (a lone super-admin) has no
//! tenant to go through and waits here, where an operator can read it.
//! Tokens never appear in HTTP responses.

use rusqlite::params;

use super::{ControlDb, ControlError};
use crate::time_util::now_rfc3339;

/// A message to deliver.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    /// Recipient address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// `password_reset`, `invitation`, ...
    pub kind: String,
}

impl ControlDb {
    /// Queues a message.
    pub fn queue_mail(&self, mail: &OutgoingMail) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO mail_outbox (recipient, subject, body, kind, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![mail.recipient, mail.subject, mail.body, mail.kind, now_rfc3339()],
        )?;
        Ok(())
    }
}
