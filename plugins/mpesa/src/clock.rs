//! Time formats: Daraja timestamps (Nairobi time), RFC 3339 with milliseconds, parsing of filter dates,
//! and UTC month boundaries.

use malipo_plugin_sdk::time::civil_from_days;

/// Nairobi is UTC+3 all year (no daylight saving).
const NAIROBI_OFFSET_MS: u64 = 3 * 3600 * 1000;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The Daraja `Timestamp` for an instant: `YYYYMMDDHHmmss` in Nairobi local time.
pub fn daraja_timestamp(now_ms: u64) -> String {
    let local = now_ms.saturating_add(NAIROBI_OFFSET_MS) / 1000;
    let (year, month, day) = civil_from_days(local / 86_400);
    let rem = local % 86_400;
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for `ms` since the Unix epoch.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first millisecond of the UTC calendar month after the one holding `ms`.
pub fn next_month_start_ms(ms: i64) -> i64 {
    // Howard Hinnant's civil-from-days, for any day before or after the epoch.
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(year, month, 1) * DAY_MS
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses exactly `n` ASCII digits.
fn digits(text: &str, n: usize) -> Option<i64> {
    (text.len() == n && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// Parses `YYYY-MM-DD` into days since the epoch.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year = digits(parts.next()?, 4)?;
    let month = digits(parts.next()?, 2)?;
    let day = digits(parts.next()?, 2)?;
    if parts.next().is_some()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// A bound of a date filter: either a whole day or one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `YYYY-MM-DD`: the UTC day starting at this instant (ms).
    Day(i64),
    /// An RFC 3339 instant (ms).
    Instant(i64),
}

impl Bound {
    /// The first millisecond the bound admits as a lower bound (`from`).
    pub fn start_ms(self) -> i64 {
        match self {
            Bound::Day(ms) | Bound::Instant(ms) => ms,
        }
    }

    /// The first millisecond the bound excludes as an upper bound (`to`):
    /// the next day for a date (inclusive day), just after the instant otherwise.
    pub fn end_ms_exclusive(self) -> i64 {
        match self {
            Bound::Day(ms) => ms + DAY_MS,
            Bound::Instant(ms) => ms + 1,
        }
    }
}

/// Parses a filter date: `YYYY-MM-DD` (a UTC day) or an RFC 3339 date-time
/// (`2026-11-24T10:25:53Z`, `…53.5+03:00`, lower-case `t`/`z` accepted).
pub fn parse_bound(text: &str) -> Option<Bound> {
    let text = text.trim();
    if text.len() == 10 {
        return parse_date(text).map(|days| Bound::Day(days * DAY_MS));
    }
    let (date, rest) = text.split_at_checked(10)?;
    let days = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = digits(rest.get(0..2)?, 2)?;
    let minute = rest
        .get(2..3)
        .filter(|s| *s == ":")
        .and(digits(rest.get(3..5)?, 2))?;
    let second = rest
        .get(5..6)
        .filter(|s| *s == ":")
        .and(digits(rest.get(6..8)?, 2))?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = rest.get(8..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let (frac, tail) = fraction.split_at(len);
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse::<i64>().ok()?;
        rest = tail;
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh = digits(rest.get(1..3)?, 2)?;
            let om = rest
                .get(3..4)
                .filter(|s| *s == ":")
                .and(digits(rest.get(4..6)?, 2))?;
            if rest.len() != 6 || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(Bound::Instant(secs * 1000 + millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daraja_timestamp_is_nairobi_time() {
        // 2026-11-24T10:25:53Z is 13:25:53 in Nairobi.
        assert_eq!(daraja_timestamp(1_795_515_953_999), "20261124132553");
        // Late UTC evening rolls over to the next Nairobi day.
        assert_eq!(daraja_timestamp(1_795_557_600_000), "20261125010000");
    }

    #[test]
    fn formats_milliseconds() {
        assert_eq!(rfc3339_ms(1_795_515_953_999), "2026-11-24T10:25:53.999Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_bounds() {
        assert_eq!(parse_bound("1970-01-02"), Some(Bound::Day(DAY_MS)));
        assert_eq!(
            parse_bound("2026-11-24T10:25:53.999Z"),
            Some(Bound::Instant(1_795_515_953_999))
        );
        assert_eq!(
            parse_bound("2026-11-24T13:25:53+03:00"),
            Some(Bound::Instant(1_795_515_953_000))
        );
        assert_eq!(
            parse_bound("2026-11-24T10:25:53.5z"),
            Some(Bound::Instant(1_795_515_953_500))
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-11-24T25:00:00Z",
            "2026-11-24T10:25:53",
            "yesterday",
        ] {
            assert_eq!(parse_bound(bad), None, "{bad}");
        }
        assert_eq!(
            parse_bound("2024-02-29"),
            Some(Bound::Day(days_from_civil(2024, 2, 29) * DAY_MS))
        );
    }

    #[test]
    fn finds_next_month_start() {
        let day = |y, m, d| days_from_civil(y, m, d) * DAY_MS;
        assert_eq!(next_month_start_ms(day(2026, 1, 1)), day(2026, 2, 1));
        assert_eq!(next_month_start_ms(day(2026, 2, 1) - 1), day(2026, 2, 1));
        assert_eq!(next_month_start_ms(day(2024, 2, 29) + 5), day(2024, 3, 1));
        assert_eq!(next_month_start_ms(day(2025, 12, 31)), day(2026, 1, 1));
        assert_eq!(next_month_start_ms(-1), 0);
        assert_eq!(next_month_start_ms(day(1, 1, 1)), day(1, 2, 1));
    }
}
