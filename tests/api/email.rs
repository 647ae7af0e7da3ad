//! Email end to end: the real binary, its Daraja emulator, the
//! `notifications` plugin and a test-owned SMTP sink (`tests/smtp/sink.py`,
//! aiosmtpd in the repository's `.venv`). Receipts carry the tenant's
//! branding and follow its template overrides; mail waits while no SMTP
//! server is configured and is sent once one is; a crash between a payment's
//! commit and any delivery sends nothing twice; invitations arrive with a
//! token that works; a broken template is refused and not stored.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};
use crate::mpesa::pay;
use crate::webhooks::Receiver;

/// An SMTP server on loopback that keeps every message it accepts; killed
/// on drop.
pub struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sink {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("sink dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/smtp/sink.py");
        let mut child = crate::helpers::python_command()
            .arg(script)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink (python with aiosmtpd; run scripts/test)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sink port line");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"));
        Self { child, dir, port }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message so far, in no particular order.
    fn messages(&self) -> Vec<Value> {
        std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .map(|path| {
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read message"))
                    .expect("message json")
            })
            .collect()
    }

    pub fn to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m["rcpt_tos"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t == address))
            })
            .collect()
    }

    /// Waits until `address` got `count` messages; answers them.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let got = self.to(address);
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{address} got {:?}, wanted {count} messages",
            self.to(address)
        );
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator, fast jobs and event passes, and SMTP at `smtp` (none: no
/// SMTP server configured, whatever the environment says).
/// The notifications plugin's job that hands due email to the host.
const SEND_JOB: &str = "emails.send";

fn options(smtp: Option<&str>) -> Options {
    Options::daraja_sim()
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
        .with_env("MALIPO_EVENT_INTERVAL_MS", "200")
        .with_env("MALIPO_SMTP_URL", smtp.unwrap_or(""))
        .with_env("MALIPO_SMTP_FROM", "Malipo Test <mail@malipo.test>")
}

async fn put(app: &TestApp, path: &str, who: &Session, body: Value) -> (u16, Value) {
    app.call(Method::PUT, path, &who.auth(), Some(body)).await
}

/// The tenant's email queue, oldest first.
fn queue(app: &TestApp, tenant: &str) -> Vec<Value> {
    let conn = rusqlite::Connection::open(app.tenant_file(tenant)).expect("open tenant file");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    let mut stmt = conn
        .prepare(
            "SELECT event_id, template, recipient, subject, status, attempts, message_id
               FROM notifications_emails ORDER BY created_at, rowid",
        )
        .expect("prepare");
    stmt.query_map([], |row| {
        Ok(json!({
            "event_id": row.get::<_, String>(0)?, "template": row.get::<_, String>(1)?,
            "recipient": row.get::<_, String>(2)?, "subject": row.get::<_, String>(3)?,
            "status": row.get::<_, String>(4)?, "attempts": row.get::<_, i64>(5)?,
            "message_id": row.get::<_, String>(6)?,
        }))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn count(app: &TestApp, tenant: &str, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(app.tenant_file(tenant)).expect("open tenant file");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}

async fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the payment's transaction completed (the emulator's callback).
async fn completed(app: &TestApp, owner: &Session, txn: &str) {
    for _ in 0..200 {
        let (_, body) = app
            .get(&format!("/api/v1/mpesa/transactions/{txn}"), &owner.auth())
            .await;
        if body["transaction"]["status"] == "completed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("transaction {txn} did not complete");
}

#[tokio::test]
async fn a_receipt_carries_the_branding_and_an_override_changes_the_next_subject() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(options(Some(&sink.url()))).await;
    let owner = app.register("Duka Ltd").await;
    let member = app.add_member(&owner, "Member", None).await;
    let branding = json!({
        "display_name": "Duka La Mama",
        "logo_url": "https://cdn.example.com/duka/logo.png",
        "primary_colour": "#ab1234",
        "secondary_colour": "#FAFAF0",
        "contact_email": "accounts@duka.example"
    });
    // Only those holding settings.manage change it; any member reads it.
    let (status, _) = put(&app, "/api/v1/tenant/branding", &member, branding.clone()).await;
    assert_eq!(status, 403);
    let (status, saved) = put(&app, "/api/v1/tenant/branding", &owner, branding).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["primary_colour"], "#AB1234");
    let (status, read) = app.get("/api/v1/tenant/branding", &member.auth()).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["display_name"], "Duka La Mama");
    let (status, bad) = put(
        &app,
        "/api/v1/tenant/branding",
        &owner,
        json!({"primary_colour": "red", "logo_url": "javascript:alert(1)"}),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(code(&bad), "validation_failed");

    app.configure_mpesa(&owner).await;
    pay(&app, &owner, 120).await;
    let receipt = sink.wait_for("accounts@duka.example", 1).await.remove(0);
    assert!(
        receipt["subject"]
            .as_str()
            .is_some_and(|s| s.contains("KES 120")),
        "{receipt}"
    );
    assert_eq!(receipt["from"], "Malipo Test <mail@malipo.test>");
    assert_eq!(receipt["content_type"], "multipart/alternative");
    let html = receipt["html"].as_str().expect("an HTML part");
    for wanted in [
        "Duka La Mama",
        "https://cdn.example.com/duka/logo.png",
        "#AB1234",
    ] {
        assert!(html.contains(wanted), "{wanted} not in {html}");
    }
    assert!(
        receipt["text"]
            .as_str()
            .is_some_and(|t| t.contains("KES 120")),
        "{receipt}"
    );
    let message_id = receipt["message_id"].as_str().unwrap_or_default();
    assert!(
        message_id.starts_with('<') && message_id.ends_with(".payment_receipt@malipo>"),
        "{message_id}"
    );
    // The member got their invitation only: the organization's mail goes to
    // its contact address.
    let theirs = sink.to(&member.email);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(
        theirs[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("invited")),
        "{theirs:?}"
    );

    let (status, listed) = app
        .get("/api/v1/notification-templates", &owner.auth())
        .await;
    assert_eq!(status, 200, "{listed}");
    // Password-reset and invitation mail is the platform's own (issue 12
    // §3): not among the organization's templates.
    assert_eq!(listed["templates"].as_array().map(Vec::len), Some(8));
    let (status, _) = put(
        &app,
        "/api/v1/notification-templates/payment_receipt",
        &member,
        json!({"subject": "x", "text": "y"}),
    )
    .await;
    assert_eq!(status, 403, "members may not change templates");
    let (status, custom) = put(
        &app,
        "/api/v1/notification-templates/payment_receipt",
        &owner,
        json!({
            "subject": "Asante! KES {{ data.amount }} for {{ branding.display_name }}",
            "text": "Received {{ data.amount }} from {{ data.phone_number }}.",
            "html": "{% extends \"layout.html\" %}{% block content %}<p>Asante sana: {{ data.amount }}</p>{% endblock %}"
        }),
    )
    .await;
    assert_eq!(status, 200, "{custom}");
    assert_eq!(custom["overridden"], true);
    pay(&app, &owner, 130).await;
    let both = sink.wait_for("accounts@duka.example", 2).await;
    let second = both
        .iter()
        .find(|m| m["subject"] != receipt["subject"])
        .expect("a second receipt");
    assert_eq!(second["subject"], "Asante! KES 130 for Duka La Mama");
    assert!(
        second["html"]
            .as_str()
            .is_some_and(|h| h.contains("Asante sana: 130") && h.contains("#AB1234")),
        "{second}"
    );

    // Restoring the default brings the default subject back.
    let (status, restored) = app
        .call(
            Method::DELETE,
            "/api/v1/notification-templates/payment_receipt",
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["overridden"], false);
    assert!(
        restored["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("{{ term.payment|capfirst }} received")),
        "{restored}"
    );
}

#[tokio::test]
async fn mail_waits_without_smtp_and_is_sent_once_after_a_restart_with_it() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(options(None)).await;
    let owner = app.register("Patient Ltd").await;
    app.configure_mpesa(&owner).await;
    pay(&app, &owner, 140).await;
    wait_until(
        || queue(&app, &owner.tenant_id).len() == 1,
        "the receipt to be queued",
    )
    .await;
    // Several job runs later it is still queued, and no attempt was counted.
    let runs = app.plugin_calls(SEND_JOB).await;
    app.wait_for_plugin_calls(SEND_JOB, runs, 2).await;
    let queued = queue(&app, &owner.tenant_id);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["status"], "queued");
    assert_eq!(queued[0]["attempts"], 0);
    assert_eq!(queued[0]["template"], "payment_receipt");
    // No contact address: the earliest member, the owner.
    assert_eq!(queued[0]["recipient"], owner.email.as_str());

    let dir = app.data_dir.clone();
    let temp = app.stop();
    let again = TestApp::start(
        &dir,
        &options(Some(&sink.url())).with_env("MALIPO_JOB_SWEEP_SECS", "1"),
    )
    .await;
    let got = sink.wait_for(&owner.email, 1).await;
    assert_eq!(got[0]["message_id"], queued[0]["message_id"]);
    let runs = again.plugin_calls(SEND_JOB).await;
    again.wait_for_plugin_calls(SEND_JOB, runs, 2).await;
    assert_eq!(sink.to(&owner.email).len(), 1, "sent exactly once");
    let after = queue(&again, &owner.tenant_id);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["status"], "sent");
    assert_eq!(after[0]["attempts"], 1);
    drop(again);
    drop(temp);
}

