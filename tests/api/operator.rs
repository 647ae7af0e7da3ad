//! The operator's CLI, run as the real binary against real data
//! directories (next to a running server where the effect is seen over
//! REST): `malipo tenant …`, `malipo user …`, `malipo migrate`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Options, PASSWORD, TestApp, code};

/// Runs `malipo <args> --data-dir <dir>` with `env`, to the end.
pub fn malipo_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = crate::helpers::malipo_command();
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run malipo")
}

/// The one JSON document a `--json` command printed on stdout.
pub fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {stdout:?}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs a `--json` command that must succeed; answers its document.
pub fn cli_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = malipo_cli(dir, args, env);
    assert!(
        output.status.success(),
        "malipo {args:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    json_of(&output)
}

/// The platform audit's (operation, channel, target) rows, oldest first.
fn platform_audit(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(dir.join("control.db")).expect("open control.db");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let mut stmt = conn
        .prepare("SELECT operation, channel, target FROM platform_audit ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn every_operator_command_has_help_naming_its_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["tenant"],
            &["create", "list", "suspend", "reactivate", "delete"],
        ),
        (
            &["tenant", "create"],
            &[
                "--name",
                "--owner-email",
                "--owner-name",
                "--plan",
                "--json",
                "MALIPO_OWNER_PASSWORD",
            ],
        ),
        (
            &["tenant", "list"],
            &["--status", "--json", "pending-deletion"],
        ),
        (&["tenant", "suspend"], &["<ID>", "--json"]),
        (&["tenant", "reactivate"], &["<ID>", "--json"]),
        (
            &["tenant", "delete"],
            &[
                "<ID>",
                "--now",
                "--json",
                "MALIPO_TENANT_DELETION_GRACE_SECS",
            ],
        ),
        (&["tenant", "cancel-deletion"], &["<ID>", "--json"]),
        (&["user"], &["create", "list", "assign-role"]),
        (
            &["user", "create"],
            &[
                "--email",
                "--full-name",
                "--super-admin",
                "--json",
                "MALIPO_USER_PASSWORD",
            ],
        ),
        (&["user", "list"], &["--tenant", "--json"]),
        (
            &["user", "assign-role"],
            &["--email", "--tenant", "--role", "--json"],
        ),
        (&["migrate"], &["--json", "--jobs"]),
    ];
    for (command, flags) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let output = malipo_cli(dir.path(), &args, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "malipo {args:?}: {}",
            output.status
        );
        for flag in *flags {
            assert!(
                stdout.contains(flag),
                "`malipo {}` help does not mention {flag}: {stdout}",
                args.join(" ")
            );
        }
    }
    // Help made nothing.
    assert!(!dir.path().join("control.db").exists());
}

