//! A binding-independent view of the tenant database: values, result tables and the [`Db`] trait.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One SQL value, mirroring the `tenant-db.value` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Sql {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Sql {
    /// The value as JSON: blobs become lower-case hex strings, non-finite reals null.
    pub fn to_json(&self) -> Value {
        match self {
            Sql::Null => Value::Null,
            Sql::Integer(i) => Value::from(*i),
            Sql::Real(r) => serde_json::Number::from_f64(*r).map_or(Value::Null, Value::Number),
            Sql::Text(s) => Value::String(s.clone()),
            Sql::Blob(b) => Value::String(b.iter().map(|byte| format!("{byte:02x}")).collect()),
        }
    }

    /// The text, if this is a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Sql::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Sql::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<&str> for Sql {
    fn from(s: &str) -> Self {
        Sql::Text(s.to_owned())
    }
}

impl From<&String> for Sql {
    fn from(s: &String) -> Self {
        Sql::Text(s.clone())
    }
}

impl From<String> for Sql {
    fn from(s: String) -> Self {
        Sql::Text(s)
    }
}

impl From<i64> for Sql {
    fn from(i: i64) -> Self {
        Sql::Integer(i)
    }
}

impl From<bool> for Sql {
    fn from(b: bool) -> Self {
        Sql::Integer(i64::from(b))
    }
}

impl<T: Into<Sql>> From<Option<T>> for Sql {
    fn from(v: Option<T>) -> Self {
        v.map_or(Sql::Null, Into::into)
    }
}

/// The answer to a query: column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Sql>>,
}

impl Table {
    /// Iterates over the rows with access by column name.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Every row as a JSON object keyed by column name.
    pub fn to_json(&self) -> Vec<Value> {
        self.iter()
            .map(|row| Value::Object(row.to_json()))
            .collect()
    }
}

/// One row of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Sql],
}

impl<'a> Row<'a> {
    /// The value of column `name`, if the query returned that column.
    pub fn get(&self, name: &str) -> Option<&'a Sql> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index)
    }

    /// The text of column `name` (None if absent, null or not text).
    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(Sql::as_text)
    }

    /// The text of column `name`, or an internal error naming the column.
    pub fn req_text(&self, name: &str) -> Result<&'a str> {
        self.text(name).ok_or_else(|| {
            Error::internal(format!("the database returned no text for column `{name}`"))
        })
    }

    /// The integer of column `name` (None if absent, null or not an integer).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Sql::as_integer)
    }

    /// The integer of column `name`, or an internal error naming the column.
    pub fn req_int(&self, name: &str) -> Result<i64> {
        self.int(name).ok_or_else(|| {
            Error::internal(format!(
                "the database returned no integer for column `{name}`"
            ))
        })
    }

    /// The row as a JSON object keyed by column name.
    pub fn to_json(&self) -> Map<String, Value> {
        self.columns
            .iter()
            .cloned()
            .zip(self.values.iter().map(Sql::to_json))
            .collect()
    }
}

/// The tenant database of the current call. Plugins implement it over
/// their generated `tenant-db` import; database failures become
/// `internal` errors.
pub trait Db {
    /// Runs one statement; answers the number of rows changed.
    fn execute(&self, sql: &str, params: &[Sql]) -> Result<u64>;
    /// Runs one query; answers its rows.
    fn query(&self, sql: &str, params: &[Sql]) -> Result<Table>;

    /// Runs a query expected to return a single integer (e.g. `COUNT(*)`).
    fn query_int(&self, sql: &str, params: &[Sql]) -> Result<i64> {
        let table = self.query(sql, params)?;
        table
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(Sql::as_integer)
            .ok_or_else(|| {
                Error::internal("the database returned no number where one was expected")
            })
    }

    /// True if the query returns at least one row.
    fn exists(&self, sql: &str, params: &[Sql]) -> Result<bool> {
        Ok(!self.query(sql, params)?.is_empty())
    }
}

/// Wraps a message from the host database as an internal error.
pub fn db_error(message: String) -> Error {
    Error::internal(format!("database error: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rows_by_column() {
        let table = Table {
            columns: vec!["id".into(), "n".into(), "b".into()],
            rows: vec![vec![
                Sql::from("a"),
                Sql::Integer(2),
                Sql::Blob(vec![0, 255]),
            ]],
        };
        let row = table.first().expect("one row");
        assert_eq!(row.text("id"), Some("a"));
        assert_eq!(row.int("n"), Some(2));
        assert_eq!(row.get("missing"), None);
        assert_eq!(
            table.to_json(),
            vec![serde_json::json!({"id": "a", "n": 2, "b": "00ff"})]
        );
    }
}
