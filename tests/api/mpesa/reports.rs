//! Reports over a closed range, aggregated a calendar month at a time.

use super::*;

/// Reports over a closed range are aggregated a calendar month at a time;
/// the answer is the same as the one over an open range (one chunk).
#[tokio::test]
async fn a_report_by_months_equals_one_over_the_whole_range() {
    let app = spawn().await;
    let owner = app.register("Mpesa Monthly Report").await;
    let before = report_totals(&app, &owner).await;
    assert_eq!(before["count"], 0, "{before}");

    // (created_at, kind, status, store, amount)
    let rows = [
        ("2025-11-30T23:59:59.999Z", "stk", "completed", None, 100),
        ("2025-12-01T00:00:00.000Z", "stk", "failed", Some("s1"), 200),
        (
            "2025-12-15T10:00:00.000Z",
            "b2c",
            "completed",
            Some("s2"),
            300,
        ),
        (
            "2025-12-15T11:00:00.000Z",
            "b2c",
            "timeout",
            Some("s1"),
            400,
        ),
        (
            "2026-01-31T23:59:59.000Z",
            "c2b",
            "completed",
            Some("s1"),
            500,
        ),
        ("2026-02-01T00:00:00.000Z", "stk", "pending", None, 600),
        (
            "2026-03-03T08:00:00.000Z",
            "reversal",
            "completed",
            Some("s2"),
            700,
        ),
    ];
    let conn = open(&app.tenant_file(&owner.tenant_id));
    for (index, (at, kind, status, store, amount)) in rows.iter().enumerate() {
        let ms = epoch_ms(at);
        conn.execute(
            "INSERT INTO mpesa_transactions (id, kind, status, store_id, amount, created_at, created_ms, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
            rusqlite::params![format!("t{index}"), kind, status, store, amount, at, ms],
        )
        .expect("insert transaction");
    }
    drop(conn);

    for group_by in ["day", "store", "kind"] {
        let months = report_at(
            &app,
            &owner,
            &format!("group_by={group_by}&from=2025-11-01&to=2026-03-31"),
        )
        .await;
        let whole = report_at(
            &app,
            &owner,
            &format!("group_by={group_by}&from=2025-11-01"),
        )
        .await;
        assert_eq!(
            months["totals"], whole["totals"],
            "{group_by}: {months} vs {whole}"
        );
        assert_eq!(
            months["groups"], whole["groups"],
            "{group_by}: {months} vs {whole}"
        );
        assert_eq!(months["totals"]["count"], 7, "{months}");
        assert_eq!(months["totals"]["amount_completed"], 1600, "{months}");
        assert_eq!(months["totals"]["failed"], 2, "{months}");
        let keys: Vec<Value> = months["groups"]
            .as_array()
            .map(|groups| groups.iter().map(|g| g["key"].clone()).collect())
            .unwrap_or_default();
        let expected = match group_by {
            "day" => json!([
                "2025-11-30",
                "2025-12-01",
                "2025-12-15",
                "2026-01-31",
                "2026-02-01",
                "2026-03-03"
            ]),
            "store" => json!([null, "s1", "s2"]),
            _ => json!(["b2c", "c2b", "reversal", "stk"]),
        };
        assert_eq!(Value::from(keys), expected, "{months}");
    }

    // A range inside the data: December 2025 and January 2026 only.
    let inner = report_at(&app, &owner, "group_by=store&from=2025-12-01&to=2026-01-31").await;
    assert_eq!(inner["totals"]["count"], 4, "{inner}");
    assert_eq!(inner["totals"]["amount_completed"], 800, "{inner}");
    let s1 = inner["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == "s1"))
        .unwrap_or_else(|| panic!("no s1 group: {inner}"));
    assert_eq!(
        (s1["count"].clone(), s1["failed"].clone()),
        (json!(3), json!(2)),
        "{inner}"
    );
}

async fn report_at(app: &TestApp, session: &Session, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/reports?{query}"), &session.auth())
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn epoch_ms(at: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| -> i64 {
        at.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {at}"))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}
