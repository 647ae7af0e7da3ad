//! `malipo mpesa reconcile [--daraja-emulator-url URL] [--json]`: one round
//! of the `payments.reconcile` job for every active tenant, with a summary
//! whose failure count and exit status always agree.

use malipo::config::Config;
use serde_json::json;

use crate::commands::operator::{Failure, Out};

/// Runs `malipo mpesa reconcile`.
pub fn reconcile(config: Config, emulator: Option<String>, json: bool) -> anyhow::Result<()> {
    Out::run(json, |out| run(config, emulator, out))
}

fn run(config: Config, emulator: Option<String>, out: Out) -> anyhow::Result<()> {
    let emulator = emulator.or_else(|| {
        let url = crate::running_emulator(&config)?;
        eprintln!("using the Daraja emulator of the running server at {url}");
        Some(url)
    });
    crate::with_state(config, |state| async move {
        if let Some(url) = &emulator {
            crate::use_emulator(&state, url)
                .map_err(|e| Failure::error("validation_failed", format!("{e:#}")))?;
        }
        let report = malipo::jobs::run_once(
            &state,
            Some(("mpesa", "payments.reconcile")),
            malipo::jobs::Scope::AllTenants,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for problem in &report.problems {
            eprintln!("{problem}");
        }
        // A run that answered but could not check some payments did not
        // succeed either: it is counted as failed, so the summary and the
        // exit status always agree.
        let failed = report.runs_with_problems();
        let document = json!({
            "reconciled": report.runs,
            "failed": failed,
            "problems": report.problems,
            "daraja_emulator_url": emulator,
        });
        out.answer(&document, || {
            format!(
                "reconciled {} tenant(s); {failed} failed; {} problem(s)",
                report.runs,
                report.problems.len()
            )
        });
        if failed > 0 {
            return Err(Failure::answered(
                "reconcile_failed",
                "reconciliation did not settle everything it tried; see above",
            ));
        }
        Ok(())
    })
}
