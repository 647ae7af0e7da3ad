//! Periodic plugin jobs: each plugin's manifest names internal operations
//! (e.g. the mpesa plugin's `payments.reconcile`) that the host runs with
//! `{"older_than_secs": MALIPO_RECONCILE_AFTER_SECS}` (default 120) as input.
//!
//! Every `MALIPO_JOB_INTERVAL_SECS` (default 30) they run for the active
//! tenants whose database is open — the ones with recent traffic, where new
//! work is — and every `MALIPO_JOB_SWEEP_SECS` (default 3600) for every
//! active tenant, so that ten thousand idle tenants are not reopened twice a
//! minute. `malipo mpesa reconcile` always sweeps every tenant.
//!
//! Tenants are served concurrently (`MALIPO_JOB_CONCURRENCY`, default 8),
//! each within a time budget (`MALIPO_JOB_TENANT_BUDGET_SECS`, default 60):
//! a slow endpoint of one tenant holds up only that tenant. Outbound work of
//! jobs (Daraja queries, webhook deliveries) runs outside the tenant's write
//! transaction like every plugin I/O (docs/ARCHITECTURE.md, two-phase
//! outbound).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::audit::AuditEntry;
use crate::core::Core;
use crate::core::plugin_call::call_plugin;
use malipo_foundations::error::{ApiError, blocking};
use malipo_runtime::plugins::host_context;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one round of jobs did.
#[derive(Debug, Default)]
pub struct JobReport {
    /// Job runs (tenants × jobs).
    pub runs: usize,
    /// Runs that failed outright.
    pub failures: usize,
    /// Problems a job reported in its answer's `errors` (e.g. a payment
    /// Daraja could not be asked about), one line each.
    pub problems: Vec<String>,
    /// Runs that answered but reported problems (counted once each).
    pub runs_with_errors: usize,
}

impl JobReport {
    /// Runs that did not settle everything: failed outright, or answered
    /// with problems.
    pub fn runs_with_problems(&self) -> usize {
        self.failures + self.runs_with_errors
    }
}

/// Which tenants a round covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Active tenants whose database is open now.
    OpenTenants,
    /// Every active tenant.
    AllTenants,
}

impl Scope {
    /// The active tenants this scope covers now. Reads `control.db`: call
    /// it on a blocking thread.
    pub fn tenants(
        self,
        state: &Core,
    ) -> Result<Vec<malipo_foundations::ids::TenantId>, malipo_storage::control::ControlError> {
        Ok(state
            .control
            .tenants()?
            .into_iter()
            .filter(|t| {
                t.status == "active" && (self == Scope::AllTenants || state.tenancy.is_open(t.id))
            })
            .map(|t| t.id)
            .collect())
    }
}

/// Runs every job (or only `only = (plugin, job)`) once for the tenants of `scope`.
pub async fn run_once(
    state: &Arc<Core>,
    only: Option<(&str, &str)>,
    scope: Scope,
) -> Result<JobReport, ApiError> {
    let older_than = env_secs("MALIPO_RECONCILE_AFTER_SECS", 120);
    let jobs: Vec<(String, String)> = state
        .runtime
        .plugins()
        .flat_map(|p| {
            p.manifest
                .jobs
                .iter()
                .map(|job| (p.manifest.name.clone(), job.clone()))
        })
        .filter(|(plugin, job)| only.is_none_or(|(p, j)| p == plugin && j == job))
        .collect();
    let mut report = JobReport::default();
    if jobs.is_empty() {
        return Ok(report);
    }
    let state_for_db = Arc::clone(state);
    let tenants = blocking(move || Ok(scope.tenants(&state_for_db)?)).await?;
    // Tenants are served concurrently, each within a time budget: one
    // tenant's slow Daraja or webhook endpoint delays no other tenant's jobs.
    let concurrency = env_secs("MALIPO_JOB_CONCURRENCY", 8).max(1) as usize;
    let budget = Duration::from_secs(env_secs("MALIPO_JOB_TENANT_BUDGET_SECS", 60).max(1));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let jobs = Arc::new(jobs);
    let mut running = tokio::task::JoinSet::new();
    for tenant in tenants {
        let (state, jobs, permits) = (Arc::clone(state), Arc::clone(&jobs), Arc::clone(&permits));
        running.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return JobReport::default();
            };
            let work = run_tenant(&state, tenant, &jobs, older_than);
            match tokio::time::timeout(budget, work).await {
                Ok(report) => report,
                Err(_) => {
                    tracing::warn!(tenant = %tenant, budget_secs = budget.as_secs(), "jobs ran past the tenant's time budget");
                    JobReport {
                        runs: jobs.len(),
                        failures: 1,
                        problems: vec![format!(
                            "tenant {tenant}: jobs ran past the time budget of {} s (MALIPO_JOB_TENANT_BUDGET_SECS)",
                            budget.as_secs()
                        )],
                        ..JobReport::default()
                    }
                }
            }
        });
    }
    while let Some(done) = running.join_next().await {
        if let Ok(part) = done {
            report.runs += part.runs;
            report.failures += part.failures;
            report.runs_with_errors += part.runs_with_errors;
            report.problems.extend(part.problems);
        }
    }
    Ok(report)
}

