//! Payments whose callback never came: settled by the reconcile job, by
//! `malipo mpesa reconcile`, or kept pending (never pushed twice) across a
//! crash.

use std::collections::BTreeSet;

use super::*;

/// Pushes while the emulator suppresses callbacks; answers the payment once
/// the emulator completed it without calling back. With `check_pending`,
/// also checks that it stays pending (not when a fast reconcile job runs).
async fn push_without_callback(app: &TestApp, owner: &Session, check_pending: bool) -> Value {
    set_faults(app, json!({"no_callback": true})).await;
    let txn = push(app, &owner.auth(), payment("0712345678", json!(10))).await;
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let callbacks = wait_for_callbacks(app, checkout, 1).await;
    set_faults(app, json!({})).await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["delivery"], "suppressed", "{callbacks:?}");

    // Nothing reached the host: the payment stays pending.
    assert!(
        inbox(app)
            .iter()
            .all(|row| row.tenant_id != owner.tenant_id),
        "no callback stored"
    );
    if check_pending {
        let id = txn["id"].as_str().expect("id");
        for _ in 0..5 {
            sleep().await;
        }
        let still = get_txn(app, &owner.auth(), id).await;
        assert_eq!(still["status"], "pending", "{still}");
    }
    txn
}

#[tokio::test]
async fn a_payment_without_callback_is_completed_by_the_reconcile_job() {
    let app = TestApp::spawn_with(
        Options::daraja_sim()
            .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
            .with_env("MALIPO_RECONCILE_AFTER_SECS", "0"),
    )
    .await;
    let owner = app.register("Mpesa Job").await;
    configure(&app, &owner, credentials()).await;
    let txn = push_without_callback(&app, &owner, false).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");

    let done = wait_final(&app, &owner.auth(), id).await;
    assert_settled_by_query(&done);
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    assert!(
        queries
            .iter()
            .any(|q| q["body"]["CheckoutRequestID"] == checkout),
        "the job asked the emulator: {queries:?}"
    );
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
    let job_runs = || -> i64 {
        open(&app.tenant_file(&owner.tenant_id))
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE channel = 'job' AND actor_type = 'system' \
                 AND operation = 'payments.reconcile' AND outcome = 'success'",
                [],
                |r| r.get(0),
            )
            .expect("audit query")
    };
    let runs = job_runs();
    assert!(runs >= 1, "the run that settled the payment is audited");
    // Later runs change nothing, and only a run that changed something is
    // audited (idle rounds do not bury people's actions): the job keeps
    // running (its plugin calls count in /metrics) and the audit log stays.
    let calls = app.plugin_calls("payments.reconcile").await;
    app.wait_for_plugin_calls("payments.reconcile", calls, 1)
        .await;
    assert!(
        app.plugin_calls("payments.reconcile").await > calls,
        "the job kept running"
    );
    assert_eq!(job_runs(), runs, "idle runs are not audited");
    assert_eq!(get_txn(&app, &owner.auth(), id).await, done);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

/// The CLI runs in its own process, which has no emulator: the tenant
/// points at the running server's emulator explicitly (environment
/// `custom`), and the operator allows that host for the CLI.
#[tokio::test]
async fn a_payment_without_callback_is_completed_by_the_reconcile_cli() {
    let app = spawn().await;
    let owner = app.register("Mpesa Cli").await;
    configure(&app, &owner, custom_credentials(emulator(&app))).await;
    let txn = push_without_callback(&app, &owner, true).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");

    let host = emulator(&app).trim_start_matches("http://").to_string();
    let output = reconcile_cli(&app, &[("MALIPO_OUTBOUND_ALLOW", host.as_str())]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "reconcile failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");

    // Settled by the CLI while the server kept running (SQLite WAL).
    let done = get_txn(&app, &owner.auth(), id).await;
    assert_settled_by_query(&done);
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    assert_eq!(
        queries
            .iter()
            .filter(|q| q["body"]["CheckoutRequestID"] == checkout)
            .count(),
        1,
        "{queries:?}"
    );
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "reconciling never pushes again"
    );

    // A second run finds nothing pending and changes nothing.
    let again = reconcile_cli(&app, &[("MALIPO_OUTBOUND_ALLOW", host.as_str())]).await;
    assert!(again.status.success());
    assert_eq!(emu_requests_to(&app, STK_QUERY_PATH).await.len(), 1);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

