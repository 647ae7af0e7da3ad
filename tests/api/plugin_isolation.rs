//! Plugins isolated from each other and from the host, tried with hostile
//! test plugins (`tests/guests/thief`, `planter`, `audit_squatter`) dropped
//! into `<data-dir>/plugins/` of the real binary: a plugin declaring the
//! `mpesa` plugin's secret names gets its own secrets, never mpesa's; a
//! plugin named after a host table (`audit`) and one whose migration plants
//! a foreign key to `stores` and a trigger wiping `secrets` are refused at
//! load and change no tenant file; emitting `payment.completed` from
//! another plugin is refused and billing settles nothing; a 1 GB
//! `randomblob` fails inside the call while the host's memory stays low.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Auth, Options, PASSWORD, Session, TEST_GUESTS_DIR, TestApp, code};

/// Copies the test guest `file` (e.g. `malipo_test_thief.wasm`) into
/// `<dir>/plugins/`.
fn install(dir: &Path, file: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let target = plugins.join(file);
    std::fs::copy(Path::new(TEST_GUESTS_DIR).join(file), &target).expect("copy guest plugin");
    target
}

/// A server on a fresh data directory with the guest `file` installed.
async fn spawn_with_guest(file: &str, options: &Options) -> (TestApp, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    install(temp.path(), file);
    let app = TestApp::start(temp.path(), options).await;
    (app, temp)
}

/// Starts `malipo serve` on `dir`, expecting it to refuse to start: answers
/// its stderr. Fails if the server is still running after 90 s.
fn refused_start(dir: &Path) -> String {
    let mut child = crate::helpers::malipo_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start malipo");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(!status.success(), "malipo exited cleanly: {stderr}");
            return stderr;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("malipo started with a hostile plugin installed");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file under `<dir>/tenants`: name and bytes.
fn tenant_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("tenants"))
        .expect("tenants dir")
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).expect("read tenant file"),
            )
        })
        .collect();
    files.sort();
    files
}

/// The peak resident memory (`VmHWM`, KiB) of the server on `dir`.
fn peak_rss_kib(dir: &Path) -> u64 {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
    {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !(cmdline.contains(" serve ") && cmdline.contains(&needle)) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).expect("status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        return line
            .split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse().ok())
            .expect("VmHWM value");
    }
    panic!("no malipo process serving {needle}");
}

async fn relogin(app: &TestApp, owner: &Session) -> Auth {
    let (status, body) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    Auth::Bearer(body["access_token"].as_str().expect("token").to_string())
}

#[tokio::test]
async fn a_plugin_declaring_mpesas_secret_names_gets_its_own_secrets_never_mpesas() {
    let (app, _dir) = spawn_with_guest("malipo_test_thief.wasm", &Options::daraja_sim()).await;
    let owner = app.register("Secret Keeper").await;
    app.configure_mpesa(&owner).await;

    let (status, body) = app
        .post("/api/v1/thief/secrets", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["secrets"],
        json!({"passkey": null, "consumer_secret": null, "initiator_password": null}),
        "the thief read the mpesa plugin's secrets: {body}"
    );

    // Writing its own `passkey` writes its own, not mpesa's.
    let (status, body) = app
        .post("/api/v1/thief/overwrite", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .post("/api/v1/thief/secrets", &owner.auth(), json!({}))
        .await;
    assert_eq!(body["secrets"]["passkey"], "stolen", "{body}");

    // mpesa still has (and uses) its own credentials.
    let (status, shown) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["configured"], true, "{shown}");
    let (status, test) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "credentials test: {test}");
    let (status, push) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "254712345678", "amount": 10, "account_reference": "A", "description": "B"}),
        )
        .await;
    assert_eq!(status, 201, "mpesa can still pay: {push}");
}

#[tokio::test]
async fn a_plugin_named_after_a_host_table_is_refused_and_the_audit_chain_stays_whole() {
    let app = TestApp::spawn().await;
    let owner = app.register("Audit Keeper").await;
    let (status, body) = app
        .post("/api/v1/stores", &owner.auth(), json!({"name": "Second"}))
        .await;
    assert!(status < 300, "{body}");
    let dir = app.data_dir.clone();
    let (_, temp) = app.terminate();
    let before = tenant_files(&dir);

    let wasm = install(&dir, "malipo_test_audit_squatter.wasm");
    let stderr = refused_start(&dir);
    assert!(
        stderr.contains("`audit`") && stderr.contains("reserved"),
        "the refusal names the plugin and why: {stderr}"
    );
    assert_eq!(tenant_files(&dir), before, "a tenant file changed");

    std::fs::remove_file(wasm).expect("remove plugin");
    let app = TestApp::start(&dir, &Options::default()).await;
    let auth = relogin(&app, &owner).await;
    let (status, report) = app.get("/api/v1/audit/verify", &auth).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    drop(temp);
}

