//! Abnormal tenant behaviour: counts failed sign-ins, failed payments and
//! server errors per tenant over a sliding window, and when one crosses its
//! threshold raises an alert for the platform's super-admins — stored in
//! `control.db` (`GET /api/v1/admin/alerts`) and emailed to each of them
//! (through `MALIPO_SMTP_URL`, else queued in `control.db`'s mail outbox).
//! One alert per tenant and kind per window; counts live in memory.
//!
//! Metrics (`malipo::ops::metrics`): every occurrence counted is a
//! `malipo_alert_signals_total{kind,decision}` ([`Decision`]), decided in
//! the request that saw it; every alert whose raising has finished (stored
//! and mailed, off the request path) is a
//! `malipo_alerts_raised_total{kind,outcome}` ([`Raised`]). Their
//! difference (`decision="alert"` less all outcomes) is the alerts being
//! raised now.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::core::Core;
use malipo_foundations::ids::TenantId;
use malipo_runtime::plugins::bindings::mail::Message;
use malipo_runtime::plugins::mailer::Mailer;
use malipo_storage::control::NewAlert;
use malipo_storage::control::OutgoingMail;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A wrong password for a member of the tenant.
    FailedLogins,
    /// A `payment.failed` event in the tenant's outbox.
    FailedPayments,
    /// An operation of the tenant answered with a 5xx status.
    ServerErrors,
}

impl Kind {
    /// Its stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FailedLogins => "failed_logins",
            Self::FailedPayments => "failed_payments",
            Self::ServerErrors => "server_errors",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::FailedLogins => "failed sign-ins",
            Self::FailedPayments => "failed payments",
            Self::ServerErrors => "server errors",
        }
    }
}

/// What the detector decided about one occurrence
/// (`malipo_alert_signals_total{decision}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Counted; the tenant is under the threshold.
    BelowThreshold,
    /// This one crossed the threshold: an alert is raised.
    Alert,
    /// At or over the threshold, but the tenant already had an alert of
    /// this kind within the window.
    Suppressed,
    /// The threshold is 0: this kind never alerts.
    Disabled,
}

impl Decision {
    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::BelowThreshold => "below_threshold",
            Self::Alert => "alert",
            Self::Suppressed => "suppressed",
            Self::Disabled => "disabled",
        }
    }
}

/// How raising an alert ended (`malipo_alerts_raised_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// Stored, and every super-admin emailed or their mail queued.
    Notified,
    /// Stored, but some super-admin was neither emailed nor queued a mail
    /// (or the super-admins could not be listed); the log says why.
    Unnotified,
    /// `control.db` refused it: nothing is listed; the log says why.
    NotStored,
}

impl Raised {
    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Notified => "notified",
            Self::Unnotified => "unnotified",
            Self::NotStored => "not_stored",
        }
    }
}

/// Thresholds: how many within `window` raise an alert (0 = never).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// `MALIPO_ALERT_WINDOW_SECS` (600).
    pub window: Duration,
    /// `MALIPO_ALERT_FAILED_LOGINS` (20).
    pub failed_logins: u64,
    /// `MALIPO_ALERT_FAILED_PAYMENTS` (10).
    pub failed_payments: u64,
    /// `MALIPO_ALERT_SERVER_ERRORS` (25).
    pub server_errors: u64,
}

fn number(name: &str, default: u64) -> u64 {
    malipo_foundations::config::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Thresholds {
    /// From the configuration.
    pub fn from_env() -> Self {
        Self {
            window: Duration::from_secs(number("MALIPO_ALERT_WINDOW_SECS", 600).max(1)),
            failed_logins: number("MALIPO_ALERT_FAILED_LOGINS", 20),
            failed_payments: number("MALIPO_ALERT_FAILED_PAYMENTS", 10),
            server_errors: number("MALIPO_ALERT_SERVER_ERRORS", 25),
        }
    }

    fn of(&self, kind: Kind) -> u64 {
        match kind {
            Kind::FailedLogins => self.failed_logins,
            Kind::FailedPayments => self.failed_payments,
            Kind::ServerErrors => self.server_errors,
        }
    }
}

/// Recent occurrences of one kind in one tenant.
#[derive(Debug, Default)]
struct Window {
    seen: VecDeque<Instant>,
    alerted_at: Option<Instant>,
}

impl Window {
    /// Records one occurrence at `now`; answers the count to alert with
    /// when this one crosses the threshold and no alert was raised within
    /// the window.
    fn observe(&mut self, now: Instant, window: Duration, threshold: u64) -> Option<u64> {
        while self
            .seen
            .front()
            .is_some_and(|first| now.duration_since(*first) > window)
        {
            self.seen.pop_front();
        }
        self.seen.push_back(now);
        let keep = usize::try_from(threshold).unwrap_or(usize::MAX).max(1);
        while self.seen.len() > keep {
            self.seen.pop_front();
        }
        let count = self.count();
        let quiet = self
            .alerted_at
            .is_none_or(|at| now.duration_since(at) > window);
        if count >= threshold && quiet {
            self.alerted_at = Some(now);
            Some(count)
        } else {
            None
        }
    }

    /// Occurrences within the window as of the latest one observed.
    fn count(&self) -> u64 {
        self.seen.len() as u64
    }
}

/// The detector, one per process.
pub struct Alerts {
    thresholds: Thresholds,
    windows: Cache<(TenantId, Kind), Arc<Mutex<Window>>>,
    mailer: Mailer,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("thresholds", &self.thresholds)
            .finish()
    }
}

impl Default for Alerts {
    fn default() -> Self {
        Self::new(Thresholds::from_env())
    }
}

