//! Calendar arithmetic for billing periods (UTC, whole milliseconds) and the billing constants.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Renewal and trial-end invoices are issued this many days before the
/// period (or trial) ends; they are due at the period end.
pub const INVOICE_LEAD_DAYS: i64 = 3;
/// Days a subscription stays `past_due` before it is `suspended`.
pub const GRACE_DAYS: i64 = 7;
/// Days past due on which the host is asked to retry the charge (dunning).
pub const DUNNING_DAYS: [i64; 3] = [1, 3, 5];
/// Days after issue that an invoice created by a plan change is due.
pub const CHANGE_DUE_DAYS: i64 = 3;
/// A pending payment attempt younger than this blocks a new one.
pub const ATTEMPT_PENDING_MS: i64 = 2 * 60 * 1000;

/// A plan's billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "month" => Some(Self::Month),
            "year" => Some(Self::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    /// Calendar months in one interval.
    pub fn months(self) -> i64 {
        match self {
            Self::Month => 1,
            Self::Year => 12,
        }
    }
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

/// The civil date (year, month 1–12, day 1–31) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// `ms` plus `n` calendar months, keeping the time of day and clamping the
/// day to the target month (Jan 31 + 1 month = Feb 28 or 29).
pub fn add_months(ms: i64, n: i64) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let time = ms.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let index = year * 12 + (month - 1) + n;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let day = day.min(days_in_month(year, month));
    days_from_civil(year, month, day) * DAY_MS + time
}

/// The end of period number `index` (0 for the first) of periods anchored at
/// `anchor`: computed from the anchor each time so that clamped days do not
/// drift (Jan 31 → Feb 28 → Mar 31).
pub fn period_end(anchor: i64, interval: Interval, index: i64) -> i64 {
    add_months(anchor, interval.months() * (index + 1))
}

/// Whole days in `ms`, rounded up (a started day counts).
pub fn days_ceil(ms: i64) -> i64 {
    if ms <= 0 {
        0
    } else {
        (ms + DAY_MS - 1) / DAY_MS
    }
}

/// RFC 3339 text of a time in ms (times before the epoch are clamped to it).
pub fn text(ms: i64) -> String {
    malipo_plugin_sdk::time::rfc3339(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i64, month: i64, day: i64) -> i64 {
        days_from_civil(year, month, day) * DAY_MS
    }

    #[test]
    fn civil_round_trips_and_matches_the_sdk() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_782, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "day {days}");
        }
        assert_eq!(text(at(2024, 2, 29) + 3_600_000), "2024-02-29T01:00:00Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn months_clamp_the_day_and_keep_the_time() {
        let noon = 12 * 3_600_000;
        assert_eq!(
            add_months(at(2025, 1, 31) + noon, 1),
            at(2025, 2, 28) + noon
        );
        assert_eq!(add_months(at(2024, 1, 31), 1), at(2024, 2, 29));
        assert_eq!(add_months(at(2024, 2, 29), 12), at(2025, 2, 28));
        assert_eq!(add_months(at(2023, 3, 31), 1), at(2023, 4, 30));
        assert_eq!(add_months(at(2023, 12, 15), 1), at(2024, 1, 15));
        assert_eq!(add_months(at(2023, 12, 31), 2), at(2024, 2, 29));
        assert_eq!(add_months(at(2100, 1, 31), 1), at(2100, 2, 28));
        assert_eq!(add_months(at(2000, 1, 31), 1), at(2000, 2, 29));
    }

    #[test]
    fn periods_from_an_anchor_do_not_drift() {
        let anchor = at(2025, 1, 31);
        assert_eq!(period_end(anchor, Interval::Month, 0), at(2025, 2, 28));
        assert_eq!(period_end(anchor, Interval::Month, 1), at(2025, 3, 31));
        assert_eq!(period_end(anchor, Interval::Month, 2), at(2025, 4, 30));
        assert_eq!(period_end(anchor, Interval::Year, 0), at(2026, 1, 31));
        assert_eq!(
            period_end(at(2024, 2, 29), Interval::Year, 3),
            at(2028, 2, 29)
        );
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2024) && is_leap(2000));
        assert!(!is_leap(2025) && !is_leap(1900) && !is_leap(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2025, 2), 28);
    }

    #[test]
    fn partial_days_count_as_days() {
        assert_eq!(days_ceil(0), 0);
        assert_eq!(days_ceil(1), 1);
        assert_eq!(days_ceil(DAY_MS), 1);
        assert_eq!(days_ceil(DAY_MS + 1), 2);
        assert_eq!(days_ceil(-5), 0);
    }
}
