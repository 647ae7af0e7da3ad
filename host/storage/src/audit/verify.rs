//! Walking an audit chain in seq order: the first row that was edited,
//! removed or never chained, and whether the chain still reaches the heads
//! recorded elsewhere (so that removing the last rows shows too).

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use crate::audit::chain;
use crate::audit::chain::{Chain, GENESIS, Link};

/// Why a chain is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The row's fields no longer give its hash: it was edited.
    HashMismatch,
    /// The row's `prev_hash` is not the previous row's hash.
    PrevHashMismatch,
    /// Rows are missing: the seq reported is the first one absent.
    MissingRows,
    /// A row has no seq: it was inserted behind the host's back.
    Unchained,
    /// The chain ends before a recorded head: its last rows were removed.
    Truncated,
    /// The row at a recorded head has another hash: the chain was cut and
    /// written again from there.
    HeadMismatch,
}

/// The first break found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Break {
    /// Where: the edited row's seq, or the first missing one.
    pub seq: Option<i64>,
    /// The row involved (for missing rows, the row found in their place).
    pub id: Option<i64>,
    /// Why.
    pub reason: Reason,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Whether the whole chain checks out.
    pub ok: bool,
    /// How many chained rows there are.
    pub rows: i64,
    /// The chain's last link.
    pub head: Option<Link>,
    /// The first break, if any.
    pub first_broken: Option<Break>,
}

/// A row as the walk reads it.
struct Row {
    id: i64,
    seq: SqlValue,
    prev_hash: Option<String>,
    hash: Option<String>,
    fields: Vec<Option<String>>,
}

/// Verifies the chain on `conn` against the head recorded next to it and
/// the `external` heads (read before this call, e.g. from `control.db`).
/// Rows written before the chain existed are chained first.
pub fn verify(
    conn: &Connection,
    chain: &Chain,
    external: &[Link],
) -> rusqlite::Result<Verification> {
    chain::seal_legacy(conn, chain)?;
    // One read transaction: one snapshot for the walk and the heads.
    let snapshot = conn.unchecked_transaction()?;
    let mut statement = snapshot.prepare(&format!(
        "SELECT id, seq, prev_hash, hash, {} FROM {} WHERE seq IS NOT NULL ORDER BY seq",
        chain.fields.join(", "),
        chain.table
    ))?;
    let rows = statement.query_map([], |row| {
        Ok(Row {
            id: row.get(0)?,
            seq: row.get(1)?,
            prev_hash: chain::text(row.get(2)?),
            hash: chain::text(row.get(3)?),
            fields: (4..4 + chain.fields.len())
                .map(|i| row.get::<_, SqlValue>(i).map(chain::text))
                .collect::<rusqlite::Result<_>>()?,
        })
    })?;
    let mut count = 0;
    let mut prev = GENESIS.to_string();
    let mut last: Option<Link> = None;
    let mut first_broken = None;
    for row in rows {
        let row = row?;
        count += 1;
        if first_broken.is_some() {
            continue;
        }
        first_broken = check(chain, &row, count, &prev);
        let hash = row.hash.unwrap_or_default();
        if let SqlValue::Integer(seq) = row.seq {
            last = Some(Link {
                seq,
                hash: hash.clone(),
            });
        }
        prev = hash;
    }
    drop(statement);
    if first_broken.is_none() {
        first_broken = unchained(&snapshot, chain)?;
    }
    if first_broken.is_none() {
        let local = chain::recorded_head(&snapshot, chain)?;
        for head in local.iter().chain(external) {
            first_broken = against_head(&snapshot, chain, last.as_ref(), head)?;
            if first_broken.is_some() {
                break;
            }
        }
    }
    Ok(Verification {
        ok: first_broken.is_none(),
        rows: count,
        head: last,
        first_broken,
    })
}

/// Checks the `position`-th row (1-based) after the hash `prev`.
fn check(chain: &Chain, row: &Row, position: i64, prev: &str) -> Option<Break> {
    let at = |seq: Option<i64>, reason| {
        Some(Break {
            seq,
            id: Some(row.id),
            reason,
        })
    };
    let SqlValue::Integer(seq) = row.seq else {
        return at(None, Reason::HashMismatch);
    };
    if seq > position {
        return at(Some(position), Reason::MissingRows);
    }
    let stored_prev = row.prev_hash.as_deref().unwrap_or_default();
    let hash = chain::link_hash(chain, seq, &row.fields, stored_prev);
    if seq < position || row.hash.as_deref() != Some(hash.as_str()) {
        return at(Some(seq), Reason::HashMismatch);
    }
    if stored_prev != prev {
        return at(Some(seq), Reason::PrevHashMismatch);
    }
    None
}

fn unchained(conn: &Connection, chain: &Chain) -> rusqlite::Result<Option<Break>> {
    let id: Option<i64> = rusqlite::OptionalExtension::optional(conn.query_row(
        &format!(
            "SELECT id FROM {} WHERE seq IS NULL ORDER BY id LIMIT 1",
            chain.table
        ),
        [],
        |row| row.get(0),
    ))?;
    Ok(id.map(|id| Break {
        seq: None,
        id: Some(id),
        reason: Reason::Unchained,
    }))
}

