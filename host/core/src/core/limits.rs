//! Rate limits: a per-address token bucket on the unauthenticated routes
//! (register, login, refresh, password reset, invitation accept), so
//! password guessing and reset flooding get `429` with `Retry-After`; and a
//! per-tenant bucket that every authenticated call spends from, whichever
//! channel (REST or MCP) it comes through, sized by the tenant's plan.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use std::hash::Hash;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use malipo_foundations::error::ApiError;
use malipo_foundations::ids::TenantId;

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

/// The limiter every tenant's authenticated calls share, across channels:
/// a token bucket per tenant, sized by its plan's `requests_per_minute`
/// and capped by the operator's `MALIPO_TENANT_RATE_PER_MINUTE` (0 turns
/// per-tenant limits off). One tenant's bucket never slows another.
pub struct TenantLimiter {
    ceiling: Option<NonZeroU32>,
    buckets: moka::sync::Cache<TenantId, std::sync::Arc<(NonZeroU32, DefaultDirectRateLimiter)>>,
}

impl TenantLimiter {
    /// `ceiling` calls a minute per tenant at most; 0 turns the limit off.
    pub fn new(ceiling: u32) -> Self {
        Self {
            ceiling: NonZeroU32::new(ceiling),
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
        }
    }

    /// Spends one call of `tenant`'s budget, `plan_per_minute` calls a
    /// minute (its plan's), or the ceiling when the plan sets none.
    pub fn check(&self, tenant: TenantId, plan_per_minute: Option<u64>) -> Result<(), ApiError> {
        let Some(ceiling) = self.ceiling else {
            return Ok(());
        };
        let rate = plan_per_minute
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .map_or(ceiling, |plan| plan.min(ceiling));
        let mut bucket = self.buckets.get_with(tenant, || {
            std::sync::Arc::new((rate, RateLimiter::direct(Quota::per_minute(rate))))
        });
        if bucket.0 != rate {
            bucket = std::sync::Arc::new((rate, RateLimiter::direct(Quota::per_minute(rate))));
            self.buckets.insert(tenant, std::sync::Arc::clone(&bucket));
        }
        bucket.1.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: format!(
                    "this organization is making calls faster than its limit of {rate} a minute allows; wait and try again"
                ),
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}
