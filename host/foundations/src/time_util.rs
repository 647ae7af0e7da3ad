//! Wall-clock helpers: every timestamp the host stores is RFC 3339 UTC text.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time as RFC 3339 UTC text, to the second.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 UTC text, to the second.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC text, to the
/// second.
pub fn format_ms(ms: u64) -> String {
    let at = OffsetDateTime::from_unix_timestamp(i64::try_from(ms / 1000).unwrap_or(0))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format_rfc3339(at)
}

/// Parses RFC 3339 text.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// How far the test clock has moved the business clock, in milliseconds.
static BUSINESS_CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(0);

/// The business clock, in milliseconds since the Unix epoch: what plugins
/// see as `now-ms` (trials, renewals, usage periods, payment timeouts).
/// It is the wall clock unless a test moved it with
/// [`advance_business_clock`]; credentials always use the wall clock.
pub fn business_now_ms() -> u64 {
    let offset = BUSINESS_CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::SeqCst);
    let now = i64::try_from(unix_now_ms()).unwrap_or(i64::MAX);
    u64::try_from(now.saturating_add(offset)).unwrap_or(0)
}

/// Moves the business clock forward by `ms` (only the test clock,
/// `MALIPO_TEST_CLOCK=1`, calls this). Answers the new business time.
pub fn advance_business_clock(ms: i64) -> u64 {
    BUSINESS_CLOCK_OFFSET_MS.fetch_add(ms.max(0), std::sync::atomic::Ordering::SeqCst);
    business_now_ms()
}
