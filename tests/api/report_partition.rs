//! Reports keep money in and money out apart, and their counts are a
//! partition: `by_status` puts each transaction in exactly one column and
//! sums to `count`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn reports_separate_money_in_and_out_and_partition_the_counts() {
    let app = TestApp::spawn().await;
    let owner = app.register("Partition Ltd").await;
    // (kind, status, amount)
    let rows = [
        ("stk", "completed", 100),
        ("stk", "cancelled", 200),
        ("stk", "timeout", 300),
        ("stk", "failed", 50),
        ("c2b", "completed", 500),
        ("stk", "reversed", 70),
        ("stk", "pending", 10),
        ("b2c", "completed", 300),
        ("b2c", "failed", 40),
        ("reversal", "completed", 70),
    ];
    let conn = rusqlite::Connection::open(app.tenant_file(&owner.tenant_id)).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy");
    for (index, (kind, status, amount)) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO mpesa_transactions (id, kind, status, store_id, amount, created_at, created_ms, updated_at) \
             VALUES (?1, ?2, ?3, NULL, ?4, '2026-06-01T00:00:00.000Z', ?5, '2026-06-01T00:00:00.000Z')",
            rusqlite::params![format!("p{index}"), kind, status, amount, 1_780_272_000_000_i64 + index as i64],
        )
        .expect("insert transaction");
    }
    drop(conn);

    let (status, report) = app
        .get("/api/v1/mpesa/reports?group_by=kind", &owner.auth())
        .await;
    assert_eq!(status, 200, "{report}");
    let totals = &report["totals"];
    assert_eq!(totals["count"], 10, "{report}");
    assert_eq!(
        totals["by_status"],
        json!({"pending": 1, "completed": 4, "failed": 2, "cancelled": 1, "timeout": 1, "reversed": 1}),
        "{report}"
    );
    let sum: i64 = totals["by_status"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_i64()).sum())
        .unwrap_or(0);
    assert_eq!(sum, 10, "each transaction in exactly one column: {report}");
    // Payments in (completed, and later reversed), payouts and reversals out.
    assert_eq!(
        totals["money_in"],
        json!({"count": 7, "amount": 670}),
        "{report}"
    );
    assert_eq!(
        totals["money_out"],
        json!({"count": 3, "amount": 370}),
        "{report}"
    );
    assert_eq!(totals["net_amount"], 300, "{report}");
    // Every group is a partition too.
    for group in report["groups"].as_array().cloned().unwrap_or_default() {
        let sum: i64 = group["by_status"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_i64()).sum())
            .unwrap_or(-1);
        assert_eq!(json!(sum), group["count"], "{group}");
        assert_eq!(
            group["money_in"]["count"].as_i64().unwrap_or(-1)
                + group["money_out"]["count"].as_i64().unwrap_or(-1),
            group["count"].as_i64().unwrap_or(-2),
            "{group}"
        );
    }
}