#[tokio::test]
async fn a_crash_after_the_commit_sends_one_email_one_notification_one_webhook() {
    let sink = Sink::start();
    let receiver = Receiver::start(vec![]).await;
    // Event delivery off and jobs far apart: the payment commits, nothing more.
    let frozen = options(Some(&sink.url()))
        .with_env("MALIPO_EVENT_INTERVAL_MS", "0")
        .with_env("MALIPO_JOB_INTERVAL_SECS", "3600")
        .with_env("MALIPO_OUTBOUND_ALLOW", "127.0.0.1");
    let app = TestApp::spawn_with(frozen).await;
    let owner = app.register("Crashy Ltd").await;
    app.configure_mpesa(&owner).await;
    crate::webhooks::subscribe(&app, &owner, &receiver.url, json!(["payment.completed"])).await;
    let txn = pay(&app, &owner, 150).await;
    completed(&app, &owner, &txn).await;
    let tenant = owner.tenant_id.clone();
    assert_eq!(
        count(
            &app,
            &tenant,
            "SELECT COUNT(*) FROM outbox WHERE name = 'payment.completed' AND delivered_at IS NULL"
        ),
        1
    );
    assert!(queue(&app, &tenant).is_empty());
    // SIGKILL: no shutdown, no flush.
    let dir = app.data_dir.clone();
    let temp = app.stop();
    assert!(sink.messages().is_empty());
    assert!(receiver.received().is_empty());

    let normal = options(Some(&sink.url()))
        .with_env("MALIPO_JOB_SWEEP_SECS", "1")
        .with_env("MALIPO_OUTBOUND_ALLOW", "127.0.0.1");
    let again = TestApp::start(&dir, &normal).await;
    sink.wait_for(&owner.email, 1).await;
    receiver.wait_for(1).await;
    // Several more passes and job runs: nothing is repeated.
    let (mails, hooks) = (
        again.plugin_calls(SEND_JOB).await,
        again.plugin_calls(crate::webhooks::DELIVER_JOB).await,
    );
    again.wait_for_plugin_calls(SEND_JOB, mails, 2).await;
    again
        .wait_for_plugin_calls(crate::webhooks::DELIVER_JOB, hooks, 2)
        .await;
    assert_eq!(sink.to(&owner.email).len(), 1, "{:?}", sink.messages());
    let hooks = receiver.received();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let (status, inbox) = again.get("/api/v1/notifications", &owner.auth()).await;
    assert_eq!(status, 200, "{inbox}");
    let payments: Vec<&Value> = inbox["notifications"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|n| n["kind"] == "payment.completed")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(payments.len(), 1, "{inbox}");
    assert_eq!(
        count(
            &again,
            &tenant,
            "SELECT COUNT(*) FROM notifications_deliveries"
        ),
        1
    );
    drop(again);
    drop(temp);
}