#[tokio::test]
async fn a_migration_planting_a_foreign_key_and_trigger_on_host_tables_is_refused() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Planted").await;
    app.configure_mpesa(&owner).await;
    let (status, store) = app
        .post("/api/v1/stores", &owner.auth(), json!({"name": "Doomed"}))
        .await;
    assert!(status < 300, "{store}");
    let store_id = store["id"]
        .as_str()
        .or_else(|| store["store"]["id"].as_str())
        .expect("store id")
        .to_string();
    let dir = app.data_dir.clone();
    let (_, temp) = app.terminate();
    let before = tenant_files(&dir);

    let wasm = install(&dir, "malipo_test_planter.wasm");
    let stderr = refused_start(&dir);
    assert!(
        stderr.contains("planter") && stderr.contains("stores"),
        "the refusal names the plugin and the host table: {stderr}"
    );
    assert_eq!(tenant_files(&dir), before, "a tenant file changed");

    // Without the plugin, deleting the store leaves the secrets alone.
    std::fs::remove_file(wasm).expect("remove plugin");
    let app = TestApp::start(&dir, &Options::daraja_sim()).await;
    let auth = relogin(&app, &owner).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/stores/{store_id}"),
            &auth,
            None,
        )
        .await;
    assert!(status < 300, "{body}");
    let (status, shown) = app.get("/api/v1/mpesa/credentials", &auth).await;
    assert_eq!(
        (status, &shown["configured"]),
        (200, &json!(true)),
        "{shown}"
    );
    drop(temp);
}

