//! `malipo tenant create|list|suspend|reactivate|delete|cancel-deletion`.

use std::sync::Arc;

use anyhow::Context;
use malipo::cli::{TenantCommand, TenantCreateArgs, TenantIdArgs, TenantStatusFilter};
use malipo::config::Config;
use malipo::control::{ControlDb, PlatformAuditEntry, TenantRecord, UserRecord};
use malipo::core::Core;
use malipo::deletion::StatusChange;
use malipo::deletion::service as tenant_deletion;
use malipo::deletion::service::Actor;
use malipo::ids::{TenantId, UserId};
use malipo::resources::support;
use serde_json::{Value, json};

use crate::commands::operator::output::{Failure, Out, table};
use crate::commands::operator::{cli_meta, secrets};

/// Runs one `malipo tenant …` command.
pub fn tenant(config: Config, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(args) => Out::run(args.json, |out| create(config, args, out)),
        TenantCommand::List { status, json } => Out::run(json, |out| list(&config, status, out)),
        TenantCommand::Suspend(args) => Out::run(args.json, |out| {
            set_status(&config, &args, "suspended", out)
        }),
        TenantCommand::Reactivate(args) => {
            Out::run(args.json, |out| set_status(&config, &args, "active", out))
        }
        TenantCommand::Delete { id, now, yes, json } => {
            Out::run(json, |out| delete(config, &id, now, yes, out))
        }
        TenantCommand::CancelDeletion(args) => {
            Out::run(args.json, |out| cancel_deletion(config, &args, out))
        }
        TenantCommand::Export(args) => crate::commands::data::export(&config, args),
        TenantCommand::Import(args) => crate::commands::data::import(config, args),
    }
}

/// A tenant given on the command line: its id (a UUID) or its slug (as
/// `malipo tenant list` and `GET /admin/tenants` show it).
pub fn parse_id(config: &Config, text: &str) -> anyhow::Result<TenantId> {
    let text = text.trim();
    if let Some(id) = TenantId::parse(text) {
        return Ok(id);
    }
    let slug = text.to_lowercase();
    let found = if config.control_db_path().exists() {
        open_control(config)?
            .tenants()?
            .into_iter()
            .find(|t| t.slug == slug)
            .map(|t| t.id)
    } else {
        None
    };
    found.ok_or_else(|| {
        Failure::error(
            "not_found",
            format!("no tenant with the id or slug `{text}` (see `malipo tenant list`)"),
        )
    })
}

fn open_control(config: &Config) -> anyhow::Result<ControlDb> {
    std::fs::create_dir_all(&config.data_dir)?;
    ControlDb::open(&config.control_db_path()).context("open control.db")
}

fn not_found(id: TenantId) -> anyhow::Error {
    Failure::error("not_found", format!("no tenant {id}"))
}

/// One line about a tenant, for people.
fn describe(tenant: &TenantRecord) -> String {
    let mut line = format!(
        "{} {:?} ({}) {} on plan {}",
        tenant.id, tenant.name, tenant.slug, tenant.status, tenant.plan
    );
    if let Some(due) = &tenant.deletion_due_at {
        line.push_str(&format!("; deletion due at {due}"));
    }
    line
}

fn create(config: Config, args: TenantCreateArgs, out: Out) -> anyhow::Result<()> {
    let organization = support::name(&args.name, "--name", 120)?;
    let email = support::email(&args.owner_email)?;
    crate::with_state(config, |state| async move {
        let plan = malipo::billing::chosen_plan(&state, args.plan.clone())?;
        let lookup = email.clone();
        let state_for_db = Arc::clone(&state);
        let existing =
            tokio::task::spawn_blocking(move || state_for_db.control.user_by_email(&lookup))
                .await??;
        let (owner, create_owner) = match existing {
            Some(user) => (user, false),
            None => {
                let password = secrets::password("MALIPO_OWNER_PASSWORD", &email)?;
                let full_name = support::name(
                    args.owner_name.as_deref().unwrap_or(&organization),
                    "--owner-name",
                    120,
                )?;
                let user = UserRecord {
                    id: UserId::new(),
                    email: email.clone(),
                    full_name,
                    password_hash: support::hash_password(password).await?,
                    is_super_admin: false,
                    status: "active".into(),
                    created_at: malipo::time_util::now_rfc3339(),
                };
                (user, true)
            }
        };
        let meta = cli_meta();
        let tenant =
            support::provision_tenant(&state, &organization, &owner, create_owner, &meta, None)
                .await?;
        malipo::billing::start_subscription(&state, tenant.id, plan).await?;
        let tenant = reread(&state, tenant).await;
        out.answer(
            &json!({
                "tenant": tenant.public_json(),
                "owner": owner.public_json(),
                "owner_created": create_owner,
            }),
            || {
                format!(
                    "created tenant {}\nowner {} ({})",
                    describe(&tenant),
                    owner.email,
                    if create_owner {
                        "new account"
                    } else {
                        "existing account"
                    }
                )
            },
        );
        Ok(())
    })
}

/// The tenant as stored now (the subscription may have changed its plan).
async fn reread(state: &Arc<Core>, tenant: TenantRecord) -> TenantRecord {
    let state = Arc::clone(state);
    let id = tenant.id;
    tokio::task::spawn_blocking(move || state.control.tenant(id))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .unwrap_or(tenant)
}

