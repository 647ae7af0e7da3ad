//! Graceful shutdown: on SIGTERM the server stops accepting, answers the
//! requests already in flight, and closes every tenant file cleanly (its
//! write-ahead log folded back in) before exiting successfully.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, code};

fn wal_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", file.display()))
}

fn wal_len(file: &Path) -> u64 {
    std::fs::metadata(wal_of(file)).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_in_flight_requests_and_closes_tenant_files_cleanly() {
    let app = TestApp::spawn_with(
        Options {
            sandbox: true,
            ..Options::default()
        }
        .with_env("MALIPO_PLUGIN_DEADLINE_MS", "1500"),
    )
    .await;
    let owner = app.register("Shutdown Traders").await;
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &owner.auth(),
            json!({"name": "Night Till"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let tenant_file = app.tenant_file(&owner.tenant_id);
    let control_file = app.data_dir.join("control.db");
    assert!(
        wal_len(&tenant_file) > 0 && wal_len(&control_file) > 0,
        "the writes should sit in the write-ahead logs before shutdown"
    );

    // A call that runs until its CPU deadline, in flight when SIGTERM comes.
    let client = app.client.clone();
    let url = format!("{}/api/v1/sandbox/spin", app.base);
    let token = owner.access_token.clone();
    let in_flight = tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(token)
            .json(&json!({"note": "still running at shutdown"}))
            .send()
            .await
            .expect("the in-flight request is answered, not cut off");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON answer");
        (status, body)
    });
    // SIGTERM only once the plugin is executing the call.
    app.wait_until_running("sandbox.spin").await;
    let base = app.base.clone();
    let (exit, data_dir) = tokio::task::spawn_blocking(move || app.terminate())
        .await
        .expect("join");

    let (status, body) = in_flight.await.expect("join");
    assert_eq!((status, code(&body)), (504, "plugin_timeout"), "{body}");
    assert!(exit.success(), "malipo exited with {exit:?}");
    let refused = reqwest::get(format!("{base}/health")).await;
    assert!(refused.is_err(), "still accepting after shutdown");

    for file in [&tenant_file, &control_file] {
        assert_eq!(
            wal_len(file),
            0,
            "{} left a write-ahead log",
            file.display()
        );
        let check = Command::new("sqlite3")
            .arg(file)
            .arg("PRAGMA integrity_check;")
            .output()
            .expect("run sqlite3");
        assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    }
    let stores = Command::new("sqlite3")
        .arg(&tenant_file)
        .arg("SELECT name FROM stores ORDER BY name;")
        .output()
        .expect("run sqlite3");
    assert!(
        String::from_utf8_lossy(&stores.stdout).contains("Night Till"),
        "{stores:?}"
    );
    drop(data_dir);
}
