//! A tenant file created at an older schema is migrated when next opened
//! (by the server, or by `malipo migrate`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{Auth, Options, PASSWORD, Session, TEST_GUESTS_DIR, TestApp, open};

/// refinery's default history table, used by the host's tenant migrations.
const HISTORY: &str = "refinery_schema_history";
/// What the migrations after V1 create: `V2__indexes.sql`'s indexes and
/// `V3__approvals.sql`'s index (and table), `V4__event_deliveries.sql`'s
/// index (and table), `V5__branding.sql`'s table, and `V6__audit_chain.sql`'s
/// index (and columns). `V7__settings.sql` adds a table and a column, no index.
const LATER_INDEXES: [&str; 5] = [
    "audit_log_by_at",
    "store_members_by_user",
    "approvals_by_status",
    "outbox_undelivered",
    "audit_log_by_seq",
];
/// The history of a file at the newest schema.
const LATEST: [i64; 9] = [1, 2, 3, 4, 5, 6, 7, 9, 10];

fn tenant_file(dir: &Path, tenant_id: &str) -> PathBuf {
    dir.join("tenants").join(format!("{tenant_id}.db"))
}

/// Whether the file has an index of that name.
fn has_index(conn: &rusqlite::Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [name],
        |row| row.get::<_, i64>(0),
    )
    .expect("query sqlite_master")
        > 0
}

/// The versions recorded in the host's history table.
fn versions(conn: &rusqlite::Connection) -> Vec<i64> {
    conn.prepare(&format!("SELECT version FROM {HISTORY} ORDER BY version"))
        .expect("prepare history query")
        .query_map([], |row| row.get(0))
        .expect("query history")
        .collect::<Result<_, _>>()
        .expect("read history")
}

/// The schema facts the tests compare: which later indexes exist, and the history.
fn schema_state(path: &Path) -> (Vec<bool>, Vec<i64>) {
    let conn = open(path);
    (
        LATER_INDEXES
            .iter()
            .map(|name| has_index(&conn, name))
            .collect(),
        versions(&conn),
    )
}

/// Takes a (stopped server's) tenant file back to schema V1.
fn downgrade_to_v1(path: &Path) {
    let conn = open(path);
    // The host's history table is refinery's default one (plugins have their own).
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%schema_history' ORDER BY name")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("tables");
    assert!(
        tables.iter().any(|t| t == HISTORY),
        "no {HISTORY} among {tables:?}"
    );
    assert_eq!(
        versions(&conn),
        LATEST.to_vec(),
        "a new tenant file is at the newest schema"
    );
    conn.execute_batch(&format!(
        "BEGIN;
         DROP INDEX audit_log_by_at;
         DROP INDEX store_members_by_user;
         DROP TABLE approvals;
         DROP INDEX outbox_undelivered;
         DROP TABLE event_deliveries;
         DROP TABLE branding;
         DROP TABLE settings;
         DROP INDEX audit_log_by_seq;
         ALTER TABLE audit_log DROP COLUMN seq;
         ALTER TABLE audit_log DROP COLUMN prev_hash;
         ALTER TABLE audit_log DROP COLUMN hash;
         DELETE FROM host_meta WHERE key LIKE 'audit_%';
         DELETE FROM {HISTORY} WHERE version >= 2;
         COMMIT;"
    ))
    .expect("downgrade");
    drop(conn);
    assert_eq!(
        schema_state(path),
        (vec![false; 5], vec![1]),
        "the file is back at V1"
    );
}

/// Registers a tenant on a server over `dir`, then stops the server.
async fn tenant_then_stop(dir: &Path, options: &Options) -> (Session, String) {
    let app = TestApp::start(dir, options).await;
    let owner = app.register("Migrated Org").await;
    let store = owner.default_store.clone().expect("a default store");
    assert!(app.tenant_file(&owner.tenant_id).is_file());
    assert_eq!(
        schema_state(&app.tenant_file(&owner.tenant_id)),
        (vec![true; 5], LATEST.to_vec())
    );
    app.stop();
    (owner, store)
}

/// Logs in again (the old server's sessions are in control.db, but a fresh
/// login is what a returning user does) and lists the stores.
async fn log_in_and_list_stores(app: &TestApp, owner: &Session) -> (serde_json::Value, Auth) {
    let (status, body) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "login after restart: {body}");
    assert_eq!(
        body["tenant"]["id"],
        serde_json::json!(owner.tenant_id),
        "{body}"
    );
    let token = body["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let auth = Auth::Bearer(token);
    let (status, stores) = app.get("/api/v1/stores", &auth).await;
    assert_eq!(status, 200, "stores after restart: {stores}");
    (stores, auth)
}