/// Runs `jobs` for one tenant, one after the other.
async fn run_tenant(
    state: &Arc<Core>,
    tenant: malipo_foundations::ids::TenantId,
    jobs: &[(String, String)],
    older_than: u64,
) -> JobReport {
    let mut report = JobReport::default();
    for (plugin, job) in jobs {
        let ctx = host_context(tenant, None, "job", format!("job-{}", uuid::Uuid::new_v4()));
        let audit = AuditEntry {
            actor_type: "system".into(),
            channel: "job".into(),
            operation: job.clone(),
            outcome: "success".into(),
            request_id: Some(ctx.request_id.clone()),
            ..AuditEntry::default()
        };
        let input = json!({"older_than_secs": older_than});
        report.runs += 1;
        match call_plugin(
            state,
            tenant,
            plugin,
            job,
            ctx,
            input,
            false,
            Some(audit),
            None,
        )
        .await
        {
            Ok(output) => {
                if plugin == crate::billing::PLUGIN {
                    retry_charges(state, tenant, &output, &mut report).await;
                }
                let errors = output["errors"].as_array().map_or(0, Vec::len);
                report.runs_with_errors += usize::from(errors > 0);
                for problem in output["errors"].as_array().into_iter().flatten() {
                    report
                        .problems
                        .push(format!("tenant {} {plugin} {job}: {problem}", tenant));
                }
            }
            Err(error) => {
                report.failures += 1;
                tracing::warn!(tenant = %tenant, plugin, job, %error, "job failed");
                report
                    .problems
                    .push(format!("tenant {} {plugin} {job}: {error}", tenant));
            }
        }
    }
    report
}

/// Dunning: sends the STK pushes for unpaid invoices that billing's
/// renewal job says are due for another try.
async fn retry_charges(
    state: &Arc<Core>,
    tenant: malipo_foundations::ids::TenantId,
    output: &serde_json::Value,
    report: &mut JobReport,
) {
    for charge in output["charges"].as_array().into_iter().flatten() {
        let (Some(invoice), Some(phone)) = (
            charge["invoice_id"].as_str(),
            charge["phone_number"].as_str(),
        ) else {
            continue;
        };
        if let Err(error) =
            crate::billing::charges::pay_invoice(state, tenant, None, invoice, phone).await
        {
            report
                .problems
                .push(format!("tenant {tenant} invoice {invoice} retry: {error}"));
        }
    }
}

/// Runs the jobs forever at the configured interval.
pub async fn scheduler(state: Arc<Core>) {
    let interval = Duration::from_secs(env_secs("MALIPO_JOB_INTERVAL_SECS", 30).max(1));
    let sweep_every = (env_secs("MALIPO_JOB_SWEEP_SECS", 3600) / interval.as_secs()).max(1);
    for round in 1u64.. {
        tokio::time::sleep(interval).await;
        let scope = if round % sweep_every == 0 {
            Scope::AllTenants
        } else {
            Scope::OpenTenants
        };
        if let Err(error) = run_once(&state, None, scope).await {
            tracing::error!(?error, "job round failed");
        }
    }
}
