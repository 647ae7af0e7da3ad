//! The hash chain under an audit table (a tenant's `audit_log`, the
//! platform's `platform_audit`): appending a row, chaining rows written
//! before the chain existed, and walking the chain to verify it.
//!
//! Row `n` has `seq = n` (1, 2, 3, … with no gap), `prev_hash` = row
//! `n - 1`'s `hash` (64 zeros for row 1) and `hash` = lowercase hex
//! SHA-256 of the UTF-8 bytes of the compact JSON array
//! `[tag, seq, field…, prev_hash]`, where `tag` names the table and
//! version (`malipo.audit_log.v1`), `seq` is a JSON number and each field
//! (in [`Chain::fields`] order) is a JSON string or `null`. JSON quoting
//! makes the encoding unambiguous: no field can bleed into the next, and
//! `null` differs from `""`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Key (in the chain's meta table) of the chain's head.
const HEAD_KEY: &str = "audit_head";
/// Key (in the chain's meta table) of the last id written before the chain
/// existed; present until those rows are chained.
const LEGACY_KEY: &str = "audit_legacy_through";

/// One chained audit table.
#[derive(Debug)]
pub struct Chain {
    /// The table.
    pub table: &'static str,
    /// A `(key, value)` table in the same file holding the head.
    pub meta: &'static str,
    /// The domain tag hashed first.
    pub tag: &'static str,
    /// The hashed columns, in hashing order (`seq` and `prev_hash` aside).
    pub fields: &'static [&'static str],
}

impl Chain {
    /// Whether the table has this column among its fields.
    pub fn has(&self, column: &str) -> bool {
        self.fields.contains(&column)
    }
}

/// A tenant's `audit_log`.
pub const TENANT: Chain = Chain {
    table: "audit_log",
    meta: "host_meta",
    tag: "malipo.audit_log.v1",
    fields: &[
        "at",
        "actor_type",
        "actor_id",
        "channel",
        "operation",
        "target",
        "outcome",
        "ip",
        "user_agent",
        "request_id",
        "store_id",
        "detail",
    ],
};

/// The platform's `platform_audit` in `control.db`.
pub const PLATFORM: Chain = Chain {
    table: "platform_audit",
    meta: "platform_audit_meta",
    tag: "malipo.platform_audit.v1",
    fields: &[
        "at",
        "actor_id",
        "channel",
        "operation",
        "target",
        "outcome",
        "ip",
        "user_agent",
        "request_id",
        "detail",
    ],
};

/// A position in a chain: a row's seq and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The row's seq.
    pub seq: i64,
    /// The row's hash.
    pub hash: String,
}

/// The hash of row `seq` with these field values after `prev`.
pub fn link_hash(chain: &Chain, seq: i64, fields: &[Option<String>], prev: &str) -> String {
    let mut items = Vec::with_capacity(fields.len() + 3);
    items.push(Value::from(chain.tag));
    items.push(Value::from(seq));
    items.extend(
        fields
            .iter()
            .map(|f| f.clone().map_or(Value::Null, Value::String)),
    );
    items.push(Value::from(prev));
    hex::encode(Sha256::digest(Value::Array(items).to_string().as_bytes()))
}

/// A stored value as the chain hashes it. The host writes text or NULL;
/// anything else (only a hand edit makes it) is hashed as its text.
pub fn text(value: SqlValue) -> Option<String> {
    match value {
        SqlValue::Null => None,
        SqlValue::Text(text) => Some(text),
        SqlValue::Integer(n) => Some(n.to_string()),
        SqlValue::Real(x) => Some(x.to_string()),
        SqlValue::Blob(bytes) => Some(hex::encode(bytes)),
    }
}

