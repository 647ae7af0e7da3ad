//! The tamper-evident audit log: REST mutations become hash-chained rows;
//! `GET /audit` filters, pages and exports them; `GET /audit/verify` finds
//! an edited row, a removed row and removed last rows in the tenant's file
//! (edited with the server stopped); the platform audit is chained the
//! same way for super-admins; tenants never see each other's rows.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// No job round during a test: every row is one the test caused.
fn options() -> Options {
    Options::default().with_env("MALIPO_JOB_INTERVAL_SECS", "3600")
}

/// The documented hash of a listed tenant row.
fn tenant_hash(entry: &Value) -> String {
    let fields = [
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
    ];
    documented_hash("malipo.audit_log.v1", entry, &fields)
}

fn documented_hash(tag: &str, entry: &Value, fields: &[&str]) -> String {
    let mut items = vec![json!(tag), entry["seq"].clone()];
    items.extend(fields.iter().map(|f| entry[*f].clone()));
    items.push(entry["prev_hash"].clone());
    hex::encode(Sha256::digest(Value::Array(items).to_string().as_bytes()))
}

fn sql(file: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(file).expect("open database");
    conn.execute_batch(statement).expect("edit database");
}

async fn create_store(app: &TestApp, auth: &Auth, name: &str) -> Value {
    let (status, body) = app
        .post("/api/v1/stores", auth, json!({"name": name}))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Every row of the log, following the cursors, newest first.
async fn all_entries(app: &TestApp, auth: &Auth, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?{query}&cursor={c}"),
            None => format!("/api/v1/audit?{query}"),
        };
        let (status, page) = app.get(&path, auth).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return entries,
        }
    }
    panic!("the cursors never ended");
}

fn seqs(entries: &[Value]) -> Vec<i64> {
    entries
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect()
}

