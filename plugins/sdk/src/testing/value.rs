//! [`Sql`] values to and from rusqlite, as the host converts `tenant-db` values.

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlResult, ToSqlOutput, ValueRef};

use crate::Sql;

impl ToSql for Sql {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Sql::Null => ValueRef::Null,
            Sql::Integer(i) => ValueRef::Integer(*i),
            Sql::Real(r) => ValueRef::Real(*r),
            Sql::Text(s) => ValueRef::Text(s.as_bytes()),
            Sql::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl FromSql for Sql {
    /// Any stored value; text that is not UTF-8 is repaired lossily.
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value {
            ValueRef::Null => Sql::Null,
            ValueRef::Integer(i) => Sql::Integer(i),
            ValueRef::Real(r) => Sql::Real(r),
            ValueRef::Text(t) => Sql::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Sql::Blob(b.to_vec()),
        })
    }
}
