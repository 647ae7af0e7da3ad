//! The host's own mail: password resets and invitations, sent from
//! platform-owned templates. An organization's branding (name, logo,
//! colours) dresses them, but nothing of the organization decides what
//! they say or where their link and token go (`<public-url>/reset-password`
//! and `<public-url>/accept-invitation`). They are queued in control.db's
//! `mail_outbox` — never in a tenant's file — and delivered here through the
//! operator's SMTP server (`MALIPO_SMTP_URL`), retried with backoff while it
//! is unavailable; without one they wait in the queue.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::control::OutgoingMail;
use crate::core::Core;
use crate::ids::TenantId;
use crate::plugins::bindings::mail::{Message, SendError};

/// Wakes the delivery loop when a message was queued.
static SIGNAL: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// How often the queue is looked at when nothing wakes the loop.
const INTERVAL: Duration = Duration::from_secs(5);
/// First retry delay; doubled per attempt, at most [`MAX_BACKOFF_SECS`].
const BACKOFF_SECS: i64 = 5;
const MAX_BACKOFF_SECS: i64 = 3600;

/// How a message is dressed: the organization's branding, or Malipo's.
#[derive(Clone, Debug)]
pub struct Branding {
    /// Shown as the sender's name and in the header.
    pub name: String,
    /// An http(s) logo URL (checked when it was set).
    pub logo_url: Option<String>,
    /// `#RRGGBB`.
    pub primary: String,
    /// `#RRGGBB`.
    pub secondary: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            name: "Malipo".into(),
            logo_url: None,
            primary: "#0B6E4F".into(),
            secondary: "#F3F4F6".into(),
        }
    }
}

