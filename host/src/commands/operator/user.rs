//! `malipo user create|list|assign-role`.

use std::sync::Arc;

use anyhow::Context;
use malipo::audit::AuditEntry;
use malipo::cli::UserCommand;
use malipo::config::Config;
use malipo::control::{ControlDb, PlatformAuditEntry, UserRecord};
use malipo::core::Core;
use malipo::core::plugin_call::call_plugin;
use malipo::ids::{TenantId, UserId};
use malipo::resources::support;
use serde_json::{Value, json};

use crate::commands::operator::output::{Failure, Out, table};
use crate::commands::operator::tenant::parse_id;
use crate::commands::operator::{cli_meta, secrets};

/// Runs one `malipo user …` command.
pub fn user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            email,
            full_name,
            super_admin,
            json,
        } => Out::run(json, |out| {
            create(&config, &email, full_name.as_deref(), super_admin, out)
        }),
        UserCommand::List { tenant, json } => {
            Out::run(json, |out| list(&config, tenant.as_deref(), out))
        }
        UserCommand::AssignRole {
            email,
            tenant,
            role,
            json,
        } => Out::run(json, |out| assign_role(config, &email, &tenant, &role, out)),
    }
}

fn open_control(config: &Config) -> anyhow::Result<ControlDb> {
    std::fs::create_dir_all(&config.data_dir)?;
    ControlDb::open(&config.control_db_path()).context("open control.db")
}

fn create(
    config: &Config,
    email: &str,
    full_name: Option<&str>,
    super_admin: bool,
    out: Out,
) -> anyhow::Result<()> {
    let email = support::email(email)?;
    let full_name = support::name(
        full_name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email)),
        "--full-name",
        120,
    )?;
    let control = open_control(config)?;
    if control.user_by_email(&email)?.is_some() {
        return Err(Failure::error(
            "conflict",
            format!("an account with the email {email} exists already"),
        ));
    }
    let password = secrets::password("MALIPO_USER_PASSWORD", &email)?;
    let user = UserRecord {
        id: UserId::new(),
        email: email.clone(),
        full_name,
        password_hash: malipo::passwords::hash(&password)?,
        is_super_admin: super_admin,
        status: "active".into(),
        created_at: malipo::time_util::now_rfc3339(),
    };
    if !control.create_user(&user)? {
        return Err(Failure::error(
            "conflict",
            format!("an account with the email {email} exists already"),
        ));
    }
    let meta = cli_meta();
    control.platform_audit(&PlatformAuditEntry {
        actor_id: None,
        channel: meta.channel,
        operation: "user.created".into(),
        target: Some(user.id.to_string()),
        outcome: "success".into(),
        ip: None,
        user_agent: meta.user_agent,
        request_id: Some(meta.request_id),
        detail: Some(json!({"email": email, "super_admin": super_admin}).to_string()),
    })?;
    out.answer(&user.public_json(), || {
        format!(
            "created user {} {} ({}){}",
            user.id,
            user.email,
            user.full_name,
            if super_admin {
                ", platform super-admin"
            } else {
                ""
            }
        )
    });
    Ok(())
}

fn list(config: &Config, tenant: Option<&str>, out: Out) -> anyhow::Result<()> {
    let control = open_control(config)?;
    let (document, rows, headers): (Value, Vec<Vec<String>>, &[&str]) = match tenant {
        Some(tenant) => {
            let id = parse_id(config, tenant)?;
            if control.tenant(id)?.is_none() {
                return Err(Failure::error("not_found", format!("no tenant {id}")));
            }
            let members = control.members_of(id)?;
            let document = members
                .iter()
                .map(|(user, membership)| {
                    let mut row = user.public_json();
                    row["status"] = json!(user.status);
                    row["membership_status"] = json!(membership);
                    row
                })
                .collect();
            let rows = members
                .iter()
                .map(|(user, membership)| {
                    vec![
                        user.id.to_string(),
                        user.email.clone(),
                        user.full_name.clone(),
                        user.status.clone(),
                        membership.clone(),
                    ]
                })
                .collect();
            (
                Value::Array(document),
                rows,
                &["ID", "EMAIL", "NAME", "STATUS", "MEMBERSHIP"],
            )
        }
        None => {
            let mut document = Vec::new();
            let mut rows = Vec::new();
            for user in control.users()? {
                let memberships = control.memberships_of(user.id)?;
                let mut row = user.public_json();
                row["status"] = json!(user.status);
                row["memberships"] = memberships
                    .iter()
                    .map(|m| json!({"tenant_id": m.tenant_id, "status": m.status}))
                    .collect();
                document.push(row);
                rows.push(vec![
                    user.id.to_string(),
                    user.email.clone(),
                    user.full_name.clone(),
                    user.status.clone(),
                    if user.is_super_admin { "yes" } else { "no" }.to_string(),
                    memberships.len().to_string(),
                ]);
            }
            (
                Value::Array(document),
                rows,
                &["ID", "EMAIL", "NAME", "STATUS", "SUPER-ADMIN", "TENANTS"],
            )
        }
    };
    out.answer(&document, || {
        format!("{}\n{} user(s)", table(headers, &rows), rows.len())
    });
    Ok(())
}