#[tokio::test]
async fn an_invitation_arrives_by_email_with_a_token_that_works() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(options(Some(&sink.url()))).await;
    let owner = app.register("Invite Ltd").await;
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    let role_id = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("Member role")
        .to_string();
    let invitee = format!("new-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, invitation) = app
        .post(
            "/api/v1/invitations",
            &owner.auth(),
            json!({"email": invitee, "role_id": role_id}),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    let mail = sink.wait_for(&invitee, 1).await.remove(0);
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Invite Ltd")),
        "{mail}"
    );
    let text = mail["text"].as_str().expect("text part");
    let token = TestApp::token_in(text);
    assert!(token.starts_with("mli_"), "{token}");
    assert!(
        text.contains(&format!("{}/accept-invitation?token={token}", app.base)),
        "{text}"
    );
    assert!(!invitation.to_string().contains(&token));
    // The organization's owner got nothing of it, and no webhook could.
    assert!(sink.to(&owner.email).is_empty());

    let (status, accepted) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": token, "password": PASSWORD, "full_name": "New Person"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["tenant"]["id"], owner.tenant_id.as_str());
    let joined = Session::from_auth_response(&accepted, &invitee);
    assert_eq!(app.get("/api/v1/stores", &joined.auth()).await.0, 200);
}

