//! `malipo tenant create|list|suspend|reactivate|delete`, `malipo user create|list|assign-role` and `malipo migrate`: the operator's CLI.
//!
//! Each command prints human text (aligned tables, one line per fact) or,
//! with `--json`, exactly one JSON document on stdout; on failure the message
//! goes to stderr (and, with `--json`, `{"error":{"code","message"}}` to
//! stdout) and the exit status is non-zero. Mutating commands write the
//! platform audit with channel `cli`, and the tenant's audit where they act
//! inside a tenant.

mod migrate;
mod output;
mod secrets;
mod tenant;
mod user;

pub use migrate::migrate;
pub use output::{Failure, Out};
pub use secrets::password;
pub use tenant::{parse_id as parse_tenant, tenant};
pub use user::user;

use malipo::core::operation::RequestMeta;

/// The request facts of one CLI invocation, for audits and plugin calls.
pub fn cli_meta() -> RequestMeta {
    RequestMeta {
        request_id: format!("cli-{}", uuid::Uuid::new_v4()),
        user_agent: Some(format!("malipo-cli/{}", env!("CARGO_PKG_VERSION"))),
        channel: "cli".into(),
        ..Default::default()
    }
}