async fn advance(app: &TestApp, admin: &Auth, days: i64) {
    let (status, body) = app
        .post(
            "/api/v1/admin/clock",
            admin,
            json!({"advance_secs": days * 86_400}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn emitting_another_plugins_payment_event_is_refused_and_billing_settles_nothing() {
    // The emulator never calls back within the test: only a forged event
    // could settle the invoice.
    let options = Options::daraja_sim_delay(600_000)
        .with_env("MALIPO_TEST_CLOCK", "1")
        .with_env("MALIPO_EVENT_INTERVAL_MS", "100");
    let (app, _dir) = spawn_with_guest("malipo_test_thief.wasm", &options).await;
    let admin = app.super_admin().await;
    let platform = app.register("Malipo Platform").await;
    app.configure_mpesa(&platform).await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/admin/platform",
            &admin,
            Some(json!({"tenant_id": platform.tenant_id})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let shop = app.register("Forged Shop").await;
    advance(&app, &admin, 12).await;
    let (_, invoices) = app.get("/api/v1/invoices", &shop.auth()).await;
    let invoice = invoices["invoices"][0]["id"]
        .as_str()
        .expect("an invoice")
        .to_string();
    let (status, pending) = app
        .post(
            &format!("/api/v1/invoices/{invoice}/pay"),
            &shop.auth(),
            json!({"phone_number": "254712345678"}),
        )
        .await;
    assert_eq!(status, 202, "{pending}");
    let transaction_id = pending["transaction_id"].as_str().expect("transaction id");

    let (status, body) = app
        .post(
            "/api/v1/thief/emit",
            &platform.auth(),
            json!({"name": "payment.completed", "payload": {
                "transaction_id": transaction_id, "amount": 2500, "currency": "KES",
                "receipt": "FORGED123", "kind": "stk", "status": "completed"
            }}),
        )
        .await;
    assert!(status >= 400, "the forged emit was accepted: {body}");
    assert_eq!(code(&body), "plugin_capability_denied", "{body}");

    // Nothing was written for the dispatcher to deliver later: no event in
    // the platform's outbox names the forged receipt, so the invoice below
    // cannot be settled after this check either (no sleep needed).
    let forged: i64 = crate::helpers::open(&app.tenant_file(&platform.tenant_id))
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%FORGED123%'",
            [],
            |row| row.get(0),
        )
        .expect("read the outbox");
    assert_eq!(forged, 0, "the forged event reached the outbox");
    let (status, body) = app
        .get(&format!("/api/v1/invoices/{invoice}"), &shop.auth())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "open",
        "billing settled a forged payment: {body}"
    );
}

#[tokio::test]
async fn a_one_gigabyte_blob_fails_inside_the_call_and_host_memory_stays_low() {
    let (app, dir) = spawn_with_guest("malipo_test_thief.wasm", &Options::default()).await;
    let owner = app.register("Blob").await;
    let (status, body) = app
        .post("/api/v1/thief/blob", &owner.auth(), json!({"bytes": 1000}))
        .await;
    assert_eq!((status, &body["length"]), (200, &json!(1000)), "{body}");

    let (status, body) = app
        .post(
            "/api/v1/thief/blob",
            &owner.auth(),
            json!({"bytes": 1_000_000_000}),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body.to_string().contains("too big"),
        "the plugin's call failed with SQLite's limit: {body}"
    );
    let peak = peak_rss_kib(dir.path());
    assert!(
        peak < 512 * 1024,
        "the host's peak memory reached {} MiB",
        peak / 1024
    );
    // The server is fine afterwards.
    let (status, body) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!(status, 200, "{body}");
}

/// Turns the tenant's plugin secrets back into the layout written before
/// secrets were kept per plugin (a bare name, sealed with `<tenant>/<name>`),
/// as tenant migration V9 leaves an older file's rows: `plugin = ''`.
fn to_legacy_layout(dir: &Path, tenant: &str) -> usize {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    let key = std::fs::read_to_string(dir.join("master.key")).expect("master key");
    let key = hex::decode(key.trim()).expect("hex key");
    let cipher = Aes256Gcm::new_from_slice(&key).expect("key");
    let conn = rusqlite::Connection::open(dir.join("tenants").join(format!("{tenant}.db")))
        .expect("open tenant file");
    let rows: Vec<(String, String, Vec<u8>)> = conn
        .prepare("SELECT plugin, name, value FROM secrets WHERE plugin <> ''")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (plugin, name, sealed) in &rows {
        let (nonce, body) = sealed.split_at(12);
        let aad = format!("{tenant}/{plugin}/{name}");
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .expect("a plugin secret opens with <tenant>/<plugin>/<name>");
        let old_aad = format!("{tenant}/{name}");
        let resealed = cipher
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &plain,
                    aad: old_aad.as_bytes(),
                },
            )
            .expect("seal");
        let mut value = nonce.to_vec();
        value.extend(resealed);
        conn.execute(
            "UPDATE secrets SET plugin = '', value = ?3 WHERE plugin = ?1 AND name = ?2",
            rusqlite::params![plugin, name, value],
        )
        .expect("rewrite");
    }
    rows.len()
}

#[tokio::test]
async fn secrets_written_before_they_were_per_plugin_still_pay_after_the_upgrade() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Upgraded").await;
    app.configure_mpesa(&owner).await;
    let dir = app.data_dir.clone();
    let (_, temp) = app.terminate();
    let moved = to_legacy_layout(&dir, &owner.tenant_id);
    assert!(
        moved >= 4,
        "mpesa's credentials were written per plugin: {moved}"
    );

    // A hostile plugin declaring the same names is installed too: it must
    // not inherit them when the host moves them to their owner.
    install(&dir, "malipo_test_thief.wasm");
    let app = TestApp::start(&dir, &Options::daraja_sim()).await;
    let auth = relogin(&app, &owner).await;
    let (status, test) = app
        .post("/api/v1/mpesa/credentials/test", &auth, json!({}))
        .await;
    assert_eq!(status, 200, "credentials test: {test}");
    let (status, push) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &auth,
            json!({"phone_number": "254712345678", "amount": 10, "account_reference": "A", "description": "B"}),
        )
        .await;
    assert_eq!(status, 201, "mpesa still pays with its old secrets: {push}");
    let (_, stolen) = app.post("/api/v1/thief/secrets", &auth, json!({})).await;
    assert_eq!(
        stolen["secrets"],
        json!({"passkey": null, "consumer_secret": null, "initiator_password": null}),
        "{stolen}"
    );
    let conn = rusqlite::Connection::open(app.tenant_file(&owner.tenant_id)).expect("open");
    let legacy: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM secrets WHERE plugin = '' AND substr(name, 1, 2) <> '__'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(legacy, 0, "every legacy secret moved to its plugin");
    drop(temp);
}
