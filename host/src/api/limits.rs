//! Rate limits: a per-address token bucket on the unauthenticated routes
//! (register, login, refresh, password reset, invitation accept), so
//! password guessing and reset flooding get `429` with `Retry-After`; and a
//! per-tenant bucket that every authenticated call spends from, whichever
//! channel (REST or MCP) it comes through. Plan-specific limits arrive with
//! the usage plugin.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use std::hash::Hash;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::ids::TenantId;

/// A token bucket per key: `per_minute` calls a minute, in bursts of as
/// many; a refusal is a `429` with the seconds until the next token.
struct Buckets<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    message: &'static str,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(per_minute: NonZeroU32, message: &'static str) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            message,
        }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: self.message.into(),
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}

/// The limiter of the public routes.
pub struct PublicLimiter {
    buckets: Buckets<IpAddr>,
}

impl PublicLimiter {
    /// `per_minute` calls a minute per address (at least one).
    pub fn new(per_minute: u32) -> Self {
        Self {
            buckets: Buckets::new(
                NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
                "too many attempts from this address; wait and try again",
            ),
        }
    }

    /// Spends one call for `ip` (unknown addresses share one bucket).
    pub fn check(&self, ip: Option<&str>) -> Result<(), ApiError> {
        let key = ip
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.buckets.check(&key)
    }
}

/// The limiter every tenant's authenticated calls share, across channels.
pub struct TenantLimiter {
    buckets: Option<Buckets<TenantId>>,
}

impl TenantLimiter {
    /// `per_minute` calls a minute per tenant; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            buckets: NonZeroU32::new(per_minute).map(|n| {
                Buckets::new(
                    n,
                    "this organization is making calls faster than its limit allows; wait and try again",
                )
            }),
        }
    }

    /// Spends one call of `tenant`'s budget.
    pub fn check(&self, tenant: TenantId) -> Result<(), ApiError> {
        self.buckets
            .as_ref()
            .map_or(Ok(()), |buckets| buckets.check(&tenant))
    }
}