/// Appends a row with these field values (in [`Chain::fields`] order) and
/// chains it. On a connection inside a transaction it runs in that
/// transaction; otherwise in an `IMMEDIATE` one of its own. The first
/// statement is the insert, so the write lock is held before the last
/// link is read: two writers can never read the same head.
pub fn append(
    conn: &Connection,
    chain: &Chain,
    fields: &[Option<String>],
) -> rusqlite::Result<Link> {
    if !conn.is_autocommit() {
        return append_locked(conn, chain, fields);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let appended = append_locked(conn, chain, fields).and_then(|link| {
        conn.execute_batch("COMMIT")?;
        Ok(link)
    });
    if appended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    appended
}

fn append_locked(
    conn: &Connection,
    chain: &Chain,
    fields: &[Option<String>],
) -> rusqlite::Result<Link> {
    let placeholders = (1..=chain.fields.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute(
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            chain.table,
            chain.fields.join(", ")
        ),
        params_from_iter(fields.iter()),
    )?;
    let id = conn.last_insert_rowid();
    chain_legacy_rows(conn, chain)?;
    let last = last_link(conn, chain)?;
    let link = link_row(conn, chain, id, fields, last.as_ref())?;
    set_head(conn, chain, &link)?;
    Ok(link)
}

/// Chains rows written before the chain existed, if any are waiting (see
/// the migration): a write transaction of its own unless already in one.
pub fn seal_legacy(conn: &Connection, chain: &Chain) -> rusqlite::Result<()> {
    if legacy_through(conn, chain)?.is_none() {
        return Ok(());
    }
    if !conn.is_autocommit() {
        return chain_legacy_rows(conn, chain);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let sealed = chain_legacy_rows(conn, chain).and_then(|()| conn.execute_batch("COMMIT"));
    if sealed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    sealed
}

fn legacy_through(conn: &Connection, chain: &Chain) -> rusqlite::Result<Option<i64>> {
    let value: Option<String> = conn
        .query_row(
            &format!("SELECT value FROM {} WHERE key = ?1", chain.meta),
            [LEGACY_KEY],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.map(|v| v.parse().unwrap_or(0)))
}

/// Under the write lock: chains the unchained rows up to the legacy marker
/// in id order, after the chain's current end, and drops the marker.
fn chain_legacy_rows(conn: &Connection, chain: &Chain) -> rusqlite::Result<()> {
    let Some(through) = legacy_through(conn, chain)? else {
        return Ok(());
    };
    let rows = {
        let mut statement = conn.prepare(&format!(
            "SELECT id, {} FROM {} WHERE seq IS NULL AND id <= ?1 ORDER BY id",
            chain.fields.join(", "),
            chain.table
        ))?;
        statement
            .query_map([through], |row| {
                let id: i64 = row.get(0)?;
                let fields = (1..=chain.fields.len())
                    .map(|i| row.get::<_, SqlValue>(i).map(text))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((id, fields))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut last = last_link(conn, chain)?;
    for (id, fields) in rows {
        last = Some(link_row(conn, chain, id, &fields, last.as_ref())?);
    }
    if let Some(head) = &last {
        set_head(conn, chain, head)?;
    }
    conn.execute(
        &format!("DELETE FROM {} WHERE key = ?1", chain.meta),
        [LEGACY_KEY],
    )?;
    Ok(())
}

fn link_row(
    conn: &Connection,
    chain: &Chain,
    id: i64,
    fields: &[Option<String>],
    after: Option<&Link>,
) -> rusqlite::Result<Link> {
    let (seq, prev) = after.map_or((1, GENESIS), |last| (last.seq + 1, last.hash.as_str()));
    let hash = link_hash(chain, seq, fields, prev);
    conn.execute(
        &format!(
            "UPDATE {} SET seq = ?1, prev_hash = ?2, hash = ?3 WHERE id = ?4",
            chain.table
        ),
        params![seq, prev, hash, id],
    )?;
    Ok(Link { seq, hash })
}

/// The last chained row.
pub fn last_link(conn: &Connection, chain: &Chain) -> rusqlite::Result<Option<Link>> {
    conn.query_row(
        &format!(
            "SELECT seq, hash FROM {} WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
            chain.table
        ),
        [],
        |row| Ok((row.get::<_, SqlValue>(0)?, row.get::<_, SqlValue>(1)?)),
    )
    .optional()
    .map(|found| {
        found.and_then(|(seq, hash)| match seq {
            SqlValue::Integer(seq) => Some(Link {
                seq,
                hash: text(hash).unwrap_or_default(),
            }),
            _ => None,
        })
    })
}

/// The hash stored on the row at `seq`, with its id.
pub fn hash_at(
    conn: &Connection,
    chain: &Chain,
    seq: i64,
) -> rusqlite::Result<Option<(i64, Option<String>)>> {
    conn.query_row(
        &format!("SELECT id, hash FROM {} WHERE seq = ?1", chain.table),
        [seq],
        |row| Ok((row.get(0)?, text(row.get(1)?))),
    )
    .optional()
}

fn set_head(conn: &Connection, chain: &Chain, head: &Link) -> rusqlite::Result<()> {
    let value = serde_json::json!({"seq": head.seq, "hash": head.hash}).to_string();
    conn.execute(
        &format!(
            "INSERT INTO {} (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            chain.meta
        ),
        params![HEAD_KEY, value],
    )?;
    Ok(())
}

/// The head recorded next to the chain (absent or unreadable: none).
pub fn recorded_head(conn: &Connection, chain: &Chain) -> rusqlite::Result<Option<Link>> {
    let value: Option<String> = conn
        .query_row(
            &format!("SELECT value FROM {} WHERE key = ?1", chain.meta),
            [HEAD_KEY],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value
        .and_then(|v| serde_json::from_str::<Value>(&v).ok())
        .and_then(|v| {
            Some(Link {
                seq: v.get("seq")?.as_i64()?,
                hash: v.get("hash")?.as_str()?.to_string(),
            })
        }))
}
