//! The MCP server: lists the tool catalog and runs a tool call through the
//! same [`execute`] path as a REST request. The caller is the credential's
//! — put into the request by the `/mcp` authentication layer, or the API
//! key `malipo mcp` was started with — never a tool argument: a call that
//! names another tenant or user is refused and audited.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::core::Core;
use crate::core::execute as dispatch;
use crate::core::execute::{Invocation, execute};
use crate::core::operation::{Answer, RequestMeta};
use crate::error::{ApiError, REQUEST_ID};
use crate::plugins::Progress;

/// Where a call's caller comes from.
#[derive(Clone)]
pub enum Identity {
    /// The `/mcp` layer authenticated the HTTP request and put the
    /// [`Principal`] and [`RequestIdentity`] into its extensions.
    Http,
    /// `malipo mcp`: this API key, checked again on every call (so a
    /// revoked key or removed member stops at once).
    ApiKey(String),
}

/// What the HTTP layer found out about a request, for the handler.
#[derive(Clone, Debug)]
pub struct RequestIdentity {
    /// The checked caller.
    pub principal: Principal,
    /// The HTTP request's id.
    pub request_id: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

/// Arguments that would name a tenant or user: never trusted.
const IDENTITY_ARGUMENTS: &[&str] = &[
    "tenant_id",
    "tenantId",
    "tenant",
    "organization_id",
    "user_id",
    "userId",
];

/// The server one connection (or one stateless request) talks to.
#[derive(Clone)]
pub struct McpServer {
    state: Arc<Core>,
    tools: Arc<super::ToolCatalog>,
    identity: Identity,
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn error_text(error: &ApiError, request_id: &str) -> String {
    let hint = match error {
        ApiError::Forbidden(_) => " Ask a person to grant the permission or use another key.",
        ApiError::Validation(_) | ApiError::BadRequest(_) => " Fix the arguments and call again.",
        ApiError::TooManyRequests { .. } => " Wait before calling again.",
        ApiError::NotFound(_) => " Check the id; list first if unsure.",
        _ => "",
    };
    format!(
        "{} ({}).{hint} Request id: {request_id}",
        error.public_message(),
        error.code()
    )
}

impl McpServer {
    /// A server for callers identified by `identity`.
    pub fn new(state: Arc<Core>, tools: Arc<super::ToolCatalog>, identity: Identity) -> Self {
        Self {
            state,
            tools,
            identity,
        }
    }

    /// The caller of this request.
    async fn caller(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<RequestIdentity, ApiError> {
        match &self.identity {
            Identity::Http => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<RequestIdentity>())
                .cloned()
                .ok_or_else(ApiError::unauthenticated),
            Identity::ApiKey(key) => {
                let principal = super::admit(&self.state, &super::bearer(key)?).await?;
                Ok(RequestIdentity {
                    principal,
                    request_id: uuid::Uuid::new_v4().to_string(),
                    ip: None,
                    user_agent: Some("stdio".into()),
                })
            }
        }
    }

