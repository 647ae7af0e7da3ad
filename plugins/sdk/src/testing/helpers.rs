//! Small helpers the plugins' tests share: a call context and an error's code.

use std::fmt::Debug;

use crate::{Context, Result};

/// A call in tenant `t_1` (request `req`) at `now_ms`: by `user` over
/// `rest`, or by the host itself (`None`) over `system`; every store.
pub fn context(user: Option<&str>, now_ms: u64) -> Context {
    Context {
        tenant_id: "t_1".to_owned(),
        user_id: user.map(str::to_owned),
        store_id: None,
        request_id: "req".to_owned(),
        channel: if user.is_some() { "rest" } else { "system" }.to_owned(),
        now_ms,
        allowed_stores: None,
    }
}

/// The error code of a call that must fail; panics if it succeeded.
pub fn code<T: Debug>(result: Result<T>) -> &'static str {
    result.expect_err("the call fails").code
}