#[tokio::test]
async fn a_tenant_made_by_the_cli_can_be_listed_suspended_and_reactivated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = TestApp::start(dir.path(), &Options::default()).await;
    let email = format!("owner-{}@cli.example", uuid::Uuid::new_v4().simple());

    // A weak password is refused, and nothing is made.
    let output = malipo_cli(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "Weak Ltd",
            "--owner-email",
            &email,
            "--json",
        ],
        &[("MALIPO_OWNER_PASSWORD", "short")],
    );
    assert!(!output.status.success());
    assert_eq!(
        json_of(&output)["error"]["code"],
        json!("validation_failed")
    );
    assert!(!String::from_utf8_lossy(&output.stderr).is_empty());

    let created = cli_ok(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "Cli Duka",
            "--owner-email",
            &email,
            "--owner-name",
            "Cli Owner",
            "--plan",
            "standard",
            "--json",
        ],
        &[("MALIPO_OWNER_PASSWORD", PASSWORD)],
    );
    let tenant = created["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    assert_eq!(created["owner"]["email"], json!(email), "{created}");
    assert_eq!(created["owner_created"], json!(true));
    assert!(
        app.tenant_file(&tenant).is_file(),
        "the tenant's file exists"
    );

    // Provisioned as registration does: the owner logs in as its Owner,
    // with a default store and a subscription to the plan chosen.
    let (status, body) = app.login(&email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"]["id"], json!(tenant));
    let owner = crate::helpers::Auth::Bearer(body["access_token"].as_str().expect("token").into());
    let (status, stores) = app.get("/api/v1/stores", &owner).await;
    assert_eq!(status, 200, "{stores}");
    assert_eq!(
        stores["stores"].as_array().map(Vec::len),
        Some(1),
        "{stores}"
    );
    let (status, roles) = app.get("/api/v1/roles", &owner).await;
    assert_eq!(status, 200, "the Owner may read roles: {roles}");
    let (status, subscription) = app.get("/api/v1/subscription", &owner).await;
    assert_eq!(status, 200, "{subscription}");
    assert_eq!(
        (
            subscription["status"].as_str(),
            subscription["plan_id"].as_str()
        ),
        (Some("trial"), Some("standard")),
        "{subscription}"
    );

    let listed = cli_ok(dir.path(), &["tenant", "list", "--json"], &[]);
    let row = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|t| t["id"] == json!(tenant)))
        .unwrap_or_else(|| panic!("the tenant is listed: {listed}"));
    assert_eq!(row["status"], json!("active"));
    assert_eq!(row["name"], json!("Cli Duka"));
    // The human table names it too.
    let output = malipo_cli(dir.path(), &["tenant", "list"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&tenant) && text.contains("Cli Duka"),
        "{text}"
    );

    let suspended = cli_ok(dir.path(), &["tenant", "suspend", &tenant, "--json"], &[]);
    assert_eq!(suspended["status"], json!("suspended"), "{suspended}");
    let (status, body) = app.get("/api/v1/stores", &owner).await;
    assert_eq!((status, code(&body)), (403, "tenant_suspended"), "{body}");
    let (status, body) = app.login(&email, PASSWORD).await;
    assert_eq!((status, code(&body)), (403, "tenant_suspended"), "{body}");
    let only_suspended = cli_ok(
        dir.path(),
        &["tenant", "list", "--status", "suspended", "--json"],
        &[],
    );
    assert_eq!(
        only_suspended
            .as_array()
            .map(|rows| rows.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(tenant)])
    );
    assert_eq!(
        cli_ok(
            dir.path(),
            &["tenant", "list", "--status", "active", "--json"],
            &[]
        ),
        json!([])
    );

    let reactivated = cli_ok(
        dir.path(),
        &["tenant", "reactivate", &tenant, "--json"],
        &[],
    );
    assert_eq!(reactivated["status"], json!("active"));
    let (status, body) = app.login(&email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    // Unknown and malformed ids: an error document, a non-zero exit.
    for id in [uuid::Uuid::new_v4().to_string(), "not-an-id".to_string()] {
        let output = malipo_cli(dir.path(), &["tenant", "suspend", &id, "--json"], &[]);
        assert!(!output.status.success());
        let error = json_of(&output);
        assert!(
            matches!(code(&error), "not_found" | "validation_failed"),
            "{error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&id))
        );
    }

    let audit = platform_audit(dir.path());
    for operation in ["tenant.created", "tenant.suspended", "tenant.reactivated"] {
        assert!(
            audit.iter().any(|(op, channel, target)| op == operation
                && channel == "cli"
                && target.as_deref() == Some(tenant.as_str())),
            "no {operation} row from the cli: {audit:?}"
        );
    }
    app.stop();
}