#[tokio::test]
async fn a_broken_template_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn_with(options(None)).await;
    let owner = app.register("Careful Templates Ltd").await;
    let (status, body) = put(
        &app,
        "/api/v1/notification-templates/payment_receipt",
        &owner,
        json!({"subject": "Paid {{ data.amount", "text": "ok"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "validation_failed");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("subject") && message.contains("syntax error"),
        "{message}"
    );
    let (status, body) = put(
        &app,
        "/api/v1/notification-templates/payment_receipt",
        &owner,
        json!({"subject": "ok", "text": "ok", "html": "{% for x in %}"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = put(
        &app,
        "/api/v1/notification-templates/no_such_template",
        &owner,
        json!({"subject": "ok", "text": "ok"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = put(
        &app,
        "/api/v1/notification-templates/payment_receipt",
        &owner,
        json!({"subject": "ok", "text": "x".repeat(30_000)}),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let (status, current) = app
        .get(
            "/api/v1/notification-templates/payment_receipt",
            &owner.auth(),
        )
        .await;
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["overridden"], false);
    assert!(
        current["variables"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == "data.amount")),
        "{current}"
    );
    assert_eq!(
        count(
            &app,
            &owner.tenant_id,
            "SELECT COUNT(*) FROM notifications_templates"
        ),
        0
    );
}

#[tokio::test]
async fn a_refused_address_fails_for_good_and_is_not_tried_again() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(options(Some(&sink.url()))).await;
    let owner = app.register("Refused Ltd").await;
    let (status, body) = put(
        &app,
        "/api/v1/tenant/branding",
        &owner,
        json!({"contact_email": "reject-me@refused.example"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.configure_mpesa(&owner).await;
    pay(&app, &owner, 160).await;
    wait_until(
        || {
            queue(&app, &owner.tenant_id)
                .first()
                .is_some_and(|m| m["status"] == "failed")
        },
        "the refused email to fail",
    )
    .await;
    let runs = app.plugin_calls(SEND_JOB).await;
    app.wait_for_plugin_calls(SEND_JOB, runs, 2).await;
    let rows = queue(&app, &owner.tenant_id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["attempts"], 1, "a 5xx is not retried");
    assert!(sink.messages().is_empty());
}
