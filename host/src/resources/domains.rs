//! Custom domains: `/tenant/domain` claims, shows and releases the
//! organization's hostname, and `/tenant/domain/verify` proves control of
//! it ([`crate::domain_proof`]); `/public/tenant` answers the public face
//! (name, branding, terminology) of the organization whose verified
//! hostname the request was sent to. Login uses the same lookup
//! ([`host_tenant`]): an unverified claim routes nothing.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{Claim, HeldDomain};
use crate::core::Core;
use crate::core::operation::{Access, Op, Operation};
use crate::core::operation::{HostCall, RequestMeta};
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::json_schema::object;
use crate::resources::branding;

/// The output schema of `/tenant/domain`.
pub fn domain_schema() -> Value {
    json!({"type": "object", "properties": {
        "hostname": {"type": ["string", "null"]},
        "created_at": {"type": ["string", "null"]},
        "verified": {"type": "boolean", "description": "Control of the hostname was proved; only then does it route logins and public pages."},
        "verified_at": {"type": ["string", "null"]},
        "verification": {"type": ["object", "null"], "description": "How to prove control: serve `token` as the whole body of `url` (HTTP, port 80), then POST /tenant/domain/verify.",
            "properties": {"method": {"type": "string", "enum": ["http"]}, "url": {"type": "string"}, "token": {"type": ["string", "null"]}}}
    }})
}

/// The output schema of `GET /public/tenant`.
pub fn public_schema() -> Value {
    let text = json!({"type": ["string", "null"]});
    json!({"type": "object", "properties": {
        "tenant": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "slug": {"type": "string"}}},
        "hostname": {"type": "string"},
        "branding": {"type": "object", "properties": {
            "display_name": text, "logo_url": text, "primary_colour": text, "secondary_colour": text,
            "terminology": {"type": "object", "description": "Every renameable word with the organization's word or the default."}
        }}
    }})
}

/// The tenant whose claimed hostname the request was sent to, if any.
pub async fn host_tenant(
    state: &Arc<Core>,
    meta: &RequestMeta,
) -> Result<Option<TenantId>, ApiError> {
    let Some(host) = meta.host.clone() else {
        return Ok(None);
    };
    let state = Arc::clone(state);
    blocking(move || Ok(state.hostnames.resolve(&state.control, &host)?)).await
}

fn domain_json(held: Option<HeldDomain>) -> Value {
    match held {
        Some(held) => json!({
            "hostname": held.hostname,
            "created_at": held.created_at,
            "verified": held.verified_at.is_some(),
            "verified_at": held.verified_at,
            "verification": {
                "method": "http",
                "url": crate::domain_proof::challenge_url(&held.hostname),
                "token": held.token,
            },
        }),
        None => {
            json!({"hostname": null, "created_at": null, "verified": false, "verified_at": null, "verification": null})
        }
    }
}

/// `POST /tenant/domain/verify`: fetches the claimed hostname's challenge
/// and, when it answers the token, marks the name verified (from then on
/// it routes logins and public pages). 422 `domain_unverified` otherwise.
pub async fn verify(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let state_for_read = Arc::clone(&state);
    let held = blocking(move || Ok(state_for_read.control.hostname_of(tenant)?))
        .await?
        .ok_or_else(|| ApiError::not_found("claimed hostname"))?;
    if held.verified_at.is_none() {
        let token = held.token.clone().ok_or_else(|| ApiError::Coded {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "domain_unverified",
            message: "this claim has no verification token; claim the hostname again (PUT /tenant/domain)".into(),
        })?;
        let hostname = held.hostname.clone();
        let outbound = std::sync::Arc::clone(&state.runtime.services().outbound);
        let proved = tokio::task::spawn_blocking(move || {
            crate::domain_proof::prove(&outbound, &hostname, &token)
        })
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("domain proof: {e}")))?;
        proved.map_err(|error| ApiError::Coded {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "domain_unverified",
            message: format!(
                "control of `{}` is not proved: {error}; serve the token as the whole body of {}",
                held.hostname,
                crate::domain_proof::challenge_url(&held.hostname)
            ),
        })?;
    }
    let hostname = held.hostname.clone();
    blocking(move || {
        if !state.control.mark_hostname_verified(tenant, &hostname)? {
            return Err(ApiError::Conflict(
                "the claimed hostname changed while it was being verified".into(),
            ));
        }
        state.hostnames.forget(&hostname);
        Ok(domain_json(state.control.hostname_of(tenant)?))
    })
    .await
}

