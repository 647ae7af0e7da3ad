//! `malipo migrate`: control.db, then every tenant file in `tenants/`, a few
//! at a time, with a progress bar on stderr (when it is a terminal). A file
//! that fails is reported and the others carry on; the exit status says
//! whether all of them made it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use malipo::cli::MigrateArgs;
use malipo::config::Config;
use malipo::ids::TenantId;
use malipo::tenancy::Tenancy;
use serde_json::json;

use crate::commands::operator::output::{Failure, Out};

/// Runs `malipo migrate`.
pub fn migrate(config: Config, args: MigrateArgs) -> anyhow::Result<()> {
    Out::run(args.json, |out| run(config, &args, out))
}

/// One tenant file that could not be migrated.
struct Failed {
    tenant: TenantId,
    reason: String,
}

fn run(config: Config, args: &MigrateArgs, out: Out) -> anyhow::Result<()> {
    // Not under a running server: it would keep running its own (maybe
    // older) schema against the files changed here.
    let _lock = crate::commands::guard::exclusive(&config, "migrate")?;
    let tenants_dir = config.tenants_dir();
    // Opening control.db migrates it; the plugins are loaded for their tables.
    let state = malipo::app::build_state(config)?;
    let tenants = tenant_files(&tenants_dir)?;
    let workers = args.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(8)
    });
    let bar = progress_bar(tenants.len());
    let failures = migrate_all(&state.tenancy, &tenants, workers.max(1), &bar);
    bar.finish_and_clear();
    let failed = failures.len();
    let migrated = tenants.len() - failed;
    let document = json!({
        "control_db": "migrated",
        "tenant_files": tenants.len(),
        "migrated": migrated,
        "failed": failed,
        "failures": failures
            .iter()
            .map(|f| json!({"tenant_id": f.tenant, "error": f.reason}))
            .collect::<Vec<_>>(),
    });
    out.answer(&document, || {
        let mut text = format!(
            "control.db migrated\nmigrated {migrated} of {} tenant file(s); {failed} failed",
            tenants.len()
        );
        for failure in &failures {
            text.push_str(&format!(
                "\nfailed: tenant {}: {}",
                failure.tenant, failure.reason
            ));
        }
        text
    });
    if failed > 0 {
        return Err(Failure::answered(
            "migration_failed",
            format!("{failed} tenant file(s) failed to migrate"),
        ));
    }
    Ok(())
}

/// The tenants with a file, in a stable order; other files are ignored.
fn tenant_files(dir: &std::path::Path) -> anyhow::Result<Vec<TenantId>> {
    let mut tenants: Vec<TenantId> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                name.strip_suffix(".db").and_then(TenantId::parse)
            })
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    tenants.sort_by_key(|id| id.to_string());
    Ok(tenants)
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "migrating tenant files [{bar:40}] {pos}/{len} ({per_sec}, {eta} left) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Migrates every file on `workers` threads; answers the failures, each also
/// printed on stderr as it happens.
fn migrate_all(
    tenancy: &Tenancy,
    tenants: &[TenantId],
    workers: usize,
    bar: &ProgressBar,
) -> Vec<Failed> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(tenants.len().max(1)) {
            scope.spawn(|| {
                while let Some(&tenant) = tenants.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(error) = tenancy.migrate_file(tenant) {
                        let reason = error.to_string();
                        bar.suspend(|| eprintln!("tenant {tenant}: {reason}"));
                        if let Ok(mut failures) = failures.lock() {
                            failures.push(Failed { tenant, reason });
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|f| f.tenant.to_string());
    failures
}
