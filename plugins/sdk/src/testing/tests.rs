//! Unit tests of the SQLite test adapter: values, the host's rules, fixtures.

use super::{SqliteDb, code, context};
use crate::{Db, Error, Sql};

/// A database of plugin `demo` with one own table, allowed to read `stores`.
fn demo() -> SqliteDb {
    let db = SqliteDb::in_memory("demo", &["stores".to_owned()]).expect("in-memory SQLite");
    db.seed("CREATE TABLE stores (id TEXT PRIMARY KEY); CREATE TABLE secrets (v TEXT);")
        .expect("host tables");
    db.migrate("CREATE TABLE demo_values (v); CREATE INDEX demo_values_v ON demo_values (v);")
        .expect("the migration applies");
    db
}

#[test]
fn every_value_round_trips() {
    let db = demo();
    let values = [
        Sql::Null,
        Sql::Integer(i64::MIN),
        Sql::Integer(-1),
        Sql::Integer(i64::MAX),
        Sql::Real(-2.5),
        Sql::Real(f64::MAX),
        Sql::Text(String::new()),
        Sql::Text("Nairobi ✓".to_owned()),
        Sql::Blob(Vec::new()),
        Sql::Blob(vec![0, 1, 254, 255]),
    ];
    for value in &values {
        assert_eq!(
            db.execute(
                "INSERT INTO demo_values (v) VALUES (?1)",
                std::slice::from_ref(value)
            ),
            Ok(1)
        );
    }
    let table = db
        .query(
            "SELECT v, typeof(v) AS t FROM demo_values ORDER BY rowid",
            &[],
        )
        .expect("rows");
    assert_eq!(table.columns, vec!["v".to_owned(), "t".to_owned()]);
    let read: Vec<Sql> = table.rows.iter().map(|row| row[0].clone()).collect();
    assert_eq!(read, values);
    let types: Vec<&str> = table.iter().filter_map(|row| row.text("t")).collect();
    assert_eq!(
        types,
        [
            "null", "integer", "integer", "integer", "real", "real", "text", "text", "blob", "blob"
        ]
    );
    // Parameters bind by position, as the host binds them.
    assert_eq!(
        db.query_int("SELECT ?2 - ?1", &[Sql::Integer(2), Sql::Integer(5)]),
        Ok(3)
    );
}

#[test]
fn the_guard_refuses_what_the_host_refuses() {
    let db = demo();
    for sql in [
        "PRAGMA user_version = 3",
        "PRAGMA table_info(demo_values)",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s",
        "ATTACH DATABASE ':memory:' AS other",
        "CREATE TABLE demo_more (a)",
        "DROP TABLE demo_values",
        "ALTER TABLE demo_values ADD COLUMN b",
        "CREATE INDEX demo_again ON demo_values (v)",
        "DELETE FROM stores",
        "INSERT INTO secrets (v) VALUES ('x')",
        "SELECT * FROM secrets",
    ] {
        let refused = db.execute(sql, &[]).expect_err(sql);
        assert_eq!(refused.code, Error::INTERNAL, "{sql}");
        assert!(db.violation().is_some(), "{sql}: {}", refused.message);
    }
    assert!(db.query("SELECT * FROM secrets", &[]).is_err());
    assert!(db.query("SELECT * FROM stores", &[]).is_ok());
    assert_eq!(
        db.execute("INSERT INTO demo_values (v) VALUES (1)", &[]),
        Ok(1)
    );
    // A migration may not touch the host's tables either.
    assert!(db.migrate("CREATE TABLE stolen (a)").is_err());
    assert!(db.migrate("DROP TABLE stores").is_err());
}

#[test]
fn a_call_fails_when_a_statement_was_refused_or_wrote_while_read_only() {
    let db = demo();
    let write = || db.execute("INSERT INTO demo_values (v) VALUES (1)", &[]);
    assert_eq!(db.call(false, write), Ok(1));
    assert_eq!(code(db.call(true, write)), Error::INTERNAL);
    // The plugin swallowing the refusal does not save the call.
    let swallowed = db.call(false, || {
        let _ = db.execute("PRAGMA journal_mode = OFF", &[]);
        Ok(())
    });
    let error = swallowed.expect_err("a refused statement fails the call");
    assert!(error.message.contains("PRAGMA journal_mode"), "{error}");
    // The next call starts clean, and writes again after a read-only call.
    assert_eq!(db.call(false, write), Ok(1));
    assert_eq!(db.query_int("SELECT COUNT(*) FROM demo_values", &[]), Ok(2));
}

#[test]
fn seed_and_as_host_bypass_the_guard() {
    let db = demo();
    db.seed("INSERT INTO stores VALUES ('s1'); INSERT INTO secrets VALUES ('k'); PRAGMA user_version = 7;")
        .expect("the host may do anything");
    assert_eq!(db.query_int("SELECT COUNT(*) FROM stores", &[]), Ok(1));
    let version = db.as_host(|conn| conn.query_row("PRAGMA user_version", [], |row| row.get(0)));
    assert_eq!(version, Ok(7_i64));
    // …and the rules are back afterwards.
    assert!(db.query("SELECT * FROM secrets", &[]).is_err());
    assert!(
        db.connection()
            .execute_batch("DELETE FROM secrets")
            .is_err()
    );
}

#[test]
fn the_shared_context_and_code() {
    let user = context(Some("u"), 5);
    assert_eq!(
        (user.channel.as_str(), user.user_id.as_deref(), user.now_ms),
        ("rest", Some("u"), 5)
    );
    let system = context(None, 0);
    assert!(system.is_system());
    assert_eq!(system.channel, "system");
    assert_eq!(code::<()>(Err(Error::conflict("x"))), Error::CONFLICT);
}
