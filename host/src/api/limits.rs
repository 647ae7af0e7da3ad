//! Rate limits: a per-address token bucket on the unauthenticated routes
//! (register, login, refresh, password reset, invitation accept), so
//! password guessing and reset flooding get `429` with `Retry-After`; and a
//! per-tenant bucket that every authenticated call spends from, whichever
//! channel (REST or MCP) it comes through. Plan-specific limits arrive with
//! the usage plugin.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::ids::TenantId;

/// The limiter of the public routes.
pub struct PublicLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl PublicLimiter {
    /// `per_minute` calls a minute per address, in bursts of as many.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Spends one call for `ip` (unknown addresses share one bucket).
    pub fn check(&self, ip: Option<&str>) -> Result<(), ApiError> {
        let key = ip
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: "too many attempts from this address; wait and try again".into(),
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}

/// The limiter every tenant's authenticated calls share, across channels.
pub struct TenantLimiter {
    limiter: Option<DefaultKeyedRateLimiter<TenantId>>,
}

impl TenantLimiter {
    /// `per_minute` calls a minute per tenant, in bursts of as many; 0
    /// turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Spends one call of `tenant`'s budget.
    pub fn check(&self, tenant: TenantId) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: "this organization is making calls faster than its limit allows; wait and try again".into(),
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}