/// The branding of `tenant` (its name when no display name is set); the
/// platform's when the organization's file cannot be read.
pub fn branding_of(state: &Core, tenant: TenantId) -> Branding {
    let name = state
        .control
        .tenant(tenant)
        .ok()
        .flatten()
        .map(|t| t.name)
        .unwrap_or_else(|| "Malipo".into());
    let stored = state.tenancy.get(tenant).ok().and_then(|db| {
        let conn = db.conn().ok()?;
        crate::resources::branding_row(&conn).ok()
    });
    let text = |value: Option<&serde_json::Value>| {
        value
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let fallback = Branding::default();
    match stored {
        Some(row) => Branding {
            name: text(row.get("display_name")).unwrap_or(name),
            logo_url: text(row.get("logo_url")),
            primary: text(row.get("primary_colour")).unwrap_or(fallback.primary),
            secondary: text(row.get("secondary_colour")).unwrap_or(fallback.secondary),
        },
        None => Branding { name, ..fallback },
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The platform's layout around `paragraphs` (already escaped HTML).
fn layout(branding: &Branding, paragraphs: &[String]) -> String {
    let name = escape(&branding.name);
    let logo = branding
        .logo_url
        .as_deref()
        .map(|url| {
            format!(
                "<img src=\"{}\" alt=\"{name}\" height=\"40\" style=\"height:40px;vertical-align:middle;margin-right:12px;border:0\">",
                escape(url)
            )
        })
        .unwrap_or_default();
    let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>")).collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}</title></head>\
         <body style=\"margin:0;padding:24px 12px;background:{secondary};font-family:Arial,Helvetica,sans-serif;color:#1F2933\">\
         <table role=\"presentation\" width=\"560\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:560px;margin:0 auto;background:#FFFFFF;border-radius:6px\">\
         <tr><td style=\"background:{primary};padding:16px 24px;color:#FFFFFF;font-size:18px;font-weight:bold\">{logo}{name}</td></tr>\
         <tr><td style=\"padding:24px;font-size:15px;line-height:1.5\">{body}</td></tr>\
         <tr><td style=\"padding:16px 24px;border-top:1px solid #E5E7EB;font-size:12px;color:#6B7280\">Sent by Malipo for {name}.</td></tr>\
         </table></body></html>\n",
        secondary = escape(&branding.secondary),
        primary = escape(&branding.primary),
    )
}

/// A password-reset message: the link and the token on a line of its own.
pub fn password_reset(
    to: &str,
    full_name: &str,
    link: &str,
    token: &str,
    expires_at: &str,
    branding: &Branding,
) -> (OutgoingMail, String) {
    let text = format!(
        "Hello {full_name},\n\nChoose a new password here: {link}\n\n\
         Or use this token (valid until {expires_at}):\n\n{token}\n\n\
         If you did not ask for this, ignore this message.\n"
    );
    let html = layout(
        branding,
        &[
            format!("Hello {},", escape(full_name)),
            format!(
                "<a href=\"{0}\">Choose a new password</a> (valid until {1}).",
                escape(link),
                escape(expires_at)
            ),
            format!("Or use this token:<br><code>{}</code>", escape(token)),
            "If you did not ask for this, ignore this message.".into(),
        ],
    );
    let mail = OutgoingMail {
        recipient: to.to_string(),
        subject: format!("Reset your Malipo password ({})", branding.name),
        body: text,
        kind: "password_reset".into(),
    };
    (mail, html)
}

/// An invitation message.
pub fn invitation(
    to: &str,
    invited_by: &str,
    role: &str,
    link: &str,
    token: &str,
    expires_at: &str,
    branding: &Branding,
) -> (OutgoingMail, String) {
    let who = if invited_by.trim().is_empty() {
        "Someone"
    } else {
        invited_by
    };
    let role_text = if role.trim().is_empty() {
        String::new()
    } else {
        format!(" as {role}")
    };
    let text = format!(
        "Hello,\n\n{who} invited you to join {org} on Malipo{role_text}.\n\n\
         Accept the invitation: {link}\n\n\
         Or accept with this token (valid until {expires_at}):\n\n{token}\n\n\
         If you did not expect this, ignore this message.\n",
        org = branding.name
    );
    let html = layout(
        branding,
        &[
            "Hello,".into(),
            format!(
                "{} invited you to join {} on Malipo{}.",
                escape(who),
                escape(&branding.name),
                escape(&role_text)
            ),
            format!(
                "<a href=\"{0}\">Accept the invitation</a> (valid until {1}).",
                escape(link),
                escape(expires_at)
            ),
            format!(
                "Or accept with this token:<br><code>{}</code>",
                escape(token)
            ),
            "If you did not expect this, ignore this message.".into(),
        ],
    );
    let mail = OutgoingMail {
        recipient: to.to_string(),
        subject: format!("You are invited to {} on Malipo", branding.name),
        body: text,
        kind: "invitation".into(),
    };
    (mail, html)
}

/// Queues a message in control.db and wakes the delivery loop.
pub fn queue(
    state: &Core,
    mail: &OutgoingMail,
    html: &str,
    tenant: Option<TenantId>,
) -> Result<(), crate::control::ControlError> {
    state.control.queue_branded_mail(mail, Some(html), tenant)?;
    SIGNAL.notify_one();
    Ok(())
}

/// Delivers queued host mail, forever (a no-op pass while no SMTP server
/// is configured: the mail waits).
pub async fn worker(state: Arc<Core>) {
    loop {
        let _ = tokio::time::timeout(INTERVAL, SIGNAL.notified()).await;
        let pass = Arc::clone(&state);
        let outcome = tokio::task::spawn_blocking(move || deliver_due(&pass)).await;
        match outcome {
            Ok(Err(error)) => tracing::error!(%error, "host mail delivery pass failed"),
            Err(error) => tracing::error!(%error, "host mail delivery pass panicked"),
            Ok(Ok(())) => {}
        }
    }
}

/// Sends every due message once (blocking).
fn deliver_due(state: &Core) -> Result<(), crate::control::ControlError> {
    let services = state.runtime.services();
    if !services.mail.configured() {
        return Ok(());
    }
    // Bounded: a message that fails is rescheduled, so it is not due again
    // within this pass.
    for _ in 0..1000 {
        let Some(queued) = state.control.next_due_mail()? else {
            return Ok(());
        };
        let message = Message {
            to: queued.recipient.clone(),
            subject: queued.subject.clone(),
            text: queued.body.clone(),
            html: queued.html.clone(),
            message_id: format!("<host-{}.{}@malipo>", queued.id, queued.kind),
        };
        match services.mail.send(&message) {
            Ok(()) => state.control.mail_sent(queued.id)?,
            Err(SendError::Rejected(why)) => {
                tracing::warn!(id = queued.id, kind = %queued.kind, "host mail refused for good");
                state.control.mail_failed(queued.id, &why, None)?;
            }
            Err(SendError::NotConfigured) => return Ok(()),
            Err(SendError::Unavailable(why)) => {
                let doublings = u32::try_from(queued.attempts.clamp(0, 20)).unwrap_or(20);
                let delay = BACKOFF_SECS
                    .saturating_mul(1i64 << doublings)
                    .min(MAX_BACKOFF_SECS);
                tracing::warn!(id = queued.id, kind = %queued.kind, delay, "host mail not sent; retrying later");
                state.control.mail_failed(queued.id, &why, Some(delay))?;
                // The server is down: the rest waits for the next pass.
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_stands_on_its_own_line_and_branding_is_escaped() {
        let branding = Branding {
            name: "<b>Duka</b>".into(),
            ..Branding::default()
        };
        let (mail, html) = invitation(
            "a@example.com",
            "Amina",
            "Member",
            "https://pay.example.com/accept-invitation?token=mli_x",
            "mli_x",
            "2026-01-01T00:00:00Z",
            &branding,
        );
        assert!(
            mail.body.lines().any(|l| l.trim() == "mli_x"),
            "{}",
            mail.body
        );
        assert!(mail.subject.contains("<b>Duka</b>"));
        assert!(!html.contains("<b>Duka</b>"), "{html}");
        let (reset, _) = password_reset(
            "a@example.com",
            "Amina",
            "https://pay.example.com/reset-password?token=mlp_reset_x",
            "mlp_reset_x",
            "2026-01-01T00:00:00Z",
            &Branding::default(),
        );
        assert!(reset.body.lines().any(|l| l.trim() == "mlp_reset_x"));
    }
}
