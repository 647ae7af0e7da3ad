//! Who is calling: the credential of a request (access token or API key)
//! turned into a checked [`Principal`]. The tenant and store come from the
//! credential and the `X-Store-ID` header only — never from a body, a query
//! string or any other header.

use std::sync::Arc;

use http::HeaderMap;

use crate::core::Core;
use malipo_foundations::error::{ApiError, blocking};
use malipo_foundations::ids::{StoreId, TenantId, UserId};

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Credential {
    /// An access token of this session.
    Session {
        /// The session (refresh-token family).
        session_id: String,
    },
    /// An API key.
    ApiKey {
        /// Key id.
        id: String,
        /// What the key may do (a subset of its maker's permissions).
        permissions: Vec<String>,
        /// Tool allow-list and amount caps.
        guardrails: malipo_storage::control::KeyGuardrails,
    },
}

/// A checked caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The person (for a key: its maker).
    pub user_id: UserId,
    /// The tenant of the credential, checked to exist, be active, and count
    /// the user as an active member.
    pub tenant_id: Option<TenantId>,
    /// The store of `X-Store-ID`, checked to belong to the tenant and be
    /// usable by the user; without the header, the caller's only store
    /// when they may use exactly one.
    pub store_id: Option<StoreId>,
    /// The stores the caller may see and act in (`None`: every store),
    /// computed once per request by [`crate::core::authz::scope_of`].
    pub allowed_stores: Option<Vec<crate::core::authz::UsableStore>>,
    /// Session or key.
    pub credential: Credential,
    /// Platform operator.
    pub is_super_admin: bool,
}

impl Principal {
    /// The tenant, or a 403 for tenant-less credentials (super-admins).
    pub fn tenant(&self) -> Result<TenantId, ApiError> {
        self.tenant_id
            .ok_or_else(|| ApiError::Forbidden("this credential is not bound to a tenant".into()))
    }

    /// `user` or `api_key`, for the audit log.
    pub fn actor_type(&self) -> &'static str {
        match self.credential {
            Credential::Session { .. } => "user",
            Credential::ApiKey { .. } => "api_key",
        }
    }

    /// The ids of [`Self::allowed_stores`], as plugins receive them.
    pub fn allowed_store_ids(&self) -> Option<Vec<String>> {
        self.allowed_stores
            .as_ref()
            .map(|list| list.iter().map(|s| s.id.to_string()).collect())
    }

    /// May the caller see or act on an object of `store`? With
    /// `X-Store-ID`, only that store's; otherwise their stores' and those
    /// of no store (`None`: the tenant's own), never another store's.
    pub fn may_see_store(&self, store: Option<&str>) -> bool {
        match (&self.store_id, &self.allowed_stores) {
            (Some(mine), _) => store == Some(mine.to_string().as_str()),
            (None, None) => true,
            (None, Some(list)) => store.is_none_or(|s| list.iter().any(|u| u.id.to_string() == s)),
        }
    }

    /// The session id, if this is a session.
    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { session_id } => Some(session_id),
            Credential::ApiKey { .. } => None,
        }
    }
}

/// The raw credential a request presents.
enum Presented {
    Jwt(String),
    ApiKey(String),
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Presented::ApiKey(key.trim().to_string()));
    }
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })?
        .trim()
        .to_string();
    if bearer.starts_with("mlp_") {
        Some(Presented::ApiKey(bearer))
    } else {
        Some(Presented::Jwt(bearer))
    }
}

/// Authenticates a request and, when `needs_tenant`, resolves its tenant
/// and store. Every failure to authenticate answers the same 401.
pub async fn authenticate(
    state: &Arc<Core>,
    headers: &HeaderMap,
    needs_tenant: bool,
) -> Result<Principal, ApiError> {
    let presented = presented(headers).ok_or_else(ApiError::missing_credentials)?;
    let store_header = match headers.get("x-store-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(StoreId::parse)
                .ok_or_else(|| {
                    ApiError::BadRequest("X-Store-ID must be a store id (a UUID)".into())
                })?,
        ),
    };
    let state_for_db = Arc::clone(state);
    let mut principal = blocking(move || {
        let state = state_for_db;
        let principal = match presented {
            Presented::Jwt(token) => {
                let claims = state
                    .jwt
                    .verify(&token)
                    .map_err(|rejection| match rejection {
                        malipo_foundations::jwt::TokenRejection::Expired => {
                            ApiError::token_expired()
                        }
                        malipo_foundations::jwt::TokenRejection::Invalid => {
                            ApiError::unauthenticated()
                        }
                    })?;
                let user_id = UserId::parse(&claims.sub).ok_or_else(ApiError::unauthenticated)?;
                let tenant_id = match claims.tid.as_deref() {
                    Some(t) => Some(TenantId::parse(t).ok_or_else(ApiError::unauthenticated)?),
                    None => None,
                };
                if !state.control.session_active(&claims.sid)? {
                    return Err(ApiError::unauthenticated());
                }
                let user = state
                    .control
                    .user(user_id)?
                    .ok_or_else(ApiError::unauthenticated)?;
                if user.status != "active" {
                    return Err(ApiError::unauthenticated());
                }
                Principal {
                    user_id,
                    tenant_id,
                    store_id: None,
                    allowed_stores: None,
                    credential: Credential::Session {
                        session_id: claims.sid,
                    },
                    is_super_admin: user.is_super_admin,
                }
            }
            Presented::ApiKey(secret) => {
                let key = state
                    .control
                    .api_key_by_secret(&secret)?
                    .ok_or_else(ApiError::unauthenticated)?;
                Principal {
                    user_id: key.user_id,
                    tenant_id: Some(key.tenant_id),
                    store_id: None,
                    allowed_stores: None,
                    credential: Credential::ApiKey {
                        id: key.id,
                        permissions: key.permissions,
                        guardrails: key.guardrails,
                    },
                    is_super_admin: false,
                }
            }
        };
        if let Some(tenant) = principal.tenant_id {
            let standing = state
                .control
                .standing(principal.user_id, tenant)?
                .ok_or_else(ApiError::unauthenticated)?;
            if !standing.member_active() {
                return Err(ApiError::unauthenticated());
            }
            if standing.tenant_pending_deletion {
                return Err(ApiError::TenantPendingDeletion(
                    "this organization is scheduled for deletion; contact the platform operator"
                        .into(),
                ));
            }
            if !standing.admits() {
                return Err(ApiError::TenantSuspended(
                    "this organization is suspended; contact the platform operator".into(),
                ));
            }
        } else if needs_tenant {
            return Err(ApiError::Forbidden(
                "this credential is not bound to a tenant".into(),
            ));
        }
        Ok(principal)
    })
    .await?;
    if let Some(tenant) = principal.tenant_id {
        crate::core::authz::confine(state, tenant, &mut principal, store_header).await?;
    } else if store_header.is_some() {
        return Err(ApiError::Forbidden(
            "X-Store-ID needs a tenant credential".into(),
        ));
    }
    Ok(principal)
}
