//! Deleting a tenant: scheduled with a grace period (the tenant stops
//! working at once), cancelled during it, or purged — its file and every
//! control.db row naming it, the platform audit excepted — by the REST
//! endpoint with no grace period, by the sweeper when the grace period
//! ends, or by `malipo tenant delete --now`. Other tenants are untouched.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};
use crate::operator::cli_ok;

/// Every (table, column) of control.db holding the text `needle`, with how
/// many rows: a scan of every column of every table, no list to keep.
fn rows_naming(dir: &Path, needle: &str) -> Vec<(String, String, i64)> {
    let conn = rusqlite::Connection::open(dir.join("control.db")).expect("open control.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("tables");
    let mut found = Vec::new();
    for table in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("columns");
        for column in columns {
            let count: i64 = conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), ?1) > 0"
                    ),
                    [needle],
                    |row| row.get(0),
                )
                .expect("count");
            if count > 0 {
                found.push((table.clone(), column, count));
            }
        }
    }
    found
}

fn platform_operations(dir: &Path, tenant: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("control.db")).expect("open control.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    conn.prepare("SELECT operation FROM platform_audit WHERE target = ?1 ORDER BY id")
        .expect("prepare")
        .query_map([tenant], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// A tenant with rows in several control.db tables: sessions (the owner
/// logged in), an API key, an invitation.
async fn busy_tenant(app: &TestApp, name: &str) -> Session {
    let owner = app.register(name).await;
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "ci", "permissions": ["stores.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let (status, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    assert_eq!(status, 200, "{roles}");
    let role = roles["roles"][0]["id"]
        .as_str()
        .expect("a role")
        .to_string();
    let (status, invitation) = app
        .post(
            "/api/v1/invitations",
            &owner.auth(),
            json!({"email": format!("{}@invitee.example", uuid::Uuid::new_v4().simple()), "role_id": role}),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    owner
}

/// The tenant is gone everywhere but the platform audit, its owner's
/// account stays, and `other` works as before.
async fn assert_purged(app: &TestApp, admin: &Auth, gone: &Session, other: &Session) {
    let file = app.tenant_file(&gone.tenant_id);
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        assert!(!Path::new(&path).exists(), "{path} is removed");
    }
    let left = rows_naming(&app.data_dir, &gone.tenant_id);
    assert!(
        left.iter().all(|(table, _, _)| table == "platform_audit"),
        "rows still name the tenant outside the platform audit: {left:?}"
    );
    let operations = platform_operations(&app.data_dir, &gone.tenant_id);
    for operation in [
        "tenant.created",
        "tenant.deletion_scheduled",
        "tenant.deleted",
    ] {
        assert!(
            operations.iter().any(|o| o == operation),
            "the platform audit keeps {operation}: {operations:?}"
        );
    }
    // The owner is a person and keeps the account, in no organization now.
    assert!(
        !rows_naming(&app.data_dir, &gone.email).is_empty(),
        "the owner's account stays"
    );
    let (status, body) = app.login(&gone.email, PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.get("/api/v1/stores", &gone.auth()).await;
    assert_eq!(status, 401, "{body}");

    let (status, tenants) = app.get("/api/v1/admin/tenants", admin).await;
    assert_eq!(status, 200, "{tenants}");
    let ids: Vec<&str> = tenants["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(!ids.contains(&gone.tenant_id.as_str()), "{tenants}");
    assert!(ids.contains(&other.tenant_id.as_str()), "{tenants}");

    assert!(app.tenant_file(&other.tenant_id).is_file());
    let (status, body) = app.get("/api/v1/stores", &other.auth()).await;
    assert_eq!(status, 200, "the other tenant works: {body}");
    let (status, body) = app.login(&other.email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_scheduled_deletion_stops_the_tenant_until_it_is_cancelled() {
    let app = TestApp::spawn().await;
    let admin = app.super_admin().await;
    let doomed = app.register("Doomed Org").await;
    let other = app.register("Other Org").await;
    let path = format!("/api/v1/admin/tenants/{}", doomed.tenant_id);

    let (status, body) = app.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(false), "{body}");
    let due = body["deletion_due_at"]
        .as_str()
        .expect("a due time")
        .to_string();
    let due_at = time::OffsetDateTime::parse(&due, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let days = (due_at - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&days), "30 days by default: {due}");

    // Its members are refused at once, with a code that says why.
    let (status, body) = app.get("/api/v1/stores", &doomed.auth()).await;
    assert_eq!(
        (status, code(&body)),
        (403, "tenant_pending_deletion"),
        "{body}"
    );
    let (status, body) = app.login(&doomed.email, PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (403, "tenant_pending_deletion"),
        "{body}"
    );
    // Other tenants are not.
    let (status, body) = app.get("/api/v1/stores", &other.auth()).await;
    assert_eq!(status, 200, "{body}");

    // The admin list says when.
    let (status, tenants) = app.get("/api/v1/admin/tenants", &admin).await;
    assert_eq!(status, 200, "{tenants}");
    let row = |id: &str| {
        tenants["tenants"]
            .as_array()
            .and_then(|rows| rows.iter().find(|t| t["id"] == json!(id)).cloned())
            .unwrap_or_else(|| panic!("{id} listed: {tenants}"))
    };
    assert_eq!(row(&doomed.tenant_id)["deletion_due_at"], json!(due));
    assert_eq!(row(&other.tenant_id)["deletion_due_at"], json!(null));
    // A reactivation does not sneak past the deletion.
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    // Scheduling again keeps the earlier time.
    let (status, body) = app.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deletion_due_at"], json!(due));
    // Only a super-admin may delete.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/tenants/{}", other.tenant_id),
            &other.auth(),
            None,
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = app
        .post(&format!("{path}/cancel-deletion"), &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("active"), "{body}");
    assert_eq!(body["deletion_due_at"], json!(null), "{body}");
    let (status, body) = app.get("/api/v1/stores", &doomed.auth()).await;
    assert_eq!(status, 200, "the tenant works again: {body}");
    let (status, body) = app
        .post(&format!("{path}/cancel-deletion"), &admin, json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (409, "conflict"),
        "nothing to cancel: {body}"
    );
    assert!(app.tenant_file(&doomed.tenant_id).is_file());

    // A suspended tenant whose deletion is cancelled stays suspended.
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(&format!("{path}/cancel-deletion"), &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("suspended"), "{body}");

    let operations = platform_operations(&app.data_dir, &doomed.tenant_id);
    for operation in ["tenant.deletion_scheduled", "tenant.deletion_cancelled"] {
        assert!(operations.iter().any(|o| o == operation), "{operations:?}");
    }
    let (status, body) = app.get("/api/v1/admin/audit/verify", &admin).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn with_no_grace_period_a_deleted_tenant_is_purged_at_once() {
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_TENANT_DELETION_GRACE_SECS", "0"))
            .await;
    let admin = app.super_admin().await;
    let doomed = busy_tenant(&app, "Purged Org").await;
    let other = busy_tenant(&app, "Kept Org").await;
    assert!(
        !rows_naming(&app.data_dir, &doomed.tenant_id)
            .iter()
            .all(|(table, _, _)| table == "platform_audit")
    );

    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/tenants/{}", doomed.tenant_id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(true), "{body}");
    for table in [
        "tenants",
        "memberships",
        "api_keys",
        "invitations",
        "sessions",
    ] {
        assert!(
            body["control_rows_deleted"][table]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{table} rows were deleted: {body}"
        );
    }
    assert_purged(&app, &admin, &doomed, &other).await;
    let (status, body) = app.get("/api/v1/admin/audit/verify", &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ok"],
        json!(true),
        "the platform chain is whole: {body}"
    );
}

#[tokio::test]
async fn the_sweeper_purges_a_tenant_when_its_grace_period_ends() {
    let app = TestApp::spawn_with(
        Options::default()
            .with_env("MALIPO_TENANT_DELETION_GRACE_SECS", "1")
            .with_env("MALIPO_TENANT_DELETION_SWEEP_SECS", "1"),
    )
    .await;
    let admin = app.super_admin().await;
    let doomed = busy_tenant(&app, "Swept Org").await;
    let other = app.register("Stays Org").await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/tenants/{}", doomed.tenant_id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["deleted"],
        json!(false),
        "scheduled, not purged: {body}"
    );
    let mut purged = false;
    for _ in 0..600 {
        if platform_operations(&app.data_dir, &doomed.tenant_id)
            .iter()
            .any(|o| o == "tenant.deleted")
        {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "the sweeper never purged the tenant");
    assert_purged(&app, &admin, &doomed, &other).await;
}

#[tokio::test]
async fn the_cli_deletes_a_tenant_now_or_after_the_grace_period() {
    let app = TestApp::spawn().await;
    let admin = app.super_admin().await;
    let doomed = busy_tenant(&app, "Cli Doomed").await;
    let other = app.register("Cli Kept").await;

    // Without --now: scheduled, the tenant stops at once.
    let scheduled = cli_ok(
        &app.data_dir,
        &["tenant", "delete", &doomed.tenant_id, "--json"],
        &[],
    );
    assert_eq!(scheduled["deleted"], json!(false), "{scheduled}");
    assert!(scheduled["deletion_due_at"].is_string(), "{scheduled}");
    let (status, body) = app.get("/api/v1/stores", &doomed.auth()).await;
    assert_eq!(
        (status, code(&body)),
        (403, "tenant_pending_deletion"),
        "{body}"
    );
    let pending = cli_ok(
        &app.data_dir,
        &["tenant", "list", "--status", "pending-deletion", "--json"],
        &[],
    );
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["id"], json!(doomed.tenant_id));

    let deleted = cli_ok(
        &app.data_dir,
        &["tenant", "delete", &doomed.tenant_id, "--now", "--json"],
        &[],
    );
    assert_eq!(deleted["deleted"], json!(true), "{deleted}");
    assert_purged(&app, &admin, &doomed, &other).await;
    assert!(
        platform_operations(&app.data_dir, &doomed.tenant_id)
            .iter()
            .any(|o| o == "tenant.deleted"),
    );
    // Again: it is not there any more.
    let output = crate::operator::malipo_cli(
        &app.data_dir,
        &["tenant", "delete", &doomed.tenant_id, "--now", "--json"],
        &[],
    );
    assert!(!output.status.success());
    assert_eq!(code(&crate::operator::json_of(&output)), "not_found");
}
