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
