//! Reading an audit table: filters, newest-first paging by an opaque
//! seq-based cursor, and the rows as JSON or CSV.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::audit::chain;
use crate::audit::chain::Chain;
use malipo_foundations::time_util::{format_rfc3339, parse_rfc3339};

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most rows a page holds.
pub const MAX_LIMIT: i64 = 500;

/// A filter the caller gave that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

/// How the rows are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{entries, next_cursor}`.
    Json,
    /// `text/csv` with a header row.
    Csv,
}

/// The parsed query of a listing.
#[derive(Clone, Debug)]
pub struct Filters {
    /// `at >= from` (RFC 3339 UTC text, to the second).
    from: Option<String>,
    /// `at < until`.
    until: Option<String>,
    /// Exact-match columns and their values.
    exact: Vec<(&'static str, String)>,
    /// `operation` prefix (from `name*`).
    operation_prefix: Option<String>,
    /// `success`: `outcome = 'success'`; `failure`: any `failure…`.
    failure: Option<bool>,
    /// Only rows with a smaller seq (the cursor).
    before: Option<i64>,
    /// Rows per page.
    limit: i64,
    /// JSON or CSV.
    pub format: Format,
    /// Only rows of these stores (`None`: every row), and of no store when
    /// the flag is set: a store-limited caller's scope.
    stores: Option<(Vec<String>, bool)>,
}

/// One page of rows.
#[derive(Clone, Debug)]
pub struct Page {
    /// The rows, newest first, as JSON objects.
    pub entries: Vec<Map<String, Value>>,
    /// The cursor of the next page, if there are more rows.
    pub next_cursor: Option<String>,
}

fn string(input: &Value, name: &str) -> Result<Option<String>, FilterError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FilterError(format!("`{name}` must be a string"))),
    }
}

fn bad(name: &str, what: &str) -> FilterError {
    FilterError(format!("`{name}` must be {what}"))
}

/// An RFC 3339 time, or a `YYYY-MM-DD` date (midnight UTC; with
/// `end_of_day`, the next midnight).
fn instant(text: &str, name: &str, end_of_day: bool) -> Result<OffsetDateTime, FilterError> {
    if let Some(at) = parse_rfc3339(text) {
        return in_range(at, name).map(|at| at.to_offset(UtcOffset::UTC));
    }
    let date = || -> Option<Date> {
        let mut parts = text.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
        Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
    };
    let date = date().ok_or_else(|| bad(name, "an RFC 3339 time or a YYYY-MM-DD date"))?;
    let start = in_range(date.with_time(Time::MIDNIGHT).assume_utc(), name)?;
    if end_of_day {
        start
            .checked_add(time::Duration::days(1))
            .ok_or_else(|| out_of_range(name))
    } else {
        Ok(start)
    }
}

/// The window a date from a request must fall in; anything outside is
/// refused (422) instead of overflowing the date arithmetic.
const EARLIEST_YEAR: i32 = 1970;
const LATEST_YEAR: i32 = 9998;

fn out_of_range(name: &str) -> FilterError {
    bad(
        name,
        &format!("between {EARLIEST_YEAR}-01-01 and {LATEST_YEAR}-12-31"),
    )
}

fn in_range(at: OffsetDateTime, name: &str) -> Result<OffsetDateTime, FilterError> {
    if (EARLIEST_YEAR..=LATEST_YEAR).contains(&at.to_offset(UtcOffset::UTC).year()) {
        Ok(at)
    } else {
        Err(out_of_range(name))
    }
}

/// The cursor of the page after the row with this seq.
pub fn cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn parse_cursor(text: &str) -> Result<i64, FilterError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("seq:")?.parse::<i64>().ok())
        .filter(|seq| *seq > 0)
        .ok_or_else(|| bad("cursor", "a `next_cursor` this API answered"))
}

