//! The caller of an operation, as filled in by the host from the credential.

/// Who is calling, for which tenant and store; a plain copy of the
/// generated `call-context` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub tenant_id: String,
    /// Absent for system calls (migrations, jobs, host-internal calls).
    pub user_id: Option<String>,
    /// The store named by `X-Store-ID`, already checked by the host.
    pub store_id: Option<String>,
    pub request_id: String,
    pub channel: String,
    /// Milliseconds since the Unix epoch, from the host clock.
    pub now_ms: u64,
}

impl Context {
    /// The current host time as an RFC 3339 UTC timestamp.
    pub fn now(&self) -> String {
        crate::time::rfc3339(self.now_ms)
    }

    /// True for calls the host makes on its own behalf (no user).
    pub fn is_system(&self) -> bool {
        self.user_id.is_none()
    }
}
