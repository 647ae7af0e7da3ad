//! Data out and back in: `GET /tenant/export` (a consistent SQLite snapshot
//! without secrets, taken while the tenant keeps writing), `malipo tenant
//! export|import`, and `malipo backup` → wipe → `malipo restore`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::billing::register_on;
use crate::helpers::{Auth, Options, Session, TestApp, code, contains, malipo_command};
use crate::mpesa;

const CONSUMER_KEY: &str = "export-test-consumer-key-5b1e";
const CONSUMER_SECRET: &str = "export-test-consumer-secret-9c4d";
const INITIATOR_PASSWORD: &str = "Initiator-Pass-For-Export-7e2a!";

fn options() -> Options {
    Options::daraja_sim()
        .with_env("MALIPO_EVENT_INTERVAL_MS", "200")
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
}

/// Runs the binary with `args` on `data_dir`.
fn malipo(data_dir: &Path, args: &[&str]) -> Output {
    malipo_command()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run malipo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Runs `sqlite3 FILE SQL`; answers its standard output, trimmed.
fn sqlite3(file: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        output.status.success(),
        "sqlite3 {sql}: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_string()
}

/// Daraja credentials with distinctive secrets (finding them in an export
/// means a leak).
async fn configure_mpesa(app: &TestApp, owner: &Session) {
    let mut credentials = mpesa::credentials();
    credentials["consumer_key"] = json!(CONSUMER_KEY);
    credentials["consumer_secret"] = json!(CONSUMER_SECRET);
    credentials["initiator_password"] = json!(INITIATOR_PASSWORD);
    mpesa::configure(app, owner, credentials).await;
}

/// A completed STK payment through the emulator; answers its id.
async fn completed_payment(app: &TestApp, owner: &Session, amount: i64) -> String {
    let done = mpesa::completed_payment(app, &owner.auth(), amount).await;
    done["id"].as_str().expect("id").to_string()
}

/// Invites someone; answers the token the invitation email carries.
async fn invitation_token(app: &TestApp, owner: &Session) -> String {
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    let role_id = roles["roles"]
        .as_array()
        .and_then(|roles| roles.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("Member role")
        .to_string();
    let email = format!("invitee-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .post(
            "/api/v1/invitations",
            &owner.auth(),
            json!({"email": email, "role_id": role_id}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    TestApp::token_in(&app.wait_for_mail(&email, "invitation").await)
}

#[tokio::test]
async fn an_export_opens_in_sqlite3_with_the_data_and_no_secrets_while_writes_go_on() {
    let app = TestApp::spawn_with(options()).await;
    let owner = register_on(&app, "Export Shop", "premium").await;
    configure_mpesa(&app, &owner).await;
    let payment = completed_payment(&app, &owner, 75).await;
    let webhook = crate::webhooks::subscribe(
        &app,
        &owner,
        "https://erp.example.com/hooks/malipo",
        json!(["payment.completed"]),
    )
    .await;
    let webhook_secret = webhook["secret"].as_str().expect("secret").to_string();
    let token = invitation_token(&app, &owner).await;

    // The live file holds what the export must not: Daraja's OAuth token.
    // (The invitation token never enters a tenant's file at all: invitation
    // mail is the host's own, issue 12 §3.)
    let live = app.tenant_file(&owner.tenant_id);
    let queued = sqlite3(
        &live,
        &format!("SELECT count(*) FROM notifications_emails WHERE text LIKE '%{token}%'"),
    );
    assert_eq!(
        queued, "0",
        "the invitation token is not in the tenant file"
    );
    // Daraja's OAuth tokens, as the emulator issued them: the plugin keeps
    // its copy sealed among the tenant's secrets (`mpesa_tokens.access_token`
    // stays empty), so the export is searched for the token itself.
    let oauth = mpesa::issued_tokens(&app).await;
    assert!(!oauth.is_empty(), "the emulator issued a token");

    // Writes keep going while the export runs.
    let writer = {
        let client = app.client.clone();
        let base = app.base.clone();
        let token = owner.access_token.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..8 {
                let response = client
                    .post(format!("{base}/api/v1/stores"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("Branch {i}")}))
                    .send()
                    .await
                    .expect("create store");
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    };
    let response = app
        .client
        .get(format!("{}/api/v1/tenant/export", app.base))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| crate::helpers::header(&response, name).unwrap_or_default();
    assert_eq!(header("content-type"), "application/vnd.sqlite3");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"malipo-export-shop-")
            && disposition.ends_with(".sqlite\""),
        "{disposition}"
    );
    let bytes = response.bytes().await.expect("export body");
    let statuses = writer.await.expect("writer");
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every concurrent write succeeded: {statuses:?}"
    );

    let dir = tempfile::tempdir().expect("temp");
    let file = dir.path().join("export.sqlite");
    std::fs::write(&file, &bytes).expect("write export");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    assert_eq!(sqlite3(&file, "PRAGMA integrity_check"), "ok");
    assert_eq!(sqlite3(&file, "PRAGMA journal_mode"), "delete");
    assert_eq!(
        sqlite3(
            &file,
            "SELECT tenant_id || '|' || plan || '|' || secrets FROM malipo_export"
        ),
        format!("{}|premium|removed", owner.tenant_id)
    );
    assert_eq!(
        sqlite3(
            &file,
            &format!(
                "SELECT status || '|' || amount FROM mpesa_transactions WHERE id = '{payment}'"
            )
        ),
        "completed|75"
    );
    assert!(
        sqlite3(&file, "SELECT name FROM stores").contains("Main store"),
        "the stores are there"
    );
    assert_eq!(sqlite3(&file, "SELECT count(*) FROM secrets"), "0");
    assert_eq!(sqlite3(&file, "SELECT count(*) FROM mpesa_tokens"), "0");
    assert_eq!(
        sqlite3(
            &file,
            "SELECT count(*) FROM notifications_webhooks WHERE url = 'https://erp.example.com/hooks/malipo'"
        ),
        "1"
    );
    let mut secrets = vec![
        token.as_str(),
        webhook_secret.as_str(),
        CONSUMER_KEY,
        CONSUMER_SECRET,
        INITIATOR_PASSWORD,
        mpesa::SANDBOX_PASSKEY,
        "$argon2",
        "mli_",
    ];
    secrets.extend(oauth.iter().map(String::as_str));
    for secret in secrets {
        assert!(!contains(&bytes, secret), "the export holds `{secret}`");
    }

    // The export was audited.
    let (status, audit) = app
        .get("/api/v1/audit?operation=tenant.export", &owner.auth())
        .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );

    // The feature is Premium's: a Standard tenant is refused.
    let standard = register_on(&app, "Standard Shop", "standard").await;
    let (status, body) = app.get("/api/v1/tenant/export", &standard.auth()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "plan_feature_required", "{body}");
    // Nothing is left behind in the temporary area.
    let leftovers = std::fs::read_dir(app.data_dir.join("tmp"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
}

/// The answers compared before the backup and after the restore.
async fn answers(app: &TestApp, auth: &Auth) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/api/v1/stores",
        "/api/v1/mpesa/transactions",
        "/api/v1/users",
        "/api/v1/audit/verify",
        "/api/v1/audit?limit=200",
        "/api/v1/tenant",
    ] {
        let (status, body) = app.get(path, auth).await;
        assert_eq!(status, 200, "{path}: {body}");
        all.push(json!({"path": path, "body": body}));
    }
    all
}