#[tokio::test]
async fn users_made_and_given_roles_by_the_cli_act_over_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = TestApp::start(dir.path(), &Options::default()).await;
    let owner = app.register("Role Org").await;
    let email = format!("ann-{}@cli.example", uuid::Uuid::new_v4().simple());

    let created = cli_ok(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            &email,
            "--full-name",
            "Ann W",
            "--json",
        ],
        &[("MALIPO_USER_PASSWORD", PASSWORD)],
    );
    assert_eq!(created["email"], json!(email));
    assert_eq!(created["is_super_admin"], json!(false));
    assert!(created.get("password_hash").is_none(), "{created}");
    // Once only.
    let output = malipo_cli(
        dir.path(),
        &["user", "create", "--email", &email, "--json"],
        &[("MALIPO_USER_PASSWORD", PASSWORD)],
    );
    assert!(!output.status.success());
    assert_eq!(code(&json_of(&output)), "conflict");
    // The password can come from standard input; the policy applies there too.
    let weak = format!("weak-{}@cli.example", uuid::Uuid::new_v4().simple());
    let output = malipo_cli(
        dir.path(),
        &["user", "create", "--email", &weak, "--json"],
        &[],
    );
    assert!(!output.status.success(), "an empty password is refused");
    assert_eq!(code(&json_of(&output)), "validation_failed");

    // A user of no organization cannot work yet.
    let (status, body) = app.login(&email, PASSWORD).await;
    assert_eq!(status, 403, "{body}");

    let users = cli_ok(dir.path(), &["user", "list", "--json"], &[]);
    let row = users
        .as_array()
        .and_then(|rows| rows.iter().find(|u| u["email"] == json!(email)))
        .unwrap_or_else(|| panic!("the user is listed: {users}"));
    assert_eq!(row["memberships"], json!([]));

    // An unknown role: a clear error naming the roles there are.
    let output = malipo_cli(
        dir.path(),
        &[
            "user",
            "assign-role",
            "--email",
            &email,
            "--tenant",
            &owner.tenant_id,
            "--role",
            "Boss",
            "--json",
        ],
        &[],
    );
    assert!(!output.status.success());
    let error = json_of(&output);
    assert_eq!(code(&error), "not_found", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Boss") && message.contains("Manager"),
        "{message}"
    );
    let members = cli_ok(
        dir.path(),
        &["user", "list", "--tenant", &owner.tenant_id, "--json"],
        &[],
    );
    assert!(
        !members.to_string().contains(&email),
        "a failed assignment adds no member: {members}"
    );

    let assigned = cli_ok(
        dir.path(),
        &[
            "user",
            "assign-role",
            "--email",
            &email,
            "--tenant",
            &owner.tenant_id,
            "--role",
            "manager",
            "--json",
        ],
        &[],
    );
    assert_eq!(assigned["membership_status"], json!("active"), "{assigned}");
    assert_eq!(
        assigned["assignment"]["role_name"],
        json!("Manager"),
        "{assigned}"
    );

    // The user logs in to the organization and holds the Manager's permissions.
    let (status, body) = app.login(&email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"]["id"], json!(owner.tenant_id));
    let ann = crate::helpers::Auth::Bearer(body["access_token"].as_str().expect("token").into());
    let (status, people) = app.get("/api/v1/users", &ann).await;
    assert_eq!(status, 200, "a Manager may read people: {people}");
    let (status, body) = app.get("/api/v1/audit", &ann).await;
    assert_eq!(status, 403, "a Manager may not read the audit: {body}");
    let (status, me) = app.get("/api/v1/me", &ann).await;
    assert_eq!(status, 200, "{me}");
    assert!(me.to_string().contains("\"Manager\""), "{me}");

    let members = cli_ok(
        dir.path(),
        &["user", "list", "--tenant", &owner.tenant_id, "--json"],
        &[],
    );
    let row = members
        .as_array()
        .and_then(|rows| rows.iter().find(|u| u["email"] == json!(email)))
        .unwrap_or_else(|| panic!("the user is a member: {members}"));
    assert_eq!(row["membership_status"], json!("active"));

    // The tenant's own audit says what the CLI did in it.
    let (status, audit) = app
        .get("/api/v1/audit?operation=users.assign_role", &owner.auth())
        .await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.to_string().contains("\"cli\""), "{audit}");
    let platform = platform_audit(dir.path());
    for operation in ["user.created", "user.role_assigned"] {
        assert!(
            platform
                .iter()
                .any(|(op, channel, _)| op == operation && channel == "cli"),
            "{operation}: {platform:?}"
        );
    }
    app.stop();
}

/// The host's tenant migrations before the newest (V6), as shipped.
const OLD_HOST_MIGRATIONS: [&str; 5] = [
    include_str!("../../migrations/tenant/V1__init.sql"),
    include_str!("../../migrations/tenant/V2__indexes.sql"),
    include_str!("../../migrations/tenant/V3__approvals.sql"),
    include_str!("../../migrations/tenant/V4__event_deliveries.sql"),
    include_str!("../../migrations/tenant/V5__branding.sql"),
];

/// Table names of a SQLite file, sorted.
fn tables_of(conn: &rusqlite::Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("tables")
}

pub(crate) fn host_versions(conn: &rusqlite::Connection) -> Vec<i64> {
    conn.prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("versions")
}

