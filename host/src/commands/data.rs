//! `malipo tenant export|import`, `malipo backup`, `malipo restore`: moving a tenant's data and the whole data directory in and out.
//! The copies themselves are `malipo::tenancy::snapshot`'s; this module
//! resolves the command line, talks to control.db and prints what it did.

mod backup;

use std::sync::Arc;

use anyhow::Context;
use malipo::cli::{TenantExportArgs, TenantImportArgs};
use malipo::config::Config;
use malipo::control::{ControlDb, PlatformAuditEntry};
use malipo::ids::{TenantId, UserId};
use malipo::tenancy::snapshot::{self, ExportInfo, Secrets};
use serde_json::json;

use crate::commands::operator::{Failure, Out};

pub use backup::{backup, restore};

/// Opens the data directory's control.db, refusing to create one.
fn open_control(config: &Config) -> anyhow::Result<ControlDb> {
    let path = config.control_db_path();
    if !path.is_file() {
        return Err(no_control(config));
    }
    ControlDb::open(&path).context("open control.db")
}

/// `malipo tenant export ID --out FILE [--full] [--json]`.
pub fn export(config: &Config, args: TenantExportArgs) -> anyhow::Result<()> {
    Out::run(args.json, |out| export_to(config, &args, out))
}

fn export_to(config: &Config, args: &TenantExportArgs, out: Out) -> anyhow::Result<()> {
    if !config.control_db_path().is_file() {
        return Err(no_control(config));
    }
    let id = crate::commands::operator::parse_tenant(config, &args.id)?;
    if args.out.exists() {
        return Err(Failure::error(
            "conflict",
            format!(
                "{} already exists; choose another --out",
                args.out.display()
            ),
        ));
    }
    let control = open_control(config)?;
    let record = control
        .tenant(id)?
        .ok_or_else(|| Failure::error("not_found", format!("no tenant {id} in control.db")))?;
    let info = ExportInfo {
        tenant_id: id,
        name: record.name.clone(),
        slug: record.slug.clone(),
        plan: record.plan.clone(),
        status: record.status.clone(),
    };
    let secrets = if args.full {
        Secrets::KeepSealed
    } else {
        Secrets::Remove
    };
    let started = std::time::Instant::now();
    let export = snapshot::export_file(&config.tenants_dir(), &args.out, &info, secrets)
        .with_context(|| format!("export tenant {id}"))?;
    control.platform_audit(&PlatformAuditEntry {
        channel: "cli".into(),
        operation: "tenant.export".into(),
        target: Some(id.to_string()),
        outcome: "success".into(),
        detail: Some(
            json!({"bytes": export.bytes, "full": args.full, "scrubbed": export.scrubbed})
                .to_string(),
        ),
        ..Default::default()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let scrubbed: serde_json::Map<String, serde_json::Value> = export
        .scrubbed
        .iter()
        .map(|(table, rows)| (table.to_string(), json!(rows)))
        .collect();
    let document = json!({
        "tenant": record.public_json(),
        "file": args.out.display().to_string(),
        "bytes": export.bytes,
        "full": args.full,
        "scrubbed": scrubbed,
        "seconds": seconds,
    });
    out.answer(&document, || {
        let removed = export
            .scrubbed
            .iter()
            .map(|(table, rows)| format!("{table} {rows}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "exported tenant {id} ({}) to {}: {} bytes in {seconds:.2} s; rows scrubbed: {}{}",
            record.name,
            args.out.display(),
            export.bytes,
            if removed.is_empty() { "none" } else { &removed },
            if args.full {
                " (sealed secrets kept: --full)"
            } else {
                ""
            }
        )
    });
    Ok(())
}

/// The error of a data directory without control.db.
fn no_control(config: &Config) -> anyhow::Error {
    Failure::error(
        "not_found",
        format!(
            "{} has no control.db (is --data-dir / MALIPO_DATA_DIR right?)",
            config.data_dir.display()
        ),
    )
}

/// `malipo tenant import FILE [--as-new] [--name NAME] [--owner-email EMAIL] [--json]`.
pub fn import(config: Config, args: TenantImportArgs) -> anyhow::Result<()> {
    let json = args.json;
    Out::run(json, |out| import_from(config, args, out))
}

fn import_from(config: Config, args: TenantImportArgs, out: Out) -> anyhow::Result<()> {
    // What the file is, before anything is built or written.
    let file = snapshot::inspect(&args.file).map_err(|error| {
        Failure::error(
            "validation_failed",
            format!("read {}: {error:#}", args.file.display()),
        )
    })?;
    crate::with_state(config, |state| async move {
        if let Some(error) = snapshot::newer_schema(&file.versions, &state.tenancy.known_versions())
        {
            return Err(Failure::error(
                "conflict",
                format!("refusing to import {}: {error}", args.file.display()),
            ));
        }
        let id = if args.as_new {
            TenantId::new()
        } else {
            let named = file
                .export
                .as_ref()
                .map(|export| export.tenant_id.clone())
                .ok_or_else(|| Failure::error("validation_failed", "the file does not name its tenant (no malipo_export table); import it with --as-new"))?;
            TenantId::parse(&named).ok_or_else(|| {
                Failure::error(
                    "validation_failed",
                    format!("the file names tenant `{named}`, which is not a tenant id"),
                )
            })?
        };
        if state.control.tenant(id)?.is_some() || state.tenancy.path_of(id).exists() {
            return Err(Failure::error(
                "conflict",
                format!(
                    "tenant {id} already exists; import with --as-new to make a copy beside it"
                ),
            ));
        }
        if let Some(email) = &args.owner_email
            && state
                .control
                .user_by_email(&email.trim().to_lowercase())?
                .is_none()
        {
            return Err(Failure::error(
                "not_found",
                format!("no account with the email {email}; create it first"),
            ));
        }
        let name = args
            .name
            .clone()
            .or_else(|| file.export.as_ref().map(|e| e.name.clone()))
            .unwrap_or_else(|| "Imported organization".into());
        let plan = file
            .subscription_plan
            .clone()
            .or_else(|| file.export.as_ref().map(|e| e.plan.clone()))
            .unwrap_or_else(|| "free".into());
        let record = state
            .control
            .insert_imported_tenant(id, &name, &plan)?
            .ok_or_else(|| Failure::error("conflict", format!("tenant {id} already exists")))?;
        let imported = import_file(&state, id, &args, &file).await;
        if let Err(error) = imported {
            state.tenancy.remove_file(id).ok();
            state.control.delete_tenant_row(id, None).ok();
            return Err(error);
        }
        let (members, owner_added) = imported?;
        if let Err(error) = malipo::audit::heads::publish(&state.control, &state.tenancy, id) {
            eprintln!("warning: could not record the tenant's audit head: {error}");
        }
        let from_tenant = file.export.as_ref().map(|e| e.tenant_id.clone());
        state.control.platform_audit(&PlatformAuditEntry {
            channel: "cli".into(),
            operation: "tenant.imported".into(),
            target: Some(id.to_string()),
            outcome: "success".into(),
            detail: Some(
                json!({
                    "name": record.name,
                    "from_tenant": from_tenant,
                    "as_new": args.as_new,
                    "owner_email": args.owner_email,
                })
                .to_string(),
            ),
            ..Default::default()
        })?;
        let document = json!({
            "tenant": record.public_json(),
            "file": args.file.display().to_string(),
            "from_tenant_id": from_tenant,
            "as_new": args.as_new,
            "members_restored": members,
            "owner_added": owner_added,
        });
        out.answer(&document, || {
            format!(
                "imported {} as tenant {id} ({}, slug {}, plan {}); {members} member(s) with an account here{}",
                args.file.display(),
                record.name,
                record.slug,
                record.plan,
                if owner_added { "; owner added" } else { "" }
            )
        });
        Ok(())
    })
}

/// Puts the file in place (re-sealing secrets of a `--full` export for the
/// new id), gives the file's members with an account here their membership
/// back, and makes `--owner-email` an Owner. Answers (members, owner added).
async fn import_file(
    state: &Arc<malipo::core::Core>,
    id: TenantId,
    args: &TenantImportArgs,
    file: &snapshot::ImportFile,
) -> anyhow::Result<(usize, bool)> {
    let from_tenant = file.export.as_ref().map(|e| e.tenant_id.clone());
    let source = args.file.clone();
    let state_for_file = Arc::clone(state);
    let members = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(UserId, String)>> {
        let services = state_for_file.runtime.services().clone();
        let target = id.to_string();
        let reseal = |name: &str, sealed: &[u8]| -> Option<Vec<u8>> {
            let from = from_tenant.as_deref()?;
            let plain = services.secrets.open(from, name, sealed).ok()?;
            services.secrets.seal(&target, name, &plain).ok()
        };
        let db = state_for_file.tenancy.import(id, &source, &reseal)?;
        let conn = db.conn()?;
        let members = conn
            .prepare("SELECT user_id, status FROM members")?
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(members
            .into_iter()
            .filter_map(|(user, status)| Some((UserId::parse(&user)?, status)))
            .collect())
    })
    .await??;
    let mut restored = 0;
    for (user, status) in &members {
        if state.control.user(*user)?.is_some() {
            state.control.add_membership(*user, id)?;
            if status != "active" {
                state
                    .control
                    .set_membership_status(*user, id, "deactivated")?;
            }
            restored += 1;
        }
    }
    let mut owner_added = false;
    if let Some(email) = &args.owner_email {
        let owner = state
            .control
            .user_by_email(&email.trim().to_lowercase())?
            .context("the owner's account disappeared")?;
        state.control.add_membership(owner.id, id)?;
        let state_for_row = Arc::clone(state);
        let member = owner.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let db = state_for_row.tenancy.get(id)?;
            db.conn()?.execute(
                "INSERT INTO members (user_id, email, full_name, status, joined_at) VALUES (?1, ?2, ?3, 'active', ?4)
                 ON CONFLICT (user_id) DO UPDATE SET status = 'active'",
                rusqlite::params![member.id.to_string(), member.email, member.full_name, malipo::time_util::now_rfc3339()],
            )?;
            Ok(())
        })
        .await??;
        let meta = crate::commands::operator::cli_meta();
        malipo::core::authz::rbac(
            state,
            id,
            None,
            "assignments.grant",
            json!({"user_id": owner.id, "role_name": "Owner"}),
            &meta,
        )
        .await
        .map_err(|e| anyhow::anyhow!("make {} the Owner: {e}", owner.email))?;
        owner_added = true;
    }
    Ok((restored, owner_added))
}