fn against_head(
    conn: &Connection,
    chain: &Chain,
    last: Option<&Link>,
    head: &Link,
) -> rusqlite::Result<Option<Break>> {
    let end = last.map_or(0, |l| l.seq);
    if end < head.seq {
        return Ok(Some(Break {
            seq: Some(end + 1),
            id: None,
            reason: Reason::Truncated,
        }));
    }
    Ok(match chain::hash_at(conn, chain, head.seq)? {
        Some((_, Some(hash))) if hash == head.hash => None,
        found => Some(Break {
            seq: Some(head.seq),
            id: found.map(|(id, _)| id),
            reason: Reason::HeadMismatch,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEntry, write};

    fn db(rows: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
               actor_type TEXT NOT NULL, actor_id TEXT, channel TEXT NOT NULL, operation TEXT NOT NULL,
               target TEXT, outcome TEXT NOT NULL, ip TEXT, user_agent TEXT, request_id TEXT,
               store_id TEXT, detail TEXT);
             CREATE TABLE host_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .expect("schema");
        conn.execute_batch(include_str!(
            "../../../../migrations/tenant/V6__audit_chain.sql"
        ))
        .expect("V6");
        for i in 0..rows {
            let entry = AuditEntry {
                actor_type: "user".into(),
                channel: "rest".into(),
                operation: format!("op.{i}"),
                outcome: "success".into(),
                ..AuditEntry::default()
            };
            write(&conn, &entry).expect("write");
        }
        conn
    }

    fn broken(conn: &Connection, external: &[Link]) -> Option<(Option<i64>, Reason)> {
        let outcome = verify(conn, &chain::TENANT, external).expect("verify");
        assert_eq!(outcome.ok, outcome.first_broken.is_none());
        outcome.first_broken.map(|b| (b.seq, b.reason))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let conn = db(5);
        let outcome = verify(&conn, &chain::TENANT, &[]).expect("verify");
        assert!(outcome.ok);
        assert_eq!(outcome.rows, 5);
        assert_eq!(outcome.head.map(|h| h.seq), Some(5));
        assert_eq!(broken(&db(0), &[]), None);
    }

    #[test]
    fn edits_gaps_and_truncation_are_found_where_they_are() {
        let conn = db(6);
        conn.execute("UPDATE audit_log SET outcome = 'x' WHERE seq = 3", [])
            .expect("edit");
        assert_eq!(broken(&conn, &[]), Some((Some(3), Reason::HashMismatch)));

        let conn = db(6);
        conn.execute("DELETE FROM audit_log WHERE seq = 4", [])
            .expect("delete");
        assert_eq!(broken(&conn, &[]), Some((Some(4), Reason::MissingRows)));

        let conn = db(6);
        let head = chain::last_link(&conn, &chain::TENANT).expect("head");
        conn.execute_batch("DELETE FROM audit_log WHERE seq = 6; DELETE FROM host_meta;")
            .expect("truncate");
        assert_eq!(broken(&conn, &[]), None, "nothing left to tell");
        let external: Vec<Link> = head.into_iter().collect();
        assert_eq!(broken(&conn, &external), Some((Some(6), Reason::Truncated)));

        // A row rewritten with a fresh hash breaks the next row's link.
        let conn = db(4);
        let prev: String = conn
            .query_row("SELECT prev_hash FROM audit_log WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .expect("prev");
        let fields: Vec<Option<String>> = conn
            .query_row(
                &format!(
                    "SELECT {} FROM audit_log WHERE seq = 2",
                    chain::TENANT.fields.join(", ")
                ),
                [],
                |row| {
                    (0..chain::TENANT.fields.len())
                        .map(|i| row.get::<_, Option<String>>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                },
            )
            .expect("fields");
        let mut forged = fields.clone();
        forged[6] = Some("failure:forged".into());
        let hash = chain::link_hash(&chain::TENANT, 2, &forged, &prev);
        conn.execute(
            "UPDATE audit_log SET outcome = 'failure:forged', hash = ?1 WHERE seq = 2",
            [hash],
        )
        .expect("forge");
        assert_eq!(
            broken(&conn, &[]),
            Some((Some(3), Reason::PrevHashMismatch))
        );
    }

    #[test]
    fn an_inserted_row_without_a_seq_is_reported() {
        let conn = db(2);
        conn.execute(
            "INSERT INTO audit_log (at, actor_type, channel, operation, outcome) VALUES ('x', 'user', 'rest', 'forged', 'success')",
            [],
        )
        .expect("insert");
        assert_eq!(broken(&conn, &[]), Some((None, Reason::Unchained)));
        // And the next write does not adopt it.
        write(&conn, &AuditEntry::default()).expect("write");
        assert_eq!(broken(&conn, &[]), Some((None, Reason::Unchained)));
    }

    #[test]
    fn rows_from_before_the_chain_are_chained_in_id_order_once() {
        let conn = db(0);
        conn.execute_batch(
            "INSERT INTO audit_log (at, actor_type, channel, operation, outcome) VALUES
               ('a', 'user', 'rest', 'one', 'success'), ('b', 'user', 'rest', 'two', 'success');
             INSERT INTO host_meta (key, value) VALUES ('audit_legacy_through', '2');",
        )
        .expect("legacy rows");
        write(&conn, &AuditEntry::default()).expect("write");
        let order: Vec<(i64, i64)> = conn
            .prepare("SELECT id, seq FROM audit_log ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(order, vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(broken(&conn, &[]), None);
    }
}
