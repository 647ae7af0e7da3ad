//! Authentication: login failures, forged tokens, refresh rotation and
//! reuse, password reset, deactivation, API keys, sessions, bootstrap and
//! tenant suspension.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

fn server_key(app: &TestApp) -> Vec<u8> {
    let text = std::fs::read_to_string(app.data_dir.join("jwt.key")).expect("jwt.key");
    hex::decode(text.trim()).expect("hex key")
}

fn sign(claims: &Value, key: &[u8], alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).expect("sign")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_alike() {
    let app = TestApp::spawn().await;
    let owner = app.register("Alike").await;
    let (wrong_status, wrong) = app.login(&owner.email, "not the right password").await;
    let (unknown_status, unknown) = app.login("nobody-here@example.com", PASSWORD).await;
    assert_eq!(wrong_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(wrong["error"]["code"], unknown["error"]["code"]);
    assert_eq!(wrong["error"]["message"], unknown["error"]["message"]);
    let (ok, body) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(ok, 200, "{body}");
    assert_eq!(body["tenant"]["id"], owner.tenant_id.as_str());
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register("Forgery").await;
    let key = server_key(&app);
    let real = claims_of(&owner.access_token);
    // A token we sign ourselves with the right key and claims works, so
    // every refusal below is about the one thing changed.
    let good = sign(&real, &key, Algorithm::HS256);
    assert_eq!(app.get("/api/v1/stores", &Auth::Bearer(good)).await.0, 200);

    let mut expired = real.clone();
    expired["exp"] = json!(now() - 120);
    let mut wrong_audience = real.clone();
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = real.clone();
    wrong_issuer["iss"] = json!("evil");
    let mut no_subject = real.clone();
    no_subject.as_object_mut().expect("object").remove("sub");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = URL_SAFE_NO_PAD.encode(real.to_string());
    let mut tampered_claims = real.clone();
    tampered_claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let valid_parts: Vec<&str> = owner.access_token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        valid_parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        valid_parts[2]
    );
    let forged = [
        ("expired", sign(&expired, &key, Algorithm::HS256)),
        (
            "wrong audience",
            sign(&wrong_audience, &key, Algorithm::HS256),
        ),
        ("wrong issuer", sign(&wrong_issuer, &key, Algorithm::HS256)),
        ("no subject", sign(&no_subject, &key, Algorithm::HS256)),
        ("alg none", format!("{none_header}.{none_payload}.")),
        ("other algorithm", sign(&real, &key, Algorithm::HS512)),
        (
            "other key",
            sign(
                &real,
                b"a-completely-different-secret-key-of-enough-length",
                Algorithm::HS256,
            ),
        ),
        ("tampered payload", tampered),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in forged {
        let (status, body) = app
            .get("/api/v1/stores", &Auth::Bearer(token.clone()))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(code(&body), "unauthorized", "{what}");
        // `/mcp` refuses the same tokens (audience included) with a challenge.
        let answer = app
            .client
            .post(format!("{}/mcp", app.base))
            .bearer_auth(&token)
            .header("Accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .expect("post /mcp");
        assert_eq!(answer.status(), 401, "{what} on /mcp");
        let challenge = answer.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let owner = app.register("Rotation").await;
    let (status, first) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let next_refresh = first["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let next_access = first["access_token"].as_str().expect("access").to_string();
    assert_ne!(next_refresh, owner.refresh_token);
    assert_eq!(
        app.get("/api/v1/stores", &Auth::Bearer(next_access.clone()))
            .await
            .0,
        200
    );

    // The spent token comes back: the whole family dies.
    let (status, reused) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(status, 401, "{reused}");
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": next_refresh}),
        )
        .await;
    assert_eq!(status, 401, "the successor must be revoked with its family");
    assert_eq!(
        app.get("/api/v1/stores", &Auth::Bearer(next_access))
            .await
            .0,
        401
    );
    assert_eq!(app.get("/api/v1/stores", &owner.auth()).await.0, 401);

    // Another login is a new family and works.
    let (status, _) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reset_token_is_mailed_never_answered_and_works_once() {
    let app = TestApp::spawn().await;
    let owner = app.register("Reset").await;
    let (known_status, known) = app
        .post(
            "/api/v1/auth/forgot-password",
            &Auth::None,
            json!({"email": owner.email}),
        )
        .await;
    let (unknown_status, unknown) = app
        .post(
            "/api/v1/auth/forgot-password",
            &Auth::None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!((known_status, unknown_status), (202, 202));
    assert_eq!(
        known, unknown,
        "the answer must not reveal whether the account exists"
    );
    let mail = app.wait_for_mail(&owner.email, "password_reset").await;
    let token = TestApp::token_in(&mail);
    assert!(!known.to_string().contains(&token));
    assert!(
        app.last_mail("ghost@example.com", "password_reset")
            .is_none()
    );

    let new_password = "a brand new passphrase";
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            &Auth::None,
            json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.login(&owner.email, PASSWORD).await.0, 401);
    assert_eq!(app.login(&owner.email, new_password).await.0, 200);
    assert_eq!(
        app.get("/api/v1/stores", &owner.auth()).await.0,
        401,
        "a reset ends old sessions"
    );
    let (status, again) = app
        .post(
            "/api/v1/auth/reset-password",
            &Auth::None,
            json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(app.login(&owner.email, new_password).await.0, 200);
}

#[tokio::test]
async fn deactivated_member_loses_tokens_and_keys_at_once() {
    let app = TestApp::spawn().await;
    let owner = app.register("Deactivate").await;
    let manager = app.add_member(&owner, "Manager", None).await;
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            &manager.auth(),
            json!({"name": "till", "permissions": ["stores.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = Auth::ApiKey(key["key"].as_str().expect("secret").to_string());
    assert_eq!(app.get("/api/v1/stores", &manager.auth()).await.0, 200);
    assert_eq!(app.get("/api/v1/stores", &key).await.0, 200);

    let path = format!("/api/v1/users/{}", manager.user_id);
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            &owner.auth(),
            Some(json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "deactivated");
    assert_eq!(app.get("/api/v1/stores", &manager.auth()).await.0, 401);
    assert_eq!(app.get("/api/v1/stores", &key).await.0, 401);
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": manager.refresh_token}),
        )
        .await;
    assert_eq!(status, 401);

    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            &owner.auth(),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/stores", &key).await.0, 200);
    // Nobody changes their own standing.
    let own = format!("/api/v1/users/{}", owner.user_id);
    let (status, _) = app
        .call(
            Method::PATCH,
            &own,
            &owner.auth(),
            Some(json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn api_keys_hold_a_subset_of_their_makers_permissions() {
    let app = TestApp::spawn().await;
    let owner = app.register("Keys").await;
    let manager = app.add_member(&owner, "Manager", None).await;
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            &manager.auth(),
            json!({"name": "too much", "permissions": ["stores.create"]}),
        )
        .await;
    assert_eq!(status, 403, "a manager may not mint stores.create: {body}");
    let (status, _) = app
        .post(
            "/api/v1/api-keys",
            &manager.auth(),
            json!({"name": "bogus", "permissions": ["no.such"]}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "past", "permissions": ["stores.read"], "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 422);

    let (status, created) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "reader", "permissions": ["stores.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().expect("key").to_string();
    let key = Auth::ApiKey(secret.clone());
    assert_eq!(app.get("/api/v1/stores", &key).await.0, 200);
    assert_eq!(
        app.get("/api/v1/stores", &Auth::Bearer(secret.clone()))
            .await
            .0,
        200,
        "keys work as bearer too"
    );
    let (status, body) = app
        .post("/api/v1/stores", &key, json!({"name": "Nope"}))
        .await;
    assert_eq!(
        status, 403,
        "the key lacks stores.create though its maker holds it: {body}"
    );

    let (status, list) = app.get("/api/v1/api-keys", &owner.auth()).await;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once only"
    );
    assert_eq!(list["api_keys"].as_array().map(Vec::len), Some(1));
    let conn = rusqlite::Connection::open(app.data_dir.join("control.db")).expect("control.db");
    let stored: String = conn
        .query_row("SELECT key_hash FROM api_keys", [], |r| r.get(0))
        .expect("row");
    assert_ne!(stored, secret, "keys are stored hashed");

    let id = created["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/stores", &key).await.0, 401);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn logout_and_password_change_end_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.register("Sessions").await;
    let (_, second) = app.login(&owner.email, PASSWORD).await;
    let second = Session::from_auth_response(&second, &owner.email);
    let (_, third) = app.login(&owner.email, PASSWORD).await;
    let third = Session::from_auth_response(&third, &owner.email);

    let (status, _) = app
        .post("/api/v1/auth/logout", &third.auth(), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/me", &third.auth()).await.0, 401);

    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            &owner.auth(),
            Some(json!({"password": "another passphrase!", "current_password": "wrong one"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            &owner.auth(),
            Some(json!({"password": "another passphrase!", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.get("/api/v1/me", &owner.auth()).await.0,
        200,
        "the changing session stays"
    );
    assert_eq!(
        app.get("/api/v1/me", &second.auth()).await.0,
        401,
        "other sessions end"
    );
    assert_eq!(app.login(&owner.email, "another passphrase!").await.0, 200);
}

#[tokio::test]
async fn bootstrap_super_admin_suspends_and_restores_a_tenant() {
    let app = TestApp::spawn().await;
    let owner = app.register("Suspendable").await;
    let run_bootstrap = |email: &str| {
        crate::helpers::malipo_command()
            .args(["bootstrap", "--email", email, "--data-dir"])
            .arg(&app.data_dir)
            .env("MALIPO_BOOTSTRAP_PASSWORD", "super admin passphrase")
            .output()
            .expect("run bootstrap")
    };
    let first = run_bootstrap("root@example.com");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run_bootstrap("second@example.com");
    assert!(!second.status.success(), "a second bootstrap must refuse");

    let (status, admin) = app
        .login("root@example.com", "super admin passphrase")
        .await;
    assert_eq!(status, 200, "{admin}");
    assert!(admin["tenant"].is_null());
    let admin = Auth::Bearer(admin["access_token"].as_str().expect("token").to_string());
    let (status, tenants) = app.get("/api/v1/admin/tenants", &admin).await;
    assert_eq!(status, 200);
    assert!(tenants.to_string().contains(&owner.tenant_id));
    assert_eq!(
        app.get("/api/v1/admin/tenants", &owner.auth()).await.0,
        403,
        "owners are not super-admins"
    );
    assert_eq!(
        app.get("/api/v1/stores", &admin).await.0,
        403,
        "a super-admin token has no tenant"
    );

    let path = format!("/api/v1/admin/tenants/{}", owner.tenant_id);
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!((status, code(&body)), (403, "tenant_suspended"), "{body}");
    assert_eq!(app.login(&owner.email, PASSWORD).await.0, 403);
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/stores", &owner.auth()).await.0, 200);
    let missing = format!("/api/v1/admin/tenants/{}", uuid::Uuid::new_v4());
    assert_eq!(
        app.call(
            Method::PATCH,
            &missing,
            &admin,
            Some(json!({"status": "active"}))
        )
        .await
        .0,
        404
    );

    let conn = rusqlite::Connection::open(app.data_dir.join("control.db")).expect("control.db");
    let suspended: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM platform_audit WHERE operation = 'tenant.suspended'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(suspended, 1);
}

#[tokio::test]
async fn register_refuses_a_taken_email_and_bad_input() {
    let app = TestApp::spawn().await;
    let owner = app.register("Taken").await;
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            &Auth::None,
            json!({"email": owner.email.to_uppercase(), "password": PASSWORD, "full_name": "X", "organization_name": "Y"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app
        .post(
            "/api/v1/auth/register",
            &Auth::None,
            json!({"email": "short@example.com", "password": "short", "full_name": "X", "organization_name": "Y"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            "/api/v1/auth/register",
            &Auth::None,
            json!({"email": "not-an-email", "password": PASSWORD, "full_name": "X", "organization_name": "Y"}),
        )
        .await;
    assert_eq!(status, 422);
    let tenants = std::fs::read_dir(app.data_dir.join("tenants"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .count();
    assert_eq!(tenants, 1, "refused registrations leave no tenant file");
    let _ = Options::default();
}