    /// Strips identity arguments that repeat the caller's own ids; refuses
    /// (and audits) a call whose identity arguments name anyone else.
    async fn screen_identity(
        &self,
        caller: &RequestIdentity,
        tool: &str,
        operation: &str,
        arguments: &mut Map<String, Value>,
    ) -> Result<(), ApiError> {
        let own = |name: &str| -> Option<String> {
            if name.starts_with("user") {
                Some(caller.principal.user_id.to_string())
            } else {
                caller.principal.tenant_id.map(|t| t.to_string())
            }
        };
        let mut foreign = Vec::new();
        for name in IDENTITY_ARGUMENTS {
            if let Some(value) = arguments.remove(*name)
                && value.as_str().map(str::to_string) != own(name)
            {
                foreign.push(*name);
            }
        }
        if foreign.is_empty() {
            return Ok(());
        }
        // The foreign ids themselves never enter this tenant's file.
        let entry = AuditEntry {
            actor_type: caller.principal.actor_type().into(),
            actor_id: Some(caller.principal.user_id.to_string()),
            channel: "mcp".into(),
            operation: operation.into(),
            target: Some(format!("tool:{tool}")),
            outcome: "failure:foreign_identity".into(),
            ip: caller.ip.clone(),
            user_agent: caller.user_agent.clone(),
            request_id: Some(caller.request_id.clone()),
            store_id: caller.principal.store_id.map(|s| s.to_string()),
            detail: Some(serde_json::json!({"arguments": foreign}).to_string()),
        };
        dispatch::record(&self.state, Some(&caller.principal), entry).await;
        Err(ApiError::Forbidden(format!(
            "the organization and user come from your credential, not from arguments; \
             this call named another one in {} and was refused and recorded",
            foreign.join(", ")
        )))
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.to_string();
        let Some(op) = self.tools.get(&name).cloned() else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`; call tools/list for the tools there are"),
                None,
            ));
        };
        let caller = match self.caller(&context).await {
            Ok(caller) => caller,
            Err(error) => return Ok(tool_error(error_text(&error, ""))),
        };
        let request_id = caller.request_id.clone();
        let mut arguments = request.arguments.unwrap_or_default();
        if let Err(error) = self
            .screen_identity(&caller, &name, &op.spec.name, &mut arguments)
            .await
        {
            return Ok(tool_error(error_text(&error, &request_id)));
        }
        let (progress, forwarder) = match context.meta.get_progress_token() {
            None => (None, None),
            Some(token) => {
                let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Progress>();
                let peer = context.peer.clone();
                let forwarder = tokio::spawn(async move {
                    while let Some(report) = receiver.recv().await {
                        let mut note =
                            ProgressNotificationParam::new(token.clone(), report.done as f64);
                        if let Some(total) = report.total {
                            note = note.with_total(total as f64);
                        }
                        if let Some(message) = report.message {
                            note = note.with_message(message);
                        }
                        if peer.notify_progress(note).await.is_err() {
                            break;
                        }
                    }
                });
                (Some(sender), Some(forwarder))
            }
        };
        let meta = RequestMeta {
            request_id: request_id.clone(),
            ip: caller.ip.clone(),
            user_agent: caller.user_agent.clone(),
            channel: "mcp".into(),
            // MCP is authenticated: a hostname never picks its tenant.
            host: None,
        };
        let call = Invocation {
            principal: Some(caller.principal),
            input: Value::Object(arguments),
            meta,
            target: format!("tool:{name}"),
            tool: Some(name),
            progress,
        };
        let state = Arc::clone(&self.state);
        let outcome = REQUEST_ID
            .scope(request_id.clone(), async move {
                execute(&state, &op, call).await.map(Answer::into_json)
            })
            .await;
        // The call (and with it the progress sender) is over: every report it
        // made goes out before its answer, or the answer would overtake them.
        // (Bounded, so a sender kept alive by mistake cannot hold the answer.)
        if let Some(forwarder) = forwarder {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
        }
        Ok(match outcome {
            Ok(value) if value.is_object() => CallToolResult::structured(value),
            Ok(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
            Err(error) => tool_error(error_text(&error, &request_id)),
        })
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("malipo", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Malipo: M-Pesa payments for one organization — the one your credential belongs to. \
                 Request payments (STK push), check their status, list history, run reports, check the \
                 balance. Payouts and reversals are only requested here: a person approves them in \
                 Malipo. Pass idempotency_key on money-moving calls and reuse it when retrying.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // A key limited to some tools sees only those.
        let allowed = match self.caller(&context).await {
            Ok(caller) => match caller.principal.credential {
                crate::auth::Credential::ApiKey { guardrails, .. } => guardrails.allowed_tools,
                crate::auth::Credential::Session { .. } => None,
            },
            Err(_) => None,
        };
        let tools = self
            .tools
            .tools()
            .iter()
            .filter(|tool| {
                allowed
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n.as_str() == tool.name.as_ref()))
            })
            .cloned()
            .collect();
        let mut result = ListToolsResult::with_all_items(tools);
        result.ttl_ms = Some(60_000);
        result.cache_scope = Some(CacheScope::Private);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, context)
            .await
            .map(CallToolResponse::from)
    }
}