async fn verify(app: &TestApp, auth: &Auth) -> Value {
    let (status, body) = app.get("/api/v1/audit/verify", auth).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Restarts the server on the same data directory after `edit` (run with
/// the server stopped) and logs the owner in again.
async fn edit_offline(app: TestApp, owner: &Session, edit: impl FnOnce(&Path)) -> (TestApp, Auth) {
    let dir = app.data_dir.clone();
    app.stop();
    edit(&dir);
    let app = TestApp::start(&dir, &options()).await;
    let (status, body) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    (app, Auth::Bearer(token))
}

/// A server on a data directory that outlives its restarts.
async fn serve() -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = TestApp::start(dir.path(), &options()).await;
    (dir, app)
}

#[tokio::test]
async fn rest_mutations_are_chained_and_verify_finds_edits_gaps_and_truncation() {
    let (_dir, app) = serve().await;
    let owner = app.register("Chained").await;
    let auth = owner.auth();
    for name in ["North", "South", "East"] {
        create_store(&app, &auth, name).await;
    }
    let west = create_store(&app, &auth, "West").await;
    let path = format!("/api/v1/stores/{}", west["id"].as_str().expect("id"));
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            &auth,
            Some(json!({"name": "Far West"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let entries = all_entries(&app, &auth, "limit=500").await;
    let n = i64::try_from(entries.len()).expect("count");
    assert!(
        n >= 6,
        "provisioning, four creates and a rename: {entries:?}"
    );
    assert_eq!(
        seqs(&entries),
        (1..=n).rev().collect::<Vec<_>>(),
        "seq is 1..n"
    );
    for pair in entries.windows(2) {
        assert_eq!(
            pair[0]["prev_hash"], pair[1]["hash"],
            "each row names the one before"
        );
    }
    assert_eq!(entries[entries.len() - 1]["prev_hash"], GENESIS);
    for entry in &entries {
        assert_eq!(
            entry["hash"],
            tenant_hash(entry),
            "documented hash of {entry}"
        );
    }
    let creates: Vec<&Value> = entries
        .iter()
        .filter(|e| e["operation"] == "stores.create")
        .collect();
    assert_eq!(creates.len(), 4, "{entries:?}");
    assert_eq!(entries[0]["operation"], "stores.update");
    assert_eq!(entries[0]["target"], json!(path));

    let report = verify(&app, &auth).await;
    assert_eq!(
        report,
        json!({"ok": true, "rows": n, "head": {"seq": n, "hash": entries[0]["hash"]}, "first_broken": null})
    );

    // One row's outcome edited in the file.
    let edited = creates[2]["seq"].as_i64().expect("seq");
    let edited_id = creates[2]["id"].clone();
    let file = app.tenant_file(&owner.tenant_id);
    let (app, auth) = edit_offline(app, &owner, |_| {
        sql(
            &file,
            &format!("UPDATE audit_log SET outcome = 'failure:forged' WHERE seq = {edited}"),
        );
    })
    .await;
    let report = verify(&app, &auth).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["first_broken"],
        json!({"seq": edited, "id": edited_id, "reason": "hash_mismatch"})
    );

    // Put back, the chain holds again; then the last row removed.
    let (app, auth) = edit_offline(app, &owner, |_| {
        sql(
            &file,
            &format!("UPDATE audit_log SET outcome = 'success' WHERE seq = {edited}"),
        );
    })
    .await;
    assert_eq!(verify(&app, &auth).await["ok"], true);
    let (app, auth) = edit_offline(app, &owner, |_| {
        sql(&file, &format!("DELETE FROM audit_log WHERE seq = {n}"));
    })
    .await;
    let report = verify(&app, &auth).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["rows"], n - 1);
    assert_eq!(
        report["first_broken"],
        json!({"seq": n, "id": null, "reason": "truncated"})
    );

    // The head kept in the tenant's file removed too: control.db's tells.
    let (app, auth) = edit_offline(app, &owner, |_| {
        sql(&file, "DELETE FROM host_meta WHERE key = 'audit_head'");
    })
    .await;
    let report = verify(&app, &auth).await;
    assert_eq!(report["first_broken"]["reason"], "truncated", "{report}");
    assert_eq!(report["first_broken"]["seq"], n);

    // A row in the middle removed: the gap is reported where it is.
    let (app, auth) = edit_offline(app, &owner, |_| {
        sql(&file, "DELETE FROM audit_log WHERE seq = 3");
    })
    .await;
    let report = verify(&app, &auth).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken"]["seq"], 3, "{report}");
    assert_eq!(report["first_broken"]["reason"], "missing_rows", "{report}");
    app.stop();
}

#[tokio::test]
async fn filters_paging_and_csv_return_the_right_rows() {
    let app = TestApp::spawn_with(options()).await;
    let owner = app.register("Filtered").await;
    let auth = owner.auth();
    let mut stores = Vec::new();
    for name in ["One", "Two", "Three"] {
        let store = create_store(&app, &auth, name).await;
        stores.push(store["id"].as_str().expect("store id").to_string());
    }
    let (status, body) = app.post("/api/v1/stores", &auth, json!({"name": ""})).await;
    assert_eq!(status, 422, "{body}");
    // Two requests made in store One (`X-Store-ID`): their rows name it.
    let store_one = stores[0].as_str();
    for name in ["till one", "till two"] {
        let (status, body) = app
            .call_with(
                Method::POST,
                "/api/v1/api-keys",
                &auth,
                Some(json!({"name": name, "permissions": ["payments.read"]})),
                &[("X-Store-ID", store_one)],
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let all = all_entries(&app, &auth, "limit=500").await;
    let total = all.len();

    let ops = |entries: &[Value]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e["operation"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let creates = all_entries(&app, &auth, "operation=stores.create").await;
    assert_eq!(creates.len(), 4, "three made, one refused: {creates:?}");
    assert!(ops(&creates).iter().all(|o| o == "stores.create"));
    let prefixed = all_entries(&app, &auth, "operation=stores.*").await;
    assert!(ops(&prefixed).iter().all(|o| o.starts_with("stores.")));
    assert_eq!(prefixed.len(), 4);
    let failures = all_entries(&app, &auth, "outcome=failure").await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["outcome"], "failure:validation_failed");
    let successes = all_entries(&app, &auth, "outcome=success").await;
    assert_eq!(successes.len(), total - 1);
    let mine = all_entries(&app, &auth, &format!("actor_id={}", owner.user_id)).await;
    assert!(mine.iter().all(|e| e["actor_id"] == json!(owner.user_id)));
    assert!(mine.len() >= 4, "{mine:?}");
    let nobody = all_entries(&app, &auth, &format!("actor_id={}", uuid::Uuid::new_v4())).await;
    assert!(nobody.is_empty());
    let rest = all_entries(
        &app,
        &auth,
        "channel=rest&operation=stores.create&outcome=success",
    )
    .await;
    assert_eq!(rest.len(), 3);
    let store = all
        .iter()
        .find_map(|e| e["store_id"].as_str())
        .expect("the rows of the X-Store-ID requests name their store");
    assert_eq!(store, store_one);
    let in_store = all_entries(&app, &auth, &format!("store_id={store}")).await;
    assert!(!in_store.is_empty());
    assert!(in_store.iter().all(|e| e["store_id"] == json!(store)));
    assert_eq!(
        ops(&in_store),
        ["api-keys.create", "api-keys.create"],
        "exactly the two requests sent in store One: {in_store:?}"
    );
    let in_store_two = all_entries(&app, &auth, &format!("store_id={}", stores[1])).await;
    assert!(in_store_two.is_empty(), "{in_store_two:?}");
    let other_store = all_entries(&app, &auth, &format!("store_id={}", uuid::Uuid::new_v4())).await;
    assert!(other_store.is_empty());

    // Dates: today (UTC) holds every row; the day before and after none.
    let today = all[0]["at"].as_str().expect("at")[..10].to_string();
    assert_eq!(
        all_entries(&app, &auth, &format!("from={today}&to={today}"))
            .await
            .len(),
        total
    );
    assert!(all_entries(&app, &auth, "to=2000-01-01").await.is_empty());
    assert!(all_entries(&app, &auth, "from=2999-01-01").await.is_empty());
    let oldest_at = all[total - 1]["at"].as_str().expect("at").to_string();
    let upto = all_entries(&app, &auth, &format!("to={oldest_at}")).await;
    assert!(
        upto.iter()
            .all(|e| e["at"].as_str() <= Some(oldest_at.as_str()))
    );
    assert!(
        upto.iter().any(|e| e["seq"] == 1),
        "an RFC 3339 `to` includes its second"
    );

    // Paging: two at a time gives every row once, newest first.
    let (status, first) = app.get("/api/v1/audit?limit=2", &auth).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(2));
    assert!(first["next_cursor"].is_string());
    let paged = all_entries(&app, &auth, "limit=2").await;
    assert_eq!(seqs(&paged), seqs(&all));

    // CSV: a header, then one line per row.
    let response = app
        .client
        .get(format!("{}/api/v1/audit?format=csv&limit=500", app.base))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = crate::helpers::header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let text = response.text().await.expect("body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,seq,at,actor_type,actor_id,channel,operation,target,outcome,ip,user_agent,request_id,store_id,detail,prev_hash,hash"
    );
    assert_eq!(lines.len(), total + 1, "{text}");
    assert!(lines[1].contains(all[0]["hash"].as_str().expect("hash")));
    let response = app
        .client
        .get(format!("{}/api/v1/audit?format=csv&limit=1", app.base))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("send");
    assert!(response.headers().get("x-next-cursor").is_some());
    assert_eq!(response.text().await.expect("body").lines().count(), 2);

    // Bad filters: 422 in the standard error shape.
    for query in [
        "limit=0",
        "limit=501",
        "limit=many",
        "outcome=maybe",
        "from=yesterday",
        "to=2026-13-40",
        "cursor=not-a-cursor",
        "operation=st*res",
        "format=xml",
    ] {
        let (status, body) = app.get(&format!("/api/v1/audit?{query}"), &auth).await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{query}: {body}"
        );
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }

    // A member without `audit.read` may neither read nor verify; an Admin may.
    let member = app.add_member(&owner, "Member", None).await;
    for path in ["/api/v1/audit", "/api/v1/audit/verify"] {
        let (status, body) = app.get(path, &member.auth()).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{path}: {body}");
    }
    let admin = app.add_member(&owner, "Admin", None).await;
    assert_eq!(app.get("/api/v1/audit", &admin.auth()).await.0, 200);
    assert_eq!(verify(&app, &admin.auth()).await["ok"], true);
}

#[tokio::test]
async fn tenants_never_see_each_others_rows() {
    let app = TestApp::spawn_with(options()).await;
    let a = app.register("Tenant A").await;
    let b = app.register("Tenant B").await;
    let a_store = create_store(&app, &a.auth(), "A only").await;
    create_store(&app, &b.auth(), "B only").await;

    let a_rows = all_entries(&app, &a.auth(), "limit=500").await;
    let b_rows = all_entries(&app, &b.auth(), "limit=500").await;
    let a_id = a_store["id"].as_str().expect("id");
    assert!(a_rows.iter().any(|e| e.to_string().contains(a_id)));
    assert!(
        !b_rows.iter().any(|e| e.to_string().contains(a_id)),
        "{b_rows:?}"
    );
    assert!(!b_rows.iter().any(|e| e.to_string().contains(&a.user_id)));
    assert!(!a_rows.iter().any(|e| e.to_string().contains(&b.user_id)));
    assert!(
        all_entries(&app, &b.auth(), &format!("actor_id={}", a.user_id))
            .await
            .is_empty()
    );
    // Each has its own chain from 1.
    assert_eq!(seqs(&a_rows).last(), Some(&1));
    assert_eq!(seqs(&b_rows).last(), Some(&1));
    assert_eq!(verify(&app, &a.auth()).await["ok"], true);
    assert_eq!(verify(&app, &b.auth()).await["ok"], true);
}

#[tokio::test]
async fn rows_written_before_the_chain_are_chained_in_id_order() {
    let (_dir, app) = serve().await;
    let owner = app.register("Legacy").await;
    for name in ["Old 1", "Old 2"] {
        create_store(&app, &owner.auth(), name).await;
    }
    let before = all_entries(&app, &owner.auth(), "limit=500").await;
    let file = app.tenant_file(&owner.tenant_id);
    // Back to the schema before the chain (V6, and all after it): no seq,
    // no hashes, no heads.
    let (app, auth) = edit_offline(app, &owner, |dir| {
        sql(
            &file,
            "DROP INDEX audit_log_by_seq;
             ALTER TABLE audit_log DROP COLUMN seq;
             ALTER TABLE audit_log DROP COLUMN prev_hash;
             ALTER TABLE audit_log DROP COLUMN hash;
             DELETE FROM host_meta WHERE key LIKE 'audit_%';
             DROP TABLE settings;
             ALTER TABLE branding DROP COLUMN terminology;
             ALTER TABLE approvals DROP COLUMN reason;
             DELETE FROM refinery_schema_history WHERE version >= 6;",
        );
        sql(&dir.join("control.db"), "DELETE FROM tenant_audit_heads");
    })
    .await;
    let report = verify(&app, &auth).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["rows"], json!(before.len()));
    let after = all_entries(&app, &auth, "limit=500").await;
    let ids = |rows: &[Value]| rows.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    let hashes = |rows: &[Value]| rows.iter().map(|e| e["hash"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before), "chained in id order");
    assert_eq!(
        hashes(&after),
        hashes(&before),
        "the same rows hash the same"
    );
    create_store(&app, &auth, "New").await;
    let newest = all_entries(&app, &auth, "limit=1").await;
    assert_eq!(newest[0]["seq"], json!(before.len() + 1));
    assert_eq!(newest[0]["prev_hash"], before[0]["hash"]);
    assert_eq!(verify(&app, &auth).await["ok"], true);
}

#[tokio::test]
async fn the_platform_audit_is_chained_and_verified_for_super_admins() {
    let (_dir, app) = serve().await;
    let owner = app.register("Platformed").await;
    let admin = app.super_admin_as("root@example.com").await;
    let tenant = format!("/api/v1/admin/tenants/{}", owner.tenant_id);
    for status in ["suspended", "active"] {
        let (answer, body) = app
            .call(
                Method::PATCH,
                &tenant,
                &admin,
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(answer, 200, "{body}");
    }

    let (status, page) = app.get("/api/v1/admin/audit?limit=500", &admin).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().expect("entries").clone();
    let operations: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    for op in ["tenant.created", "tenant.suspended", "tenant.reactivated"] {
        assert!(operations.contains(&op), "{op} in {operations:?}");
    }
    let n = i64::try_from(entries.len()).expect("count");
    assert_eq!(seqs(&entries), (1..=n).rev().collect::<Vec<_>>());
    let fields = [
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
    ];
    for entry in &entries {
        assert_eq!(
            entry["hash"],
            documented_hash("malipo.platform_audit.v1", entry, &fields)
        );
    }
    let (status, tenants) = app
        .get(
            "/api/v1/admin/audit?operation=tenant.*&outcome=success",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{tenants}");
    assert!(
        tenants["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("tenant.")))
    );
    let (status, report) = app.get("/api/v1/admin/audit/verify", &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["ok"].clone(), report["rows"].clone()),
        (json!(true), json!(n))
    );
    for path in ["/api/v1/admin/audit", "/api/v1/admin/audit/verify"] {
        assert_eq!(app.get(path, &owner.auth()).await.0, 403, "{path}");
    }

    // The suspension edited in control.db, server stopped.
    let suspended = entries
        .iter()
        .find(|e| e["operation"] == "tenant.suspended")
        .expect("suspension row");
    let seq = suspended["seq"].as_i64().expect("seq");
    let dir = app.data_dir.clone();
    app.stop();
    sql(
        &dir.join("control.db"),
        &format!("UPDATE platform_audit SET target = 'someone-else' WHERE seq = {seq}"),
    );
    let app = TestApp::start(&dir, &options()).await;
    let (_, body) = app
        .login("root@example.com", "super admin passphrase")
        .await;
    let admin = Auth::Bearer(body["access_token"].as_str().expect("token").to_string());
    let (status, report) = app.get("/api/v1/admin/audit/verify", &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["first_broken"],
        json!({"seq": seq, "id": suspended["id"], "reason": "hash_mismatch"})
    );
}
