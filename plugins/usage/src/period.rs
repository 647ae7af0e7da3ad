//! Calendar days (`YYYY-MM-DD`) and months (`YYYY-MM`) in UTC, from the host clock.

use malipo_plugin_sdk::time::civil_from_days;
use malipo_plugin_sdk::{Error, Result};

const MS_PER_DAY: u64 = 86_400_000;

/// A calendar date (UTC) on or after 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u64,
    pub month: u64,
    pub day: u64,
}

impl Date {
    /// The UTC date of `ms` since the Unix epoch.
    pub fn from_ms(ms: u64) -> Self {
        Self::from_days(ms / MS_PER_DAY)
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days(days: u64) -> Self {
        let (year, month, day) = civil_from_days(days);
        Self { year, month, day }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    pub fn days(&self) -> u64 {
        let year = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = year / 400;
        let yoe = year - era * 400;
        let mp = (self.month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + self.day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Parses a strict `YYYY-MM-DD` date from 1970 to 9999.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if !text.is_ascii() || bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let year = digits(&text[0..4])?;
        let month = digits(&text[5..7])?;
        let day = digits(&text[8..10])?;
        if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month)
        {
            return None;
        }
        Some(Self { year, month, day })
    }

    /// The date as `YYYY-MM-DD`.
    pub fn to_text(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The month of the date.
    pub fn month(self) -> Month {
        Month {
            year: self.year,
            month: self.month,
        }
    }
}

/// A calendar month: a usage period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: u64,
    pub month: u64,
}

impl Month {
    /// The month of `ms` since the Unix epoch (UTC).
    pub fn from_ms(ms: u64) -> Self {
        Date::from_ms(ms).month()
    }

    /// Parses a strict `YYYY-MM` month from 1970 to 9999.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if !text.is_ascii() || bytes.len() != 7 || bytes[4] != b'-' {
            return None;
        }
        let year = digits(&text[0..4])?;
        let month = digits(&text[5..7])?;
        (year >= 1970 && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// The optional `period` input, or the month of `now_ms`.
    pub fn from_input(period: Option<&str>, now_ms: u64) -> Result<Self> {
        match period.map(str::trim) {
            None | Some("") => Ok(Self::from_ms(now_ms)),
            Some(text) => Self::parse(text).ok_or_else(|| {
                Error::validation(format!(
                    "`period` must be a month written YYYY-MM (e.g. 2026-05), not `{text}`."
                ))
            }),
        }
    }

    /// The month as `YYYY-MM`.
    pub fn to_text(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// The first day of the month.
    pub fn first_day(self) -> Date {
        Date {
            year: self.year,
            month: self.month,
            day: 1,
        }
    }

    /// The last day of the month.
    pub fn last_day(self) -> Date {
        Date {
            year: self.year,
            month: self.month,
            day: days_in_month(self.year, self.month),
        }
    }
}

/// The value of a run of ASCII digits.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// The number of days of a month (1–12).
pub fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_over_leap_years() {
        for days in [0, 59, 60, 365, 10_956, 11_016, 20_000, 2_932_896] {
            assert_eq!(Date::from_days(days).days(), days, "day {days}");
        }
        let leap = Date::parse("2024-02-29").expect("a leap day");
        assert_eq!(Date::from_days(leap.days() + 1).to_text(), "2024-03-01");
        // 2026-11-24T10:25:53Z
        assert_eq!(Date::from_ms(1_795_515_953_999).to_text(), "2026-11-24");
        assert_eq!(Month::from_ms(1_795_515_953_999).to_text(), "2026-11");
    }

    #[test]
    fn parses_only_real_dates() {
        assert!(Date::parse("2026-05-31").is_some());
        for bad in [
            "2026-5-31",
            "2026-05-32",
            "2026-06-31",
            "2025-02-29",
            "1900-02-28",
            "2026-13-01",
            "2026-00-10",
            "2026/05/01",
            "2026-05-01T00:00:00Z",
            "+026-05-01",
            "２０２６-05-01",
            "",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Month::parse("2026-02").map(|m| m.last_day().to_text()),
            Some("2026-02-28".to_owned())
        );
        assert_eq!(
            Month::parse("2024-02").map(|m| m.last_day().to_text()),
            Some("2024-02-29".to_owned())
        );
        assert_eq!(
            Month::parse("2000-12").map(|m| m.first_day().to_text()),
            Some("2000-12-01".to_owned())
        );
        for bad in ["2026-13", "2026-5", "2026-05-01", "26-05", "2026-+5"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn period_input_defaults_to_the_current_month() {
        let now = 1_795_515_953_999;
        assert_eq!(
            Month::from_input(None, now).map(Month::to_text),
            Ok("2026-11".to_owned())
        );
        assert_eq!(
            Month::from_input(Some("2025-01"), now).map(Month::to_text),
            Ok("2025-01".to_owned())
        );
        assert_eq!(
            Month::from_input(Some("Jan"), now).map_err(|e| e.code),
            Err(Error::VALIDATION_FAILED)
        );
    }
}
