//! Issue 13, one vocabulary across REST and CLI: `tenant export|import`,
//! `backup`, `restore` and `mpesa reconcile` answer one JSON document with
//! `--json` (errors too, with a non-zero exit); and the commands that must
//! not run beside a server (`restore`, `migrate`) refuse while `serve`
//! holds the data directory's lock, changing nothing.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, code};
use crate::operator::{cli_ok, json_of, malipo_cli};

/// A failed `--json` command: non-zero exit, `{"error":{"code","message"}}`
/// on stdout, the message on stderr too.
fn cli_err(dir: &Path, args: &[&str]) -> Value {
    let output = malipo_cli(dir, args, &[]);
    assert!(!output.status.success(), "malipo {args:?} succeeded");
    let answer = json_of(&output);
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).trim().is_empty(),
        "the message reaches stderr too"
    );
    answer
}

fn sha256_of(path: &Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).expect("read")).to_vec()
}

#[tokio::test]
async fn export_import_backup_and_restore_answer_json() {
    let data = tempfile::tempdir().expect("temp");
    let dir = data.path().join("data");
    let app = TestApp::start(&dir, &Options::default()).await;
    let owner = app.register("Json Duka").await;

    // Export by slug, as `tenant list` shows it.
    let (status, tenant) = app.get("/api/v1/tenant", &owner.auth()).await;
    assert_eq!(status, 200, "{tenant}");
    let slug = tenant["slug"].as_str().expect("slug").to_string();
    let out = data.path().join("duka.sqlite");
    let out_arg = out.to_str().expect("utf-8");
    let exported = cli_ok(
        &dir,
        &["tenant", "export", &slug, "--out", out_arg, "--json"],
        &[],
    );
    assert_eq!(
        exported["tenant"]["id"],
        json!(owner.tenant_id),
        "{exported}"
    );
    assert_eq!(exported["tenant"]["slug"], json!(slug), "{exported}");
    assert_eq!(exported["file"], json!(out_arg), "{exported}");
    assert_eq!(exported["full"], json!(false));
    assert!(
        exported["bytes"].as_u64().is_some_and(|b| b > 0),
        "{exported}"
    );
    assert!(exported["scrubbed"].is_object(), "{exported}");
    // The same file again: refused, as JSON.
    let again = cli_err(
        &dir,
        &["tenant", "export", &slug, "--out", out_arg, "--json"],
    );
    assert_eq!(code(&again), "conflict", "{again}");
    let unknown = cli_err(
        &dir,
        &[
            "tenant",
            "export",
            "no-such-shop",
            "--out",
            "x.sqlite",
            "--json",
        ],
    );
    assert_eq!(code(&unknown), "not_found", "{unknown}");

    // Import: the same id exists (conflict), then a copy beside it.
    let clash = cli_err(&dir, &["tenant", "import", out_arg, "--json"]);
    assert_eq!(code(&clash), "conflict", "{clash}");
    let imported = cli_ok(
        &dir,
        &[
            "tenant",
            "import",
            out_arg,
            "--as-new",
            "--name",
            "Json Duka Copy",
            "--owner-email",
            &owner.email,
            "--json",
        ],
        &[],
    );
    assert_eq!(
        imported["tenant"]["name"],
        json!("Json Duka Copy"),
        "{imported}"
    );
    assert_ne!(imported["tenant"]["id"], json!(owner.tenant_id));
    assert_eq!(
        imported["from_tenant_id"],
        json!(owner.tenant_id),
        "{imported}"
    );
    assert_eq!(imported["as_new"], json!(true));
    assert_eq!(imported["owner_added"], json!(true));
    let garbage = data.path().join("garbage.sqlite");
    std::fs::write(&garbage, b"not a database").expect("write");
    let bad = cli_err(
        &dir,
        &[
            "tenant",
            "import",
            garbage.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(code(&bad), "validation_failed", "{bad}");

    // Backup beside the running server.
    let backups = data.path().join("backups");
    let to = backups.to_str().expect("utf-8");
    let backed = cli_ok(&dir, &["backup", "--to", to, "--json"], &[]);
    assert_eq!(backed["tenant_files"], json!(2), "{backed}");
    assert_eq!(backed["keys_included"], json!(true), "{backed}");
    assert_eq!(backed["removed"], json!([]), "{backed}");
    let generation = backed["generation"]
        .as_str()
        .expect("generation")
        .to_string();
    assert!(Path::new(&generation).join("manifest.json").is_file());
    let bad_keep = cli_err(&dir, &["backup", "--to", to, "--keep", "0", "--json"]);
    assert_eq!(code(&bad_keep), "validation_failed", "{bad_keep}");

    // Restore refuses under the server, as JSON, and changes nothing.
    let control = dir.join("control.db");
    let before = sha256_of(&control);
    let refused = cli_err(&dir, &["restore", "--from", to, "--force", "--json"]);
    assert_eq!(code(&refused), "data_dir_in_use", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is serving the data directory")),
        "{refused}"
    );
    assert_eq!(sha256_of(&control), before, "control.db untouched");

    // Stopped: restore without --force refuses (control.db exists), with it runs.
    let _keep = app.stop();
    let exists = cli_err(&dir, &["restore", "--from", to, "--json"]);
    assert_eq!(code(&exists), "conflict", "{exists}");
    let restored = cli_ok(&dir, &["restore", "--from", to, "--force", "--json"], &[]);
    assert_eq!(restored["generation"], json!(generation), "{restored}");
    assert_eq!(restored["tenant_files"], json!(2), "{restored}");
    let nothing = cli_err(
        &dir,
        &[
            "restore",
            "--from",
            data.path().join("nowhere").to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(code(&nothing), "not_found", "{nothing}");
}

#[tokio::test]
async fn reconcile_answers_json() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let shop = app.register("Reconcile Json").await;
    app.configure_mpesa(&shop).await;
    let answer = cli_ok(&app.data_dir, &["mpesa", "reconcile", "--json"], &[]);
    assert_eq!(answer["failed"], json!(0), "{answer}");
    assert_eq!(answer["problems"], json!([]), "{answer}");
    assert!(
        answer["reconciled"].as_u64().is_some_and(|n| n >= 1),
        "{answer}"
    );
    assert_eq!(
        answer["daraja_emulator_url"].as_str(),
        app.emulator.as_deref(),
        "{answer}"
    );
}

#[tokio::test]
async fn migrate_refuses_while_a_server_serves_the_directory() {
    let app = TestApp::spawn().await;
    let shop = app.register("Migrate Later").await;
    // A tenant file at an old schema that the server has not opened:
    // migrate would bring it to the newest.
    let old = app
        .data_dir
        .join("tenants")
        .join(format!("{}.db", uuid::Uuid::new_v4()));
    crate::operator::old_schema_file(&app.tenant_file(&shop.tenant_id), &old);
    let versions = |file: &Path| {
        crate::operator::host_versions(&rusqlite::Connection::open(file).expect("open"))
    };
    assert_eq!(versions(&old), vec![1, 2, 3, 4, 5]);

    let refused = cli_err(&app.data_dir, &["migrate", "--json"]);
    assert_eq!(code(&refused), "data_dir_in_use", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is serving the data directory") && message.contains("stop it first"),
        "{message}"
    );
    assert_eq!(versions(&old), vec![1, 2, 3, 4, 5], "nothing was migrated");
    // The server still answers.
    assert_eq!(app.get("/api/v1/stores", &shop.auth()).await.0, 200);

    // Once it stops, migrate runs.
    let dir = app.data_dir.clone();
    let _keep = app.stop();
    let done = cli_ok(&dir, &["migrate", "--json"], &[]);
    assert_eq!(done["failed"], json!(0), "{done}");
    assert!(versions(&old).len() > 5, "migrated now");
}

#[tokio::test]
async fn a_server_refuses_to_start_while_restore_holds_the_directory() {
    // A command holding the lock is named when a server tries to start.
    let dir = tempfile::tempdir().expect("temp");
    let lock = malipo_lock(dir.path());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run malipo serve");
    drop(lock);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("`malipo restore` (pid 4242) is working on the data directory"),
        "{stderr}"
    );
}

/// Holds `<dir>/malipo.lock` as `malipo restore` does (pid 4242).
fn malipo_lock(dir: &Path) -> std::fs::File {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("malipo.lock"))
        .expect("open the lock");
    file.try_lock().expect("lock");
    write!(file, "4242 restore").expect("write");
    file
}

#[test]
fn data_commands_have_help_with_json_and_examples() {
    let dir = tempfile::tempdir().expect("temp dir");
    for command in [
        &["tenant", "export"][..],
        &["tenant", "import"],
        &["backup"],
        &["restore"],
        &["mpesa", "reconcile"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let output = malipo_cli(dir.path(), &args, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "malipo {args:?}");
        assert!(
            stdout.contains("--json") && stdout.contains("Examples:"),
            "`malipo {}` help: {stdout}",
            command.join(" ")
        );
    }
}
