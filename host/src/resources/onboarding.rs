//! Onboarding: `POST /onboarding` signs a new organization up in one step
//! (owner, tenant, trial subscription, default store, default roles — the
//! same path as registration, plus an optional business profile), and
//! `GET /onboarding/status` lists the steps it still has to take, each
//! marked done by what the organization has actually done, read from its
//! own records: its branding, its audit log and its outbox.

use std::sync::Arc;

use rusqlite::OptionalExtension;
use serde_json::{Value, json};

use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::json_schema::object;
use crate::resources::support::{email, name};

/// One onboarding step: its id, what to do, how to do it, and the query
/// over the tenant's file that answers whether it is done.
struct Step {
    id: &'static str,
    title: &'static str,
    how: &'static str,
    done_when: &'static str,
}

const STEPS: &[Step] = &[
    Step {
        id: "business_profile",
        title: "Describe your business",
        how: "PUT /api/v1/tenant/branding with a display_name (and a logo, colours and contact email)",
        done_when: "SELECT EXISTS(SELECT 1 FROM branding WHERE display_name IS NOT NULL AND display_name <> '')",
    },
    Step {
        id: "first_store",
        title: "Set up your first store",
        how: "POST /api/v1/stores, or rename the default store with PATCH /api/v1/stores/{id}",
        done_when: "SELECT EXISTS(SELECT 1 FROM audit_log WHERE operation IN ('stores.create', 'stores.update') AND outcome = 'success')",
    },
    Step {
        id: "mpesa_credentials",
        title: "Connect M-Pesa and test the credentials",
        how: "PUT /api/v1/mpesa/credentials, then POST /api/v1/mpesa/credentials/test until it answers ok",
        done_when: "SELECT EXISTS(SELECT 1 FROM audit_log WHERE operation = 'mpesa.credentials.test' AND outcome = 'success')",
    },
    Step {
        id: "team_invited",
        title: "Invite your team",
        how: "POST /api/v1/invitations {email, role_id}",
        done_when: "SELECT EXISTS(SELECT 1 FROM audit_log WHERE operation = 'invitations.create' AND outcome = 'success')",
    },
    Step {
        id: "first_payment",
        title: "Take a first test payment",
        how: "POST /api/v1/mpesa/stk-push (the built-in emulator or Safaricom's sandbox) and complete it on the phone",
        done_when: "SELECT EXISTS(SELECT 1 FROM outbox WHERE name = 'payment.completed')",
    },
];

/// The steps of a tenant, each with whether it is done.
fn status_of(state: &Core, tenant: TenantId) -> Result<Value, ApiError> {
    let db = state.tenancy.get(tenant)?;
    let conn = db.conn()?;
    let mut steps = Vec::new();
    for step in STEPS {
        let done: bool = conn
            .query_row(step.done_when, [], |row| row.get(0))
            .optional()?
            .unwrap_or(false);
        steps.push(json!({"id": step.id, "title": step.title, "done": done, "how": step.how}));
    }
    let done = steps.iter().filter(|s| s["done"] == true).count();
    let next = steps
        .iter()
        .find(|s| s["done"] == false)
        .map(|s| s["id"].clone());
    Ok(json!({
        "steps": steps,
        "done": done,
        "total": STEPS.len(),
        "complete": done == STEPS.len(),
        "next": next,
    }))
}

/// The output schema of the status.
pub fn status_schema() -> Value {
    json!({"type": "object", "required": ["steps", "done", "total", "complete"], "properties": {
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "done": {"type": "boolean"}, "how": {"type": "string"}
        }}},
        "done": {"type": "integer"}, "total": {"type": "integer"}, "complete": {"type": "boolean"},
        "next": {"type": ["string", "null"]}
    }})
}

/// `POST /onboarding`: registration plus an optional business profile,
/// answered with the tokens and the steps still to take.
pub async fn start(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    // Checked before anything is created.
    let display_name = call
        .opt_str_field("business_name")?
        .map(|n| name(&n, "business_name", 120))
        .transpose()?;
    let contact_email = call
        .opt_str_field("contact_email")?
        .map(|e| email(&e))
        .transpose()?;
    let registered = crate::resources::auth::register(Arc::clone(&state), call).await?;
    let tenant = registered["tenant"]["id"]
        .as_str()
        .and_then(TenantId::parse)
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("registration answered no tenant")))?;
    if display_name.is_some() || contact_email.is_some() {
        let state_for_db = Arc::clone(&state);
        blocking(move || {
            let db = state_for_db.tenancy.get(tenant)?;
            let conn = db.conn()?;
            conn.execute(
                "INSERT INTO branding (id, display_name, contact_email, updated_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET display_name = ?1, contact_email = ?2, updated_at = ?3",
                rusqlite::params![display_name, contact_email, crate::time_util::now_rfc3339()],
            )?;
            Ok(())
        })
        .await?;
    }
    let state_for_db = Arc::clone(&state);
    let onboarding = blocking(move || status_of(&state_for_db, tenant)).await?;
    let mut answer = registered;
    answer["onboarding"] = onboarding;
    Ok(answer)
}

/// `GET /onboarding/status`.
pub async fn status(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    blocking(move || status_of(&state, tenant)).await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::post("/onboarding", "onboarding.start")
            .summary("Sign a new organization up in one step: owner account, organization, trial subscription (or `plan_id`), default store and roles, and optionally its business name and contact email. Answers the tokens and the onboarding steps still to take.")
            .input(object(
                &["email", "password", "full_name", "organization_name"],
                json!({"email": str_, "password": {"type": "string", "minLength": 10}, "full_name": str_,
                       "organization_name": str_, "plan_id": str_,
                       "business_name": {"type": "string", "description": "The name customers and email see."},
                       "contact_email": {"type": "string", "description": "Where the organization's notifications go."}}),
            ))
            .output(super::auth::token_schema())
            .status(201)
            .access(Access::Public)
            .tag("auth")
            .handle(start),
        Op::get("/onboarding/status", "onboarding.status")
            .summary("The onboarding steps (business profile, first store, M-Pesa credentials tested, team invited, first test payment), each marked done by what the organization has actually done.")
            .output(status_schema())
            .tag("tenant")
            .handle(status),
    ]
}
