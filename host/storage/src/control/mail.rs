//! The host's own mail: password resets and invitations. They carry
//! tokens, so they never enter a tenant's file (no event, outbox, email or
//! notification row there): they are written here, in control.db, and
//! delivered by the host (`malipo::platform_mail`) through the operator's
//! SMTP server, retried with backoff while it is unavailable. Without an
//! SMTP server they wait here, where an operator can read them. Tokens
//! never appear in HTTP responses.

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::{now_rfc3339, unix_now};

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

/// A queued message due for delivery.
#[derive(Clone, Debug)]
pub struct QueuedMail {
    /// Row id (the `Message-ID` is derived from it).
    pub id: i64,
    /// Recipient address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// HTML alternative, if any.
    pub html: Option<String>,
    /// `password_reset`, `invitation`.
    pub kind: String,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// Attempts after which a message that keeps failing is given up.
pub const MAX_ATTEMPTS: i64 = 10;

impl ControlDb {
    /// Queues a message (no organization, no HTML).
    pub fn queue_mail(&self, mail: &OutgoingMail) -> Result<(), ControlError> {
        self.queue_branded_mail(mail, None, None)
    }

    /// Queues a message for delivery now, with its HTML alternative and the
    /// organization it is about (for branding and the operator's view).
    pub fn queue_branded_mail(
        &self,
        mail: &OutgoingMail,
        html: Option<&str>,
        tenant: Option<TenantId>,
    ) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO mail_outbox (recipient, subject, body, kind, created_at, html, tenant_id, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
            params![
                mail.recipient,
                mail.subject,
                mail.body,
                mail.kind,
                now_rfc3339(),
                html,
                tenant.map(|t| t.to_string())
            ],
        )?;
        Ok(())
    }

    /// The oldest message due for delivery, if any.
    pub fn next_due_mail(&self) -> Result<Option<QueuedMail>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT id, recipient, subject, body, html, kind, attempts FROM mail_outbox
                  WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1
                  ORDER BY id LIMIT 1",
                [unix_now()],
                |row| {
                    Ok(QueuedMail {
                        id: row.get(0)?,
                        recipient: row.get(1)?,
                        subject: row.get(2)?,
                        body: row.get(3)?,
                        html: row.get(4)?,
                        kind: row.get(5)?,
                        attempts: row.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records a delivered message.
    pub fn mail_sent(&self, id: i64) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE mail_outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Records a failed attempt: tried again after `retry_in_secs`, or
    /// given up (`None`, or after [`MAX_ATTEMPTS`]).
    pub fn mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_in_secs: Option<i64>,
    ) -> Result<(), ControlError> {
        let error: String = error.chars().take(500).collect();
        self.conn()?.execute(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?2,
                    next_attempt_at = ?3,
                    failed_at = CASE WHEN ?4 OR attempts + 1 >= ?5 THEN ?6 ELSE NULL END
              WHERE id = ?1",
            params![
                id,
                error,
                unix_now() + retry_in_secs.unwrap_or(0),
                retry_in_secs.is_none(),
                MAX_ATTEMPTS,
                now_rfc3339()
            ],
        )?;
        Ok(())
    }
}