/// A tenant file at host schema V5 and no plugin tables: the shipped
/// V1..V5 SQL applied, with the history rows (checksums included) that a
/// real file made by the server records for them, so refinery accepts it.
pub(crate) fn old_schema_file(real: &Path, target: &Path) {
    let source = rusqlite::Connection::open(real).expect("open the real file");
    let history_ddl: String = source
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |row| row.get(0),
        )
        .expect("the history table's DDL");
    let history: Vec<(i64, String, String, String)> = source
        .prepare("SELECT version, name, applied_on, checksum FROM refinery_schema_history WHERE version <= 5 ORDER BY version")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("history");
    assert_eq!(history.len(), 5, "{history:?}");
    let old = rusqlite::Connection::open(target).expect("create the old file");
    for sql in OLD_HOST_MIGRATIONS {
        old.execute_batch(sql).expect("apply an old migration");
    }
    old.execute_batch(&history_ddl).expect("history table");
    for (version, name, applied_on, checksum) in &history {
        old.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![version, name, applied_on, checksum],
        )
        .expect("history row");
    }
    assert_eq!(host_versions(&old), vec![1, 2, 3, 4, 5]);
    assert!(
        !tables_of(&old).iter().any(|t| t.starts_with("rbac_")),
        "no plugin tables yet"
    );
}

#[tokio::test]
async fn migrate_runs_over_a_thousand_tenant_files_and_reports_the_one_that_fails() {
    const FILES: usize = 1_000;
    // A tenant made by the server: the newest schema, and the history rows.
    let made = tempfile::tempdir().expect("temp dir");
    let app = TestApp::start(made.path(), &Options::default()).await;
    let owner = app.register("Template Org").await;
    let real = app.tenant_file(&owner.tenant_id);
    app.stop();
    let (newest_tables, newest_versions) = {
        let conn = rusqlite::Connection::open(&real).expect("open");
        (tables_of(&conn), host_versions(&conn))
    };
    assert!(newest_versions.len() > 5, "{newest_versions:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(&tenants).expect("tenants dir");
    let template = dir.path().join("old-template.sqlite");
    old_schema_file(&real, &template);
    let mut good: Vec<PathBuf> = Vec::with_capacity(FILES);
    for _ in 0..FILES {
        let file = tenants.join(format!("{}.db", uuid::Uuid::new_v4()));
        std::fs::copy(&template, &file).expect("copy the old file");
        good.push(file);
    }
    let corrupt = uuid::Uuid::new_v4().to_string();
    std::fs::write(
        tenants.join(format!("{corrupt}.db")),
        b"\x00\x13garbage, not a SQLite database at all \xff\xfe".repeat(64),
    )
    .expect("write the corrupt file");
    // Not tenant files: left alone.
    std::fs::write(tenants.join("notes.txt"), b"hello").expect("write");

    let dir_path = dir.path().to_path_buf();
    let started = Instant::now();
    let output =
        tokio::task::spawn_blocking(move || malipo_cli(&dir_path, &["migrate", "--json"], &[]))
            .await
            .expect("join");
    let elapsed = started.elapsed();
    eprintln!("malipo migrate over {} files took {elapsed:?}", FILES + 1);
    assert!(
        !output.status.success(),
        "a failed file makes the exit non-zero"
    );
    let summary = json_of(&output);
    assert_eq!(summary["tenant_files"], json!(FILES + 1), "{summary}");
    assert_eq!(summary["migrated"], json!(FILES), "{summary}");
    assert_eq!(summary["failed"], json!(1), "{summary}");
    assert_eq!(
        summary["failures"][0]["tenant_id"],
        json!(corrupt),
        "{summary}"
    );
    assert!(
        summary["failures"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{summary}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&corrupt),
        "the failing tenant is named on stderr too"
    );
    assert!(
        dir.path().join("control.db").is_file(),
        "control.db was migrated"
    );

    for file in &good {
        let conn = rusqlite::Connection::open(file).expect("open a migrated file");
        assert_eq!(host_versions(&conn), newest_versions, "{}", file.display());
        assert_eq!(
            tables_of(&conn),
            newest_tables,
            "{} has every host and plugin table",
            file.display()
        );
    }

    // Without --json: the summary line, and the failure listed.
    let output = malipo_cli(dir.path(), &["migrate"], &[]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!(
            "migrated {FILES} of {} tenant file(s); 1 failed",
            FILES + 1
        )),
        "{text}"
    );
    assert!(text.contains(&corrupt), "{text}");
}