impl Filters {
    /// Reads the filters of a listing of `chain` from an operation's input:
    /// `from`, `to`, `actor_id`, `operation` (exact, or a prefix ending in
    /// `*`), `outcome` (`success`/`failure`), `channel`, `target`,
    /// `store_id` (tenant logs), `limit` (1–500), `cursor`, `format`.
    pub fn parse(input: &Value, chain: &Chain) -> Result<Self, FilterError> {
        let from = string(input, "from")?
            .map(|t| instant(&t, "from", false))
            .transpose()?;
        let to = match string(input, "to")? {
            // An RFC 3339 `to` includes its second; a date, its whole day.
            Some(t) if parse_rfc3339(&t).is_some() => Some(
                instant(&t, "to", false)?
                    .checked_add(time::Duration::seconds(1))
                    .ok_or_else(|| out_of_range("to"))?,
            ),
            Some(t) => Some(instant(&t, "to", true)?),
            None => None,
        };
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(FilterError("`from` must be before `to`".into()));
        }
        let mut exact = Vec::new();
        for name in ["actor_id", "channel", "target", "store_id"] {
            if let Some(value) = string(input, name)? {
                if !chain.has(name) {
                    return Err(FilterError(format!("`{name}` is not a filter of this log")));
                }
                exact.push((name, value));
            }
        }
        let mut operation_prefix = None;
        if let Some(operation) = string(input, "operation")? {
            match operation.split_once('*') {
                None => exact.push(("operation", operation)),
                Some((prefix, "")) => operation_prefix = Some(prefix.to_string()),
                Some(_) => {
                    return Err(bad(
                        "operation",
                        "an operation name, or a prefix ending in a single `*`",
                    ));
                }
            }
        }
        let failure = match string(input, "outcome")?.as_deref() {
            None => None,
            Some("success") => Some(false),
            Some("failure") => Some(true),
            Some(_) => return Err(bad("outcome", "`success` or `failure`")),
        };
        let limit = match input.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(value) => value
                .as_i64()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| bad("limit", "a whole number from 1 to 500"))?,
        };
        let before = string(input, "cursor")?
            .map(|c| parse_cursor(&c))
            .transpose()?;
        let format = match string(input, "format")?.as_deref() {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(_) => return Err(bad("format", "`json` or `csv`")),
        };
        Ok(Self {
            from: from.map(format_rfc3339),
            until: to.map(format_rfc3339),
            exact,
            operation_prefix,
            failure,
            before,
            limit,
            format,
            stores: None,
        })
    }

    /// Confines the listing to `stores` (a store-limited caller's), and to
    /// rows of no store when `unassigned`; a `store_id` filter outside them
    /// is refused.
    pub fn confine(&mut self, stores: Vec<String>, unassigned: bool) -> Result<(), FilterError> {
        if let Some((_, wanted)) = self.exact.iter().find(|(name, _)| *name == "store_id")
            && !stores.contains(wanted)
        {
            return Err(FilterError(
                "`store_id` names a store you may not use".into(),
            ));
        }
        self.stores = Some((stores, unassigned));
        Ok(())
    }
}