/// An operator running `malipo mpesa reconcile` from cron must learn when
/// Daraja could not be asked: here Daraja answers every query with its
/// quota error (the CLI reaches the running server's emulator, which it
/// learns from the data directory), so the payment stays pending.
#[tokio::test]
async fn the_reconcile_cli_does_not_report_success_when_daraja_was_not_reached() {
    let app = spawn().await;
    let owner = app.register("Mpesa Cli Unreached").await;
    configure(&app, &owner, custom_credentials(emulator(&app))).await;
    let txn = push_without_callback(&app, &owner, true).await;
    let id = txn["id"].as_str().expect("id");

    set_faults(&app, json!({"quota_violation": true})).await;
    let output = reconcile_cli(&app, &[]).await;
    set_faults(&app, json!({})).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        get_txn(&app, &owner.auth(), id).await["status"],
        "pending",
        "nothing answered, nothing settled"
    );
    assert!(
        !output.status.success() || stdout.contains(id),
        "the CLI claimed success although no payment could be queried: exit {:?}, stdout {stdout:?}",
        output.status.code()
    );
}
// ---------------------------------------------------------------------------
// Crash safety

#[tokio::test]
async fn payments_survive_a_crash_and_are_never_pushed_twice() {
    // Callbacks held back far beyond the test: all pushes stay pending.
    let first = TestApp::spawn_with(Options::daraja_sim_delay(600_000)).await;
    let owner = first.register("Mpesa Crash").await;
    configure(&first, &owner, credentials()).await;
    let mut pushed = Vec::new();
    for amount in [10, 11, 12, 13, 14] {
        let txn = push(&first, &owner.auth(), payment("0712345678", json!(amount))).await;
        pushed.push((
            txn["id"].as_str().expect("id").to_string(),
            txn["checkout_request_id"]
                .as_str()
                .expect("checkout")
                .to_string(),
        ));
    }
    assert_eq!(emu_requests_to(&first, STK_PUSH_PATH).await.len(), 5);

    // SIGKILL, then a new server (with a new, empty emulator) on the same data.
    let temp = first.stop().expect("the data directory");
    let options = Options::daraja_sim()
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
        .with_env("MALIPO_RECONCILE_AFTER_SECS", "0");
    let app = TestApp::start(temp.path(), &options).await;
    let (status, login) = app.login(&owner.email, crate::helpers::PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let owner = Session {
        default_store: owner.default_store.clone(),
        ..Session::from_auth_response(&login, &owner.email)
    };

    // Every payment survived, once.
    let listed = list(&app, &owner.auth()).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    let ids: BTreeSet<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids.len(), 5);
    for (id, _) in &pushed {
        assert!(ids.contains(id.as_str()), "{id} survived");
    }

    // The reconcile job asks the new emulator about each one; it knows none
    // of them ("The transaction does not Exist", 500.001.1001), which the
    // plugin reads as "no final answer yet": they stay pending (until they
    // are 24 hours old) rather than being guessed at.
    for _ in 0..TRIES {
        let asked: BTreeSet<String> = emu_requests_to(&app, STK_QUERY_PATH)
            .await
            .iter()
            .filter_map(|q| q["body"]["CheckoutRequestID"].as_str().map(str::to_string))
            .collect();
        if pushed.iter().all(|(_, checkout)| asked.contains(checkout)) {
            break;
        }
        sleep().await;
    }
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    for (_, checkout) in &pushed {
        let answer = queries
            .iter()
            .find(|q| q["body"]["CheckoutRequestID"] == checkout.as_str())
            .unwrap_or_else(|| panic!("{checkout} was never queried: {queries:?}"));
        assert_eq!(answer["status"], 500, "{answer}");
    }
    for (id, _) in &pushed {
        let txn = get_txn(&app, &owner.auth(), id).await;
        assert_eq!(txn["status"], "pending", "{txn}");
    }
    assert!(
        emu_requests_to(&app, STK_PUSH_PATH).await.is_empty(),
        "nothing was pushed again"
    );
    let conn = open(&app.tenant_file(&owner.tenant_id));
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT checkout_request_id) FROM mpesa_transactions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((rows, distinct), (5, 5), "one row per push");
    assert_eq!(outbox_count(&app, &owner.tenant_id), 0, "no payment event");
    let totals = report_totals(&app, &owner).await;
    assert_eq!(
        (totals["count"].clone(), totals["pending"].clone()),
        (json!(5), json!(5))
    );

    // A manual query answers the same and changes nothing.
    let (status, queried) = app
        .post(
            &format!("/api/v1/mpesa/transactions/{}/query", pushed[0].0),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{queried}");
    assert_eq!(queried["query"]["answered"], false, "{queried}");
    assert_eq!(queried["query"]["applied"], false, "{queried}");
    assert_eq!(queried["transaction"]["status"], "pending", "{queried}");
    drop(app);
    drop(temp);
}
