//! Issue 13, operator commands that could destroy without a word: the data
//! directory's lock held by `serve` (a second server and `restore --force`
//! refuse), `tenant delete --now` asks (or needs `--yes`), and the data
//! directory is the owner's only (0700 directories, 0600 files).

use std::process::Stdio;

use serde_json::json;

use crate::helpers::TestApp;
use crate::operator::{json_of, malipo_cli};

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let app = TestApp::spawn().await;
    let output = crate::helpers::malipo_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&app.data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run a second malipo serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the second server must not run: {stderr}"
    );
    assert!(
        stderr.contains("is serving the data directory"),
        "it says why: {stderr}"
    );
    // The first still answers.
    assert_eq!(app.get("/health", &crate::helpers::Auth::None).await.0, 200);
}

#[tokio::test]
async fn restore_force_refuses_while_a_server_serves_the_directory() {
    let app = TestApp::spawn().await;
    let backups = tempfile::tempdir().expect("temp");
    let to = backups.path().to_str().expect("utf-8");
    let output = malipo_cli(&app.data_dir, &["backup", "--to", to], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = malipo_cli(&app.data_dir, &["restore", "--from", to, "--force"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "restore ran under a live server: {stderr}"
    );
    assert!(stderr.contains("is serving the data directory"), "{stderr}");
    // Once the server stops, it runs.
    let dir = app.data_dir.clone();
    let _keep = app.stop();
    let output = malipo_cli(&dir, &["restore", "--from", to, "--force"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn deleting_an_active_tenant_now_needs_confirmation() {
    let app = TestApp::spawn().await;
    let shop = app.register("Careful Shop").await;
    let output = malipo_cli(
        &app.data_dir,
        &["tenant", "delete", &shop.tenant_id, "--now", "--json"],
        &[],
    );
    assert!(!output.status.success(), "purged without a word");
    let answer = json_of(&output);
    assert_eq!(
        answer["error"]["code"],
        json!("confirmation_required"),
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Careful Shop") && message.contains("--yes"),
        "it says what would go and how to confirm: {message}"
    );
    assert!(
        app.tenant_file(&shop.tenant_id).exists(),
        "nothing was deleted"
    );
    assert_eq!(app.get("/api/v1/stores", &shop.auth()).await.0, 200);

    let output = malipo_cli(
        &app.data_dir,
        &[
            "tenant",
            "delete",
            &shop.tenant_id,
            "--now",
            "--yes",
            "--json",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(json_of(&output)["deleted"], json!(true));
    assert!(!app.tenant_file(&shop.tenant_id).exists());
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let shop = app.register("Private Shop").await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&app.data_dir), 0o700, "data directory");
    assert_eq!(mode(&app.data_dir.join("tenants")), 0o700, "tenants/");
    assert_eq!(mode(&app.data_dir.join("control.db")), 0o600, "control.db");
    assert_eq!(
        mode(&app.tenant_file(&shop.tenant_id)),
        0o600,
        "tenant file"
    );
    assert_eq!(mode(&app.data_dir.join("jwt.key")), 0o600, "jwt.key");
}