/// One page of the rows of `chain` on `conn` that pass `filters`, newest
/// first. Rows without a seq (see verification) are not listed.
pub fn page(conn: &Connection, chain: &Chain, filters: &Filters) -> rusqlite::Result<Page> {
    let mut sql = format!(
        "SELECT id, seq, prev_hash, hash, {} FROM {} WHERE seq IS NOT NULL",
        chain.fields.join(", "),
        chain.table
    );
    let mut args: Vec<SqlValue> = Vec::new();
    let mut clause = |condition: &str, value: SqlValue| {
        sql.push_str(" AND ");
        sql.push_str(condition);
        args.push(value);
    };
    if let Some(from) = &filters.from {
        clause("at >= ?", SqlValue::Text(from.clone()));
    }
    if let Some(until) = &filters.until {
        clause("at < ?", SqlValue::Text(until.clone()));
    }
    for (column, value) in &filters.exact {
        clause(&format!("{column} = ?"), SqlValue::Text(value.clone()));
    }
    if let Some(prefix) = &filters.operation_prefix {
        clause("instr(operation, ?) = 1", SqlValue::Text(prefix.clone()));
    }
    match filters.failure {
        Some(false) => clause("outcome = ?", SqlValue::Text("success".into())),
        Some(true) => clause(
            "(outcome = ? OR substr(outcome, 1, 8) = 'failure:')",
            SqlValue::Text("failure".into()),
        ),
        None => {}
    }
    if let Some(before) = filters.before {
        clause("seq < ?", SqlValue::Integer(before));
    }
    if let Some((stores, unassigned)) = &filters.stores {
        let within = if stores.is_empty() {
            "0".to_string()
        } else {
            format!("store_id IN ({})", vec!["?"; stores.len()].join(", "))
        };
        if *unassigned {
            sql.push_str(&format!(" AND (store_id IS NULL OR {within})"));
        } else {
            sql.push_str(&format!(" AND {within}"));
        }
        args.extend(stores.iter().cloned().map(SqlValue::Text));
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push(SqlValue::Integer(filters.limit + 1));
    let mut statement = conn.prepare(&sql)?;
    let mut entries = statement
        .query_map(params_from_iter(args), |row| {
            let mut entry = Map::new();
            entry.insert("id".into(), Value::from(row.get::<_, i64>(0)?));
            entry.insert("seq".into(), Value::from(row.get::<_, i64>(1)?));
            for (i, name) in chain.fields.iter().enumerate() {
                let value = chain::text(row.get(4 + i)?);
                entry.insert((*name).into(), value.map_or(Value::Null, Value::String));
            }
            for (i, name) in [(2, "prev_hash"), (3, "hash")] {
                let value = chain::text(row.get(i)?);
                entry.insert(name.into(), value.map_or(Value::Null, Value::String));
            }
            Ok(entry)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = entries.len() > usize::try_from(filters.limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(filters.limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| entries.last().and_then(|e| e.get("seq")?.as_i64()))
        .flatten()
        .map(cursor);
    Ok(Page {
        entries,
        next_cursor,
    })
}

/// The columns of a CSV export of `chain`, in order.
pub fn csv_columns(chain: &Chain) -> Vec<&'static str> {
    let mut columns = vec!["id", "seq"];
    columns.extend_from_slice(chain.fields);
    columns.extend_from_slice(&["prev_hash", "hash"]);
    columns
}

/// One CSV cell (RFC 4180 quoting). A text cell a spreadsheet would run as
/// a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => return other.to_string(),
    };
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The page as CSV: a header row, then one line per row (CRLF endings).
pub fn csv(chain: &Chain, page: &Page) -> String {
    let columns = csv_columns(chain);
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for entry in &page.entries {
        let line = columns
            .iter()
            .map(|c| cell(entry.get(*c).unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_refuse_what_they_cannot_use() {
        let t = &chain::TENANT;
        assert!(Filters::parse(&json!({"limit": 0}), t).is_err());
        assert!(Filters::parse(&json!({"limit": 501}), t).is_err());
        assert!(Filters::parse(&json!({"limit": "x"}), t).is_err());
        assert!(Filters::parse(&json!({"outcome": "maybe"}), t).is_err());
        assert!(Filters::parse(&json!({"from": "yesterday"}), t).is_err());
        assert!(Filters::parse(&json!({"operation": "a*b"}), t).is_err());
        assert!(Filters::parse(&json!({"cursor": "nope"}), t).is_err());
        assert!(Filters::parse(&json!({"format": "xml"}), t).is_err());
        assert!(Filters::parse(&json!({"store_id": "s"}), &chain::PLATFORM).is_err());
        assert!(Filters::parse(&json!({"from": "2026-02-02", "to": "2026-02-01"}), t).is_err());
        let ok = Filters::parse(
            &json!({"from": "2026-02-01", "to": "2026-02-01", "operation": "stores.*", "limit": 500, "cursor": cursor(7), "format": "csv"}),
            t,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_date_to_covers_its_whole_day() {
        let filters = Filters::parse(
            &json!({"from": "2026-02-01", "to": "2026-02-01"}),
            &chain::TENANT,
        );
        let filters = filters.map_err(|e| e.to_string());
        assert_eq!(
            filters.map(|f| (f.from, f.until)),
            Ok((
                Some("2026-02-01T00:00:00Z".to_string()),
                Some("2026-02-02T00:00:00Z".to_string())
            ))
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell(&json!("a,b")), "\"a,b\"");
        assert_eq!(cell(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(cell(&json!("=SUM(A1)")), "'=SUM(A1)");
        assert_eq!(cell(&Value::Null), "");
        assert_eq!(cell(&json!(12)), "12");
    }
}