fn list(config: &Config, status: Option<TenantStatusFilter>, out: Out) -> anyhow::Result<()> {
    let control = open_control(config)?;
    let tenants: Vec<TenantRecord> = control
        .tenants()?
        .into_iter()
        .filter(|t| match status {
            None => true,
            Some(TenantStatusFilter::PendingDeletion) => t.pending_deletion(),
            Some(TenantStatusFilter::Active) => t.status == "active" && !t.pending_deletion(),
            Some(TenantStatusFilter::Suspended) => t.status == "suspended" && !t.pending_deletion(),
        })
        .collect();
    let document = Value::Array(tenants.iter().map(TenantRecord::public_json).collect());
    out.answer(&document, || {
        let rows: Vec<Vec<String>> = tenants
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    t.status.clone(),
                    t.plan.clone(),
                    t.created_at.clone(),
                    t.deletion_due_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        format!(
            "{}\n{} tenant(s)",
            table(
                &["ID", "NAME", "STATUS", "PLAN", "CREATED", "DELETION DUE"],
                &rows
            ),
            rows.len()
        )
    });
    Ok(())
}

fn set_status(config: &Config, args: &TenantIdArgs, status: &str, out: Out) -> anyhow::Result<()> {
    let id = parse_id(config, &args.id)?;
    let control = open_control(config)?;
    let tenant = match control.change_tenant_status(id, status)? {
        StatusChange::Changed(tenant) => tenant,
        StatusChange::NoSuchTenant => return Err(not_found(id)),
        StatusChange::PendingDeletion(tenant) => {
            return Err(Failure::error(
                "conflict",
                format!(
                    "tenant {id} is scheduled for deletion at {}; cancel the deletion first (`malipo tenant cancel-deletion {id}`)",
                    tenant.deletion_due_at.unwrap_or_default()
                ),
            ));
        }
    };
    let verb = if status == "active" {
        "reactivated"
    } else {
        "suspended"
    };
    let meta = cli_meta();
    control.platform_audit(&PlatformAuditEntry {
        actor_id: None,
        channel: meta.channel,
        operation: format!("tenant.{verb}"),
        target: Some(id.to_string()),
        outcome: "success".into(),
        ip: None,
        user_agent: meta.user_agent,
        request_id: Some(meta.request_id),
        detail: None,
    })?;
    out.answer(&tenant.public_json(), || {
        format!("{verb} tenant {}", describe(&tenant))
    });
    Ok(())
}

fn cli_actor() -> Actor {
    Actor {
        user_id: None,
        meta: cli_meta(),
    }
}

fn delete(config: Config, id: &str, now: bool, yes: bool, out: Out) -> anyhow::Result<()> {
    let id = parse_id(&config, id)?;
    // Fails before the plugins are compiled when the id is unknown.
    let Some(record) = open_control(&config)?.tenant(id)? else {
        return Err(not_found(id));
    };
    if now && !record.pending_deletion() && !yes {
        confirm_purge(&config, &record)?;
    }
    crate::with_state(config, |state| async move {
        let work =
            move || -> anyhow::Result<(TenantRecord, Option<malipo::deletion::PurgedRows>)> {
                let actor = cli_actor();
                let grace = if now {
                    0
                } else {
                    tenant_deletion::grace_secs()?
                };
                let tenant = tenant_deletion::schedule(&state, id, grace, &actor)?;
                let purged = if now {
                    Some(tenant_deletion::purge(&state, id, &actor)?)
                } else {
                    None
                };
                Ok((tenant, purged))
            };
        let (tenant, purged) = tokio::task::spawn_blocking(work).await??;
        let document = json!({
            "tenant": tenant.public_json(),
            "deletion_due_at": tenant.deletion_due_at,
            "deleted": purged.is_some(),
            "control_rows_deleted": purged.as_ref().map(|p| &p.tables),
        });
        out.answer(&document, || match &purged {
            Some(rows) => format!(
                "deleted tenant {} {:?}: its file and {} control.db row(s)",
                tenant.id,
                tenant.name,
                rows.total()
            ),
            None => format!(
                "scheduled deletion of tenant {} {:?} at {} (suspended until then; `malipo tenant cancel-deletion {}` restores it)",
                tenant.id,
                tenant.name,
                tenant.deletion_due_at.as_deref().unwrap_or("?"),
                tenant.id
            ),
        });
        Ok(())
    })
}

/// Prints what `tenant delete --now` is about to purge and asks for the
/// tenant's slug; without a terminal to ask on, refuses
/// (`confirmation_required`) and names `--yes`.
fn confirm_purge(config: &Config, tenant: &TenantRecord) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let file = config.tenants_dir().join(format!("{}.db", tenant.id));
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let what = format!(
        "this deletes, at once and for good, organization {:?} ({}, {}, {}): its database {} ({bytes} bytes: every payment, customer, store, member and setting) and every control.db row about it",
        tenant.name,
        tenant.slug,
        tenant.id,
        tenant.status,
        file.display(),
    );
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::error(
            "confirmation_required",
            format!(
                "{what}. Pass --yes to confirm (or drop --now to schedule the deletion with a grace period)"
            ),
        ));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "{what}.\nType the organization's slug ({}) to confirm: ",
        tenant.slug
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != tenant.slug {
        return Err(Failure::error(
            "confirmation_required",
            "not confirmed; nothing was deleted",
        ));
    }
    Ok(())
}

fn cancel_deletion(config: Config, args: &TenantIdArgs, out: Out) -> anyhow::Result<()> {
    let id = parse_id(&config, &args.id)?;
    if open_control(&config)?.tenant(id)?.is_none() {
        return Err(not_found(id));
    }
    crate::with_state(config, |state| async move {
        let tenant =
            tokio::task::spawn_blocking(move || tenant_deletion::cancel(&state, id, &cli_actor()))
                .await??;
        out.answer(&tenant.public_json(), || {
            format!("cancelled the deletion of tenant {}", describe(&tenant))
        });
        Ok(())
    })
}
