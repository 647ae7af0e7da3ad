//! The configuration file: `--config` / `MALIPO_CONFIG` (TOML) under the
//! environment under flags, `malipo config show` with secrets redacted, and
//! a server that honours what the file says.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, code};

const SMTP_PASSWORD: &str = "hunter2-smtp-secret";
const METRICS_TOKEN: &str = "metrics-token-secret-value";

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("malipo.toml");
    std::fs::write(&path, body).expect("write malipo.toml");
    path
}

/// `malipo` with only the variables a test sets.
fn malipo() -> Command {
    crate::helpers::malipo_bare()
}

fn setting<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["settings"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing from config show: {shown}"))
}

#[test]
fn config_show_layers_file_env_and_flags_and_redacts_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:9931\"\ntenant_cache = 7\nauth_rate_per_minute = 11\n\
             smtp_url = \"smtp://user:{SMTP_PASSWORD}@mail.test:25\"\nmetrics_token = \"{METRICS_TOKEN}\"\n\
             outbound_allow = [\"hooks.test\", \"127.0.0.1:9\"]\n"
        ),
    );
    let output = malipo()
        .arg("--config")
        .arg(&file)
        .args(["--data-dir", "/srv/malipo-flag", "config", "show", "--json"])
        .env("MALIPO_TENANT_CACHE", "9")
        .output()
        .expect("run config show");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains(SMTP_PASSWORD) && !text.contains(METRICS_TOKEN),
        "{text}"
    );
    let shown: Value = serde_json::from_str(&text).expect("config show --json is JSON");

    let expect = |name: &str, value: Value, source: &str| {
        let row = setting(&shown, name);
        assert_eq!(
            (&row["value"], row["source"].as_str()),
            (&value, Some(source)),
            "{name}"
        );
    };
    expect("MALIPO_LISTEN", json!("127.0.0.1:9931"), "file");
    expect("MALIPO_AUTH_RATE_PER_MINUTE", json!("11"), "file");
    expect(
        "MALIPO_OUTBOUND_ALLOW",
        json!("hooks.test,127.0.0.1:9"),
        "file",
    );
    expect("MALIPO_TENANT_CACHE", json!("9"), "env");
    expect("MALIPO_DATA_DIR", json!("/srv/malipo-flag"), "flag");
    expect("MALIPO_ACCESS_TOKEN_TTL_SECS", json!("900"), "default");
    expect("MALIPO_SMTP_URL", json!("<redacted>"), "file");
    expect("MALIPO_METRICS_TOKEN", json!("<redacted>"), "file");
    expect("MALIPO_JWT_SECRET", Value::Null, "unset");
    assert_eq!(setting(&shown, "MALIPO_LISTEN")["file_key"], "listen");

    // The table form, with the file named by MALIPO_CONFIG this time.
    let output = malipo()
        .args(["config", "show"])
        .env("MALIPO_CONFIG", &file)
        .env(
            "MALIPO_SMTP_URL",
            format!("smtp://u:{SMTP_PASSWORD}-env@x:25"),
        )
        .output()
        .expect("run config show");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(!table.contains(SMTP_PASSWORD), "{table}");
    let smtp = table
        .lines()
        .find(|l| l.starts_with("MALIPO_SMTP_URL "))
        .unwrap_or_else(|| panic!("no MALIPO_SMTP_URL line: {table}"));
    assert!(
        smtp.contains("env") && smtp.contains("<redacted>"),
        "{smtp}"
    );
    assert!(table.contains("127.0.0.1:9931"), "{table}");
}

#[test]
fn a_bad_configuration_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (body, expected) in [
        ("lisen = \"0.0.0.0:1\"\n", "unknown key `lisen`"),
        ("listen = \n", "malipo.toml"),
        ("[listen]\nport = 1\n", "`listen`"),
    ] {
        let file = write_config(dir.path(), body);
        let output = malipo()
            .arg("--config")
            .arg(&file)
            .args(["config", "show"])
            .output()
            .expect("run malipo");
        assert!(!output.status.success(), "{body:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{body:?}: {stderr}");
    }
    let missing = malipo()
        .args(["--config", "/nonexistent/malipo.toml", "config", "show"])
        .output()
        .expect("run malipo");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/malipo.toml"));
}

/// A POST of `bytes` to the login route: its status and error code.
async fn post_body(app: &TestApp, bytes: usize) -> (u16, String) {
    let body = json!({"email": "someone@example.com", "password": "p".repeat(bytes)}).to_string();
    let response = app
        .client
        .request(Method::POST, format!("{}/api/v1/auth/login", app.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let json: Value = response.json().await.unwrap_or(Value::Null);
    (status, code(&json).to_string())
}

#[tokio::test]
async fn the_server_honours_the_file_and_the_environment_beats_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `listen` in the file loses to the test harness's `--listen 127.0.0.1:0`.
    let file = write_config(
        dir.path(),
        "max_body_bytes = 2048\nlisten = \"127.0.0.1:1\"\n",
    );
    let file = file.to_string_lossy().to_string();
    let app = TestApp::spawn_with(Options::default().with_env("MALIPO_CONFIG", &file)).await;
    assert!(
        !app.base.ends_with(":1"),
        "the flag lost to the file: {}",
        app.base
    );
    assert_eq!(
        post_body(&app, 4096).await,
        (413, "payload_too_large".into())
    );
    app.stop();

    let app = TestApp::spawn_with(
        Options::default()
            .with_env("MALIPO_CONFIG", &file)
            .with_env("MALIPO_MAX_BODY_BYTES", "1048576"),
    )
    .await;
    let (status, error) = post_body(&app, 4096).await;
    assert_ne!(status, 413, "the environment lost to the file ({error})");
}