/// `GET /tenant/domain`: the organization's hostname, if it claimed one.
pub async fn get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    blocking(move || Ok(domain_json(state.control.hostname_of(tenant)?))).await
}

/// `PUT /tenant/domain` `{hostname}`: claims a hostname (replacing the one
/// held); 409 `domain_taken` when another organization holds it.
pub async fn put(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let platform = state
        .runtime
        .services()
        .get("public-url")
        .and_then(|url| crate::hostnames::of_url(&url));
    let hostname = crate::hostnames::validate(&call.str_field("hostname")?, platform.as_deref())
        .map_err(ApiError::Validation)?;
    blocking(move || {
        let claim = state.control.claim_hostname(tenant, &hostname)?;
        match claim {
            Claim::Taken => Err(ApiError::Coded {
                status: axum::http::StatusCode::CONFLICT,
                code: "domain_taken",
                message: format!("`{hostname}` is already claimed by another organization"),
            }),
            Claim::Claimed { previous } => {
                state.hostnames.forget(&hostname);
                if let Some(previous) = previous {
                    state.hostnames.forget(&previous);
                }
                Ok(domain_json(state.control.hostname_of(tenant)?))
            }
        }
    })
    .await
}

/// `DELETE /tenant/domain`: gives the hostname up.
pub async fn delete(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    blocking(move || {
        let released = state.control.release_hostname(tenant)?;
        if let Some(hostname) = &released {
            state.hostnames.forget(hostname);
        }
        Ok(json!({"released": released}))
    })
    .await
}

/// `GET /public/tenant` (no credential): the public face of the
/// organization whose hostname the request's `Host` is; 404 `unknown_host`
/// when no organization claimed it.
pub async fn public(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let unknown = || ApiError::Coded {
        status: axum::http::StatusCode::NOT_FOUND,
        code: "unknown_host",
        message: "no organization is served at this address".into(),
    };
    let tenant = host_tenant(&state, &call.meta).await?.ok_or_else(unknown)?;
    let hostname = call.meta.host.clone().unwrap_or_default();
    blocking(move || {
        let record = state.control.tenant(tenant)?.ok_or_else(unknown)?;
        let db = state.tenancy.get(tenant)?;
        let row = branding::read(&*db.conn()?)?;
        Ok(json!({
            "tenant": {"id": record.id, "name": record.name, "slug": record.slug},
            "hostname": hostname,
            "branding": {
                "display_name": row["display_name"].as_str().unwrap_or(&record.name),
                "logo_url": row["logo_url"],
                "primary_colour": row["primary_colour"],
                "secondary_colour": row["secondary_colour"],
                "terminology": branding::effective_terminology(&row["terminology"]),
            },
        }))
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/tenant/domain", "tenant.domain.get")
            .permission("tenant.read")
            .summary("The hostname this organization claimed for its public pages and login, if any.")
            .output(domain_schema())
            .handle(get),
        Op::put("/tenant/domain", "tenant.domain.set")
            .permission("settings.manage")
            .summary("Claim a hostname (e.g. pay.example.com, pointed at this server): once control is proved (POST /tenant/domain/verify), requests sent to it resolve to this organization for its public page and login. Replaces the one held; 409 `domain_taken` if another organization holds it.")
            .input(object(
                &["hostname"],
                json!({"hostname": {"type": "string", "description": "A DNS name: not an IP address, not localhost, not the platform's own host."}}),
            ))
            .output(domain_schema())
            .handle(put),
        Op::delete("/tenant/domain", "tenant.domain.delete")
            .permission("settings.manage")
            .summary("Give up the organization's hostname.")
            .output(object(
                &["released"],
                json!({"released": {"type": ["string", "null"], "description": "The hostname given up; null if there was none."}}),
            ))
            .handle(delete),
        Op::post("/tenant/domain/verify", "tenant.domain.verify")
            .permission("settings.manage")
            .summary("Prove control of the claimed hostname: serve the `verification.token` of GET /tenant/domain as the \
                             whole body of http://<hostname>/.well-known/malipo-domain-verification, then call this. Until it \
                             succeeds the hostname routes no login and no public page. 422 `domain_unverified` when the \
                             challenge does not answer the token.")
            .output(domain_schema())
            .update()
            .handle(verify),
        Op::get("/public/tenant", "public.tenant")
            .summary("No credential: the public face (name, display name, logo, colours, terminology) of the organization whose claimed hostname this request was sent to (`Host`); 404 `unknown_host` otherwise.")
            .output(public_schema())
            .access(Access::Public)
            .tag("tenant")
            .handle(public),
    ]
}