fn assign_role(
    config: Config,
    email: &str,
    tenant: &str,
    role: &str,
    out: Out,
) -> anyhow::Result<()> {
    let email = support::email(email)?;
    let tenant = parse_id(&config, tenant)?;
    let role = role.trim().to_string();
    let control = open_control(&config)?;
    let record = control
        .tenant(tenant)?
        .ok_or_else(|| Failure::error("not_found", format!("no tenant {tenant}")))?;
    if record.pending_deletion() {
        return Err(Failure::error(
            "conflict",
            format!("tenant {tenant} is scheduled for deletion"),
        ));
    }
    let user = control.user_by_email(&email)?.ok_or_else(|| {
        Failure::error(
            "not_found",
            format!("no user with the email {email} (create one with `malipo user create`)"),
        )
    })?;
    drop(control);
    crate::with_state(config, |state| async move {
        let meta = cli_meta();
        let (role_id, role) = role_named(&state, tenant, &role, &meta).await?;
        let membership = join(&state, tenant, &user, &role, &meta).await?;
        let granted = call_plugin(
            &state,
            tenant,
            &authorizer(&state)?,
            "assignments.grant",
            malipo::core::authz::system_ctx(tenant, None, &meta),
            json!({"user_id": user.id, "role_id": role_id}),
            false,
            None,
            None,
        )
        .await?;
        malipo::audit::heads::after_commit(&state, Some(tenant)).await;
        let platform = PlatformAuditEntry {
            actor_id: None,
            channel: meta.channel.clone(),
            operation: "user.role_assigned".into(),
            target: Some(user.id.to_string()),
            outcome: "success".into(),
            ip: None,
            user_agent: meta.user_agent.clone(),
            request_id: Some(meta.request_id.clone()),
            detail: Some(json!({"tenant_id": tenant, "role": role}).to_string()),
        };
        let state_for_db = Arc::clone(&state);
        tokio::task::spawn_blocking(move || state_for_db.control.platform_audit(&platform))
            .await??;
        out.answer(
            &json!({
                "user": user.public_json(),
                "tenant_id": tenant,
                "membership_status": membership,
                "assignment": granted,
            }),
            || {
                format!(
                    "{} holds {role} in tenant {tenant} (membership {membership})",
                    user.email
                )
            },
        );
        Ok(())
    })
}

fn authorizer(state: &Core) -> anyhow::Result<String> {
    state
        .runtime
        .authorizer_plugin()
        .map(|p| p.manifest.name.clone())
        .ok_or_else(|| Failure::error("unavailable", "no authorization plugin is loaded"))
}

/// The id of the tenant's role named `name` (case-insensitive); an unknown
/// name is an error that lists the roles there are.
async fn role_named(
    state: &Arc<Core>,
    tenant: TenantId,
    name: &str,
    meta: &malipo::core::operation::RequestMeta,
) -> anyhow::Result<(String, String)> {
    let roles = call_plugin(
        state,
        tenant,
        &authorizer(state)?,
        "roles.list",
        malipo::core::authz::system_ctx(tenant, None, meta),
        json!({}),
        true,
        None,
        None,
    )
    .await?;
    let roles = roles["roles"].as_array().cloned().unwrap_or_default();
    let found = roles.iter().find_map(|r| {
        let (id, role) = (r["id"].as_str()?, r["name"].as_str()?);
        role.eq_ignore_ascii_case(name)
            .then(|| (id.to_string(), role.to_string()))
    });
    if let Some(found) = found {
        return Ok(found);
    }
    let names: Vec<&str> = roles.iter().filter_map(|r| r["name"].as_str()).collect();
    Err(Failure::error(
        "not_found",
        format!(
            "tenant {tenant} has no role named `{name}`; its roles are: {}",
            names.join(", ")
        ),
    ))
}

/// Makes the user a member of the tenant if they are not (control.db and
/// the tenant's `members`, with a tenant audit row); answers the
/// membership's status.
async fn join(
    state: &Arc<Core>,
    tenant: TenantId,
    user: &UserRecord,
    role: &str,
    meta: &malipo::core::operation::RequestMeta,
) -> anyhow::Result<String> {
    let state = Arc::clone(state);
    let user = user.clone();
    let entry = AuditEntry {
        actor_type: "system".into(),
        actor_id: None,
        channel: meta.channel.clone(),
        operation: "users.assign_role".into(),
        target: Some(user.id.to_string()),
        outcome: "success".into(),
        ip: None,
        user_agent: meta.user_agent.clone(),
        request_id: Some(meta.request_id.clone()),
        store_id: None,
        detail: Some(json!({"email": user.email, "role": role}).to_string()),
    };
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        state.control.add_membership(user.id, tenant)?;
        let db = state.tenancy.get(tenant)?;
        let mut conn = db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO members (user_id, email, full_name, status, joined_at) VALUES (?1, ?2, ?3, 'active', ?4)
             ON CONFLICT (user_id) DO NOTHING",
            rusqlite::params![
                user.id.to_string(),
                user.email,
                user.full_name,
                malipo::time_util::now_rfc3339()
            ],
        )?;
        malipo::audit::write(&tx, &entry)?;
        tx.commit()?;
        Ok(state
            .control
            .standing(user.id, tenant)?
            .map(|s| s.membership_status)
            .unwrap_or_else(|| "active".into()))
    })
    .await?
}