#[tokio::test]
async fn a_tenant_file_at_an_older_schema_is_migrated_when_next_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (owner, store) = tenant_then_stop(dir.path(), &Options::default()).await;
    let file = tenant_file(dir.path(), &owner.tenant_id);
    downgrade_to_v1(&file);

    let app = TestApp::start(dir.path(), &Options::default()).await;
    let (stores, auth) = log_in_and_list_stores(&app, &owner).await;
    let ids: Vec<&str> = stores["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![store.as_str()],
        "the tenant's data survived: {stores}"
    );

    assert_eq!(
        schema_state(&file),
        (vec![true; 5], LATEST.to_vec()),
        "the file was brought back to the newest schema"
    );
    // And it keeps working: a write that the audit index covers.
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &auth,
            serde_json::json!({"name": "After Migration"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.stop();
}

#[tokio::test]
async fn malipo_migrate_migrates_a_downgraded_file_without_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (owner, _store) = tenant_then_stop(dir.path(), &Options::default()).await;
    let file = tenant_file(dir.path(), &owner.tenant_id);
    downgrade_to_v1(&file);

    let mut command = crate::helpers::malipo_command();
    command.arg("migrate").arg("--data-dir").arg(dir.path());
    // It must finish by itself (a server would never return).
    let run = tokio::task::spawn_blocking(move || command.output());
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("`malipo migrate` did not finish: is it serving?")
        .expect("join")
        .expect("run malipo migrate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "malipo migrate failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(!stdout.contains("listening"), "migrate served: {stdout}");
    assert!(
        stdout.contains("migrated 1 of 1 tenant file(s); 0 failed"),
        "the summary names one migrated tenant file and no failure: {stdout:?}"
    );

    assert_eq!(
        schema_state(&file),
        (vec![true; 5], LATEST.to_vec()),
        "the file was brought back to the newest schema"
    );
    // The migrated data directory serves as before.
    let app = TestApp::start(dir.path(), &Options::default()).await;
    log_in_and_list_stores(&app, &owner).await;
    app.stop();
}

#[tokio::test]
async fn malipo_migrate_reports_a_file_it_cannot_migrate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (owner, _store) = tenant_then_stop(dir.path(), &Options::default()).await;
    // A second "tenant file" that is not a database.
    let bogus = uuid::Uuid::new_v4().to_string();
    std::fs::write(
        tenant_file(dir.path(), &bogus),
        b"this is not a SQLite database, not even close .....",
    )
    .expect("write bogus file");

    let output = crate::helpers::malipo_command()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run malipo migrate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a broken file must make migrate fail\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("migrated 1 of 2 tenant file(s); 1 failed"),
        "summary: {stdout:?}"
    );
    assert!(
        stderr.contains(&bogus),
        "the broken tenant is named: {stderr}"
    );
    // The good file is still fine.
    assert_eq!(
        schema_state(&tenant_file(dir.path(), &owner.tenant_id)),
        (vec![true; 5], LATEST.to_vec())
    );
}

#[tokio::test]
async fn a_plugin_installed_later_gets_its_tables_in_existing_tenant_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    // First without the sandbox plugin.
    let (owner, _store) = tenant_then_stop(dir.path(), &Options::default()).await;
    let file = tenant_file(dir.path(), &owner.tenant_id);
    let has_table = |name: &str| -> bool {
        open(&file)
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |row| row.get::<_, i64>(0),
            )
            .expect("query")
            > 0
    };
    assert!(!has_table("sandbox_items"));

    // Install it and restart.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(
        Path::new(TEST_GUESTS_DIR).join("malipo_test_sandbox.wasm"),
        plugins.join("malipo_test_sandbox.wasm"),
    )
    .expect("copy sandbox plugin");
    let app = TestApp::start(dir.path(), &Options::default()).await;
    let (status, body) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let auth = Auth::Bearer(body["access_token"].as_str().expect("token").to_string());
    let (status, body) = app
        .post(
            "/api/v1/sandbox/items",
            &auth,
            serde_json::json!({"note": "after install"}),
        )
        .await;
    assert_eq!(
        status, 201,
        "the existing Owner may use the new plugin: {body}"
    );
    let (status, body) = app.get("/api/v1/sandbox/items", &auth).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"][0]["note"],
        serde_json::json!("after install"),
        "{body}"
    );
    assert!(has_table("sandbox_items") && has_table("sandbox_schema_history"));
    app.stop();
}