fn generations(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("backup dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("malipo-backup-") && !n.ends_with(".partial"))
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn backup_then_wipe_then_restore_answers_the_same() {
    let data = tempfile::tempdir().expect("temp");
    let backups = tempfile::tempdir().expect("temp");
    let dir = data.path().join("data");
    let app = TestApp::start(&dir, &options()).await;
    let owner = app.register("Backup Shop").await;
    app.configure_mpesa(&owner).await;
    completed_payment(&app, &owner, 42).await;
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &owner.auth(),
            json!({"name": "Westlands"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let other = app.register("Second Shop").await;
    let before = answers(&app, &owner.auth()).await;
    let before_other = answers(&app, &other.auth()).await;

    // While the server runs.
    let to = backups.path().to_str().expect("utf-8 path");
    let output = malipo(&dir, &["backup", "--to", to, "--keep", "2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary = text(&output.stdout);
    assert!(
        summary.contains("backed up control.db and 2 tenant file(s)"),
        "{summary}"
    );
    let made = generations(backups.path());
    assert_eq!(made.len(), 1);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(made[0].join("manifest.json")).expect("manifest"),
    )
    .expect("manifest json");
    assert_eq!(manifest["tenant_files"], 2, "{manifest}");
    assert_eq!(
        answers(&app, &owner.auth()).await,
        before,
        "nothing moved meanwhile"
    );

    app.stop();
    std::fs::remove_dir_all(&dir).expect("wipe the data directory");
    let output = malipo(&dir, &["restore", "--from", to]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // A second restore would overwrite control.db: refused without --force.
    let output = malipo(&dir, &["restore", "--from", to]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--force"),
        "{}",
        text(&output.stderr)
    );

    let app = TestApp::start(&dir, &options()).await;
    assert_eq!(answers(&app, &owner.auth()).await, before);
    assert_eq!(answers(&app, &other.auth()).await, before_other);
    let (status, body) = app.login(&owner.email, crate::helpers::PASSWORD).await;
    assert_eq!(status, 200, "the owner still logs in: {body}");

    // Generations beyond --keep are removed (names are per second).
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let output = malipo(&dir, &["backup", "--to", to, "--keep", "2"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let kept = generations(backups.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&made[0]), "the oldest went");

    // A damaged generation is refused before anything is written.
    let newest = kept.last().expect("newest").clone();
    let victim = newest
        .join("tenants")
        .join(format!("{}.db", owner.tenant_id));
    let mut damaged = std::fs::read(&victim).expect("read");
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(&victim, damaged).expect("damage");
    app.stop();
    let output = malipo(
        &dir,
        &[
            "restore",
            "--from",
            newest.to_str().expect("utf-8"),
            "--force",
        ],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("does not match the manifest"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn a_cli_export_imports_as_a_new_tenant_and_a_newer_schema_is_refused() {
    let data = tempfile::tempdir().expect("temp");
    let dir = data.path().join("data");
    let app = TestApp::start(&dir, &options()).await;
    let owner = app.register("Import Shop").await;
    let (status, body) = app
        .post("/api/v1/stores", &owner.auth(), json!({"name": "Karen"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, stores) = app.get("/api/v1/stores", &owner.auth()).await;

    let out = data.path().join("shop.sqlite");
    let out_arg = out.to_str().expect("utf-8");
    let output = malipo(
        &dir,
        &["tenant", "export", &owner.tenant_id, "--out", out_arg],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(sqlite3(&out, "PRAGMA integrity_check"), "ok");

    // The same id exists here: refused.
    let output = malipo(&dir, &["tenant", "import", out_arg]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("already exists"),
        "{}",
        text(&output.stderr)
    );

    let output = malipo(
        &dir,
        &[
            "tenant",
            "import",
            out_arg,
            "--as-new",
            "--name",
            "Import Shop Copy",
            "--owner-email",
            &owner.email,
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    let new_id = said
        .split("as tenant ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no tenant id in {said:?}"))
        .to_string();
    assert_ne!(new_id, owner.tenant_id);

    // The owner logs into the copy and sees the same stores.
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            &Auth::None,
            json!({"email": owner.email, "password": crate::helpers::PASSWORD, "tenant_id": new_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let copy = Session::from_auth_response(&body, &owner.email);
    assert_eq!(copy.tenant_id, new_id);
    let (status, copied) = app.get("/api/v1/stores", &copy.auth()).await;
    assert_eq!(status, 200, "{copied}");
    assert_eq!(copied, stores);
    let (_, tenant) = app.get("/api/v1/tenant", &copy.auth()).await;
    assert_eq!(tenant["name"], "Import Shop Copy", "{tenant}");

    // A file from a newer binary is refused, and nothing is created.
    let control = dir.join("control.db");
    let tenants_before = sqlite3(&control, "SELECT count(*) FROM tenants");
    let files_before = std::fs::read_dir(dir.join("tenants")).expect("dir").count();
    let future = data.path().join("future.sqlite");
    std::fs::copy(&out, &future).expect("copy");
    sqlite3(
        &future,
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
    );
    let output = malipo(
        &dir,
        &[
            "tenant",
            "import",
            future.to_str().expect("utf-8"),
            "--as-new",
        ],
    );
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(
        said.contains("host schema is at version 999") && said.contains("newer than this binary's"),
        "{said}"
    );
    assert_eq!(
        sqlite3(&control, "SELECT count(*) FROM tenants"),
        tenants_before
    );
    assert_eq!(
        std::fs::read_dir(dir.join("tenants")).expect("dir").count(),
        files_before
    );
}