impl Alerts {
    /// A detector with these thresholds.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            windows: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(thresholds.window * 2)
                .build(),
            mailer: Mailer::from_env(),
        }
    }

    /// Counts one occurrence; answers the alert to raise when it crosses
    /// the threshold (hand it to [`raise`] on a blocking thread). Each
    /// occurrence's [`Decision`] is counted in the metrics.
    pub fn observe(&self, tenant: TenantId, kind: Kind) -> Option<Crossed> {
        let threshold = self.thresholds.of(kind);
        if threshold == 0 {
            malipo_foundations::telemetry::alert_signal(kind.name(), Decision::Disabled.label());
            return None;
        }
        let window = self
            .windows
            .get_with((tenant, kind), || Arc::new(Mutex::new(Window::default())));
        let mut window = window.lock().ok()?;
        let crossed = window.observe(Instant::now(), self.thresholds.window, threshold);
        let decision = match crossed {
            Some(_) => Decision::Alert,
            None if window.count() >= threshold => Decision::Suppressed,
            None => Decision::BelowThreshold,
        };
        drop(window);
        malipo_foundations::telemetry::alert_signal(kind.name(), decision.label());
        let count = crossed?;
        Some(Crossed {
            kind,
            alert: NewAlert {
                tenant_id: tenant,
                kind: kind.name(),
                count,
                threshold,
                window_secs: self.thresholds.window.as_secs(),
            },
        })
    }
}

/// A threshold crossed: the alert to raise.
#[derive(Clone, Debug)]
pub struct Crossed {
    kind: Kind,
    alert: NewAlert,
}

/// Counts one occurrence from async code; a crossing is raised on a
/// blocking thread.
pub fn observe(state: &Arc<Core>, tenant: TenantId, kind: Kind) {
    if let Some(crossed) = state.alerts.observe(tenant, kind) {
        let state = Arc::clone(state);
        tokio::task::spawn_blocking(move || raise(&state, &crossed));
    }
}

/// Stores the alert and tells every super-admin (blocking: writes
/// `control.db`, may talk to the SMTP server). How it ended is counted in
/// the metrics once all is done.
pub fn raise(state: &Core, crossed: &Crossed) {
    let outcome = store_and_tell(state, crossed);
    malipo_foundations::telemetry::alert_raised(crossed.kind.name(), outcome.label());
}

/// [`raise`]'s work: answers how it ended (failures are logged here).
fn store_and_tell(state: &Core, crossed: &Crossed) -> Raised {
    let (kind, alert) = (crossed.kind, &crossed.alert);
    let stored = match state.control.insert_alert(alert) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(%error, tenant = %alert.tenant_id, "alert not stored");
            return Raised::NotStored;
        }
    };
    let tenant = stored.tenant_name.clone().unwrap_or_default();
    tracing::warn!(
        tenant_id = %alert.tenant_id,
        kind = kind.name(),
        count = alert.count,
        "abnormal tenant behaviour: alert {} raised",
        stored.id
    );
    let subject = format!("[Malipo] {} at {tenant}", kind.describe());
    let text = format!(
        "{count} {what} at {tenant} (tenant {id}) within {minutes} minutes (threshold {threshold}).\n\n\
         See GET /api/v1/admin/alerts (alert {alert_id}) and acknowledge it with \
         POST /api/v1/admin/alerts/{alert_id}/acknowledge.\n",
        count = alert.count,
        what = kind.describe(),
        id = alert.tenant_id,
        minutes = alert.window_secs.div_ceil(60),
        threshold = alert.threshold,
        alert_id = stored.id,
    );
    let recipients = match state.control.super_admin_emails() {
        Ok(recipients) => recipients,
        Err(error) => {
            tracing::error!(%error, "super-admins not found for an alert");
            return Raised::Unnotified;
        }
    };
    let mut outcome = Raised::Notified;
    for recipient in recipients {
        let message = Message {
            to: recipient.clone(),
            subject: subject.clone(),
            text: text.clone(),
            html: None,
            message_id: format!("<alert-{}.{}@malipo>", stored.id, recipient),
        };
        let sent = state.alerts.mailer.configured() && state.alerts.mailer.send(&message).is_ok();
        if !sent {
            let queued = state.control.queue_mail(&OutgoingMail {
                recipient,
                subject: subject.clone(),
                body: text.clone(),
                kind: "tenant_alert".into(),
            });
            if let Err(error) = queued {
                tracing::error!(%error, "alert email not queued");
                outcome = Raised::Unnotified;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_window_once_the_threshold_is_reached() {
        let start = Instant::now();
        let window = Duration::from_secs(60);
        let mut w = Window::default();
        assert_eq!(w.observe(start, window, 3), None);
        assert_eq!(w.observe(start + Duration::from_secs(1), window, 3), None);
        assert_eq!(
            w.observe(start + Duration::from_secs(2), window, 3),
            Some(3)
        );
        // More within the window: no second alert.
        assert_eq!(w.observe(start + Duration::from_secs(3), window, 3), None);
        // Occurrences spread wider than the window never add up.
        let mut sparse = Window::default();
        for minute in 0..10 {
            assert_eq!(
                sparse.observe(start + Duration::from_secs(minute * 61), window, 2),
                None
            );
        }
        // After a quiet window, a new burst alerts again.
        let later = start + Duration::from_secs(200);
        assert_eq!(w.observe(later, window, 3), None);
        assert_eq!(w.observe(later + Duration::from_secs(1), window, 3), None);
        assert_eq!(
            w.observe(later + Duration::from_secs(2), window, 3),
            Some(3)
        );
    }
}
