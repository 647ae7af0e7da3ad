//! `TestApp`: starts the real binary and talks to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

/// Where the test-only guest components were built.
pub const TEST_GUESTS_DIR: &str = env!("MALIPO_TEST_GUESTS_DIR");

/// A password that meets the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// The `malipo` binary with none of the caller's `MALIPO_*` variables
/// (nor `RUST_LOG`): what a test runs depends only on what it sets, not on
/// `MALIPO_DATA_DIR=… cargo test` in the developer's shell.
pub fn malipo_bare() -> Command {
    without_malipo_env(Command::new(env!("CARGO_BIN_EXE_malipo")))
}

/// `command` without the caller's `MALIPO_*` variables and `RUST_LOG`.
fn without_malipo_env(mut command: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("MALIPO_") || k == "RUST_LOG")
        {
            command.env_remove(key);
        }
    }
    command
}

/// The test Python ([`test_python`]) without the caller's `MALIPO_*`
/// variables: what it starts (`malipo mcp` over stdio) sees only the
/// test's.
pub fn python_command() -> Command {
    without_malipo_env(Command::new(test_python()))
}

/// [`malipo_bare`] with the suite's shared compiled-plugin cache and quiet
/// logs: how every test starts the binary (server or CLI).
pub fn malipo_command() -> Command {
    let mut command = malipo_bare();
    command
        .env(
            "MALIPO_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        )
        .env("RUST_LOG", "warn");
    command
}

/// Opens a SQLite file of the server's (it may be writing: waits for locks).
pub fn open(path: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The built-in Daraja emulator's base URL (`--daraja-sim` only).
    pub emulator: Option<String>,
    child: Child,
    _temp: Option<tempfile::TempDir>,
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Install the test-only `sandbox` plugin into `<data-dir>/plugins/`.
    pub sandbox: bool,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// Marker in [`Options::env`]: start the built-in Daraja emulator
/// (`--daraja-sim`). A marker rather than a field so that the struct
/// literals elsewhere keep compiling; it is turned into the flag, not
/// passed on.
pub const DARAJA_SIM: &str = "MALIPO_DARAJA_SIM";
/// Marker in [`Options::env`]: the emulator's callback delay in ms
/// (`--daraja-sim-delay-ms`, 150 if absent).
pub const DARAJA_SIM_DELAY_MS: &str = "MALIPO_DARAJA_SIM_DELAY_MS";

impl Options {
    /// Starts the built-in Daraja emulator, calling back after 150 ms.
    pub fn daraja_sim() -> Self {
        Self::daraja_sim_delay(150)
    }

    /// Starts the built-in Daraja emulator, calling back after `delay_ms`.
    pub fn daraja_sim_delay(delay_ms: u64) -> Self {
        Self {
            env: vec![
                (DARAJA_SIM.to_string(), "true".to_string()),
                (DARAJA_SIM_DELAY_MS.to_string(), delay_ms.to_string()),
            ],
            ..Self::default()
        }
    }

    /// Adds an environment variable (replacing an earlier one of that name).
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Whether the emulator is wanted (see [`DARAJA_SIM`]).
    pub fn daraja_sim_enabled(&self) -> bool {
        self.env
            .iter()
            .any(|(k, v)| k == DARAJA_SIM && !matches!(v.as_str(), "" | "0" | "false"))
    }

    fn daraja_sim_delay_ms(&self) -> u64 {
        self.env
            .iter()
            .find(|(k, _)| k == DARAJA_SIM_DELAY_MS)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(150)
    }
}

impl TestApp {
    /// A server on a fresh data directory.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A server on a fresh data directory with options.
    pub async fn spawn_with(options: Options) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        if options.sandbox {
            let plugins = dir.join("plugins");
            std::fs::create_dir_all(&plugins).expect("plugins dir");
            std::fs::copy(
                Path::new(TEST_GUESTS_DIR).join("malipo_test_sandbox.wasm"),
                plugins.join("malipo_test_sandbox.wasm"),
            )
            .expect("copy sandbox plugin");
        }
        let mut app = Self::start(&dir, &options).await;
        app._temp = Some(temp);
        app
    }

    /// A server on an existing data directory (kept by the caller).
    pub async fn start(dir: &Path, options: &Options) -> Self {
        let mut command = malipo_command();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let daraja_sim = options.daraja_sim_enabled();
        if daraja_sim {
            command
                .arg("--daraja-sim")
                .arg("--daraja-sim-delay-ms")
                .arg(options.daraja_sim_delay_ms().to_string());
        }
        for (key, value) in &options.env {
            if key != DARAJA_SIM && key != DARAJA_SIM_DELAY_MS {
                command.env(key, value);
            }
        }
        let mut child = command.spawn().expect("start malipo");
        let stdout = child.stdout.take().expect("stdout");
        let (base, second) = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).expect("read first line");
            let mut second = String::new();
            if daraja_sim {
                reader.read_line(&mut second).expect("read second line");
            }
            // Keep reading, so the server never writes into a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            (line, second)
        })
        .await
        .expect("join");
        let emulator = daraja_sim.then(|| {
            let url = second
                .strip_prefix("daraja emulator at ")
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|url| url.starts_with("http://"))
                .unwrap_or_else(|| {
                    panic!("malipo did not print the emulator's address: {second:?}")
                });
            url.trim_end_matches('/').to_string()
        });
        let addr = base
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("malipo did not print its address: {base:?}"))
            .to_string();
        Self {
            base: format!("http://{addr}"),
            data_dir: dir.to_path_buf(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            emulator,
            child,
            _temp: None,
        }
    }

    /// Stops the server, keeping its data directory.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self._temp.take()
    }

    /// Asks the server to stop the way an operator does (SIGTERM) and waits
    /// for it to exit; answers its exit status and its data directory.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Option<tempfile::TempDir>) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = self.child.wait().expect("wait for malipo");
        (status, self._temp.take())
    }

    /// Sends a request; answers status and JSON body (`Value::Null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, auth, body, &[]).await
    }

    /// Like [`Self::call`], with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        request = auth.apply(request);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> (u16, Value) {
        self.call(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    /// Registers a new organization and answers its owner's session.
    pub async fn register(&self, org: &str) -> Session {
        let email = format!(
            "owner-{}@{}.example",
            uuid::Uuid::new_v4().simple(),
            slug(org)
        );
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                &Auth::None,
                json!({"email": email, "password": PASSWORD, "full_name": format!("{org} Owner"), "organization_name": org}),
            )
            .await;
        assert_eq!(status, 201, "register: {body}");
        let session = Session::from_auth_response(&body, &email);
        let (status, stores) = self.get("/api/v1/stores", &session.auth()).await;
        assert_eq!(status, 200, "{stores}");
        Session {
            default_store: stores["stores"][0]["id"].as_str().map(str::to_string),
            ..session
        }
    }

    /// Saves Daraja credentials that the built-in emulator accepts
    /// (Safaricom's public sandbox shortcode and passkey).
    pub async fn configure_mpesa(&self, owner: &Session) {
        crate::mpesa::configure(self, owner, crate::mpesa::credentials()).await;
    }

    /// Makes a platform super-admin with `malipo bootstrap` (`email`, which
    /// must be the data directory's first) and logs in.
    pub async fn super_admin_as(&self, email: &str) -> Auth {
        let output = malipo_command()
            .args(["bootstrap", "--email", email, "--data-dir"])
            .arg(&self.data_dir)
            .env("MALIPO_BOOTSTRAP_PASSWORD", "super admin passphrase")
            .output()
            .expect("run bootstrap");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (status, body) = self.login(email, "super admin passphrase").await;
        assert_eq!(status, 200, "{body}");
        Auth::Bearer(body["access_token"].as_str().expect("token").to_string())
    }

    /// Makes a platform super-admin and logs in.
    pub async fn super_admin(&self) -> Auth {
        self.super_admin_as(&format!(
            "root-{}@example.com",
            uuid::Uuid::new_v4().simple()
        ))
        .await
    }

    /// What the built-in Daraja emulator recorded (`GET /simulator/requests`).
    pub async fn emulator_requests(&self) -> Value {
        let emulator = self.emulator.clone().expect("emulator");
        self.client
            .get(format!("{emulator}/simulator/requests"))
            .send()
            .await
            .expect("emulator requests")
            .json()
            .await
            .expect("json")
    }

    /// The sum of the series of metric `name` whose labels include all of
    /// `labels`, scraped from `/metrics` now (0 if none).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200, "GET /metrics");
        let text = response.text().await.expect("metrics");
        metric_value(&text, name, labels)
    }

    /// Waits until [`Self::metric`] reaches `at_least` (the observable
    /// event a test waits on instead of a sleep); answers the reading.
    /// Panics after about ten seconds.
    pub async fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        self.wait_for_metric_within(name, labels, at_least, Duration::from_secs(10))
            .await
    }

    /// [`Self::wait_for_metric`], panicking after `patience`.
    async fn wait_for_metric_within(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        patience: Duration,
    ) -> f64 {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let seen = self.metric(name, labels).await;
            if seen >= at_least {
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {seen}, below {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a plugin operation is executing in a plugin instance
    /// (`malipo_plugin_calls_running`, all tenants).
    pub async fn wait_until_running(&self, operation: &str) {
        self.wait_for_metric(
            "malipo_plugin_calls_running",
            &[("operation", operation)],
            1.0,
        )
        .await;
    }

    /// How many calls of a plugin operation (a job's, say) have finished,
    /// from `/metrics` (`plugin_call_duration_seconds_count`, all tenants).
    pub async fn plugin_calls(&self, operation: &str) -> f64 {
        self.metric(PLUGIN_CALLS_FINISHED, &[("operation", operation)])
            .await
    }

    /// Waits until `runs` more calls of a plugin operation have finished
    /// than `since` (a [`Self::plugin_calls`] reading): the observable
    /// event "nothing more happens" checks wait on, instead of a sleep.
    /// Two runs make sure one started after `since` was read.
    pub async fn wait_for_plugin_calls(&self, operation: &str, since: f64, runs: u32) {
        self.wait_for_metric_within(
            PLUGIN_CALLS_FINISHED,
            &[("operation", operation)],
            since + f64::from(runs),
            Duration::from_secs(30),
        )
        .await;
    }

    /// Logs in.
    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/api/v1/auth/login",
            &Auth::None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// The text of the newest mail of a kind (`invitation`, `password_reset`)
    /// for a recipient: from the email queue of the tenant files (the
    /// notifications plugin's `notifications_emails`), else from control.db's
    /// `mail_outbox` (users without an organization).
    pub fn last_mail(&self, recipient: &str, kind: &str) -> Option<String> {
        let mut newest: Option<(String, String)> = None;
        let tenants = std::fs::read_dir(self.data_dir.join("tenants"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "db"));
        for path in tenants {
            let Ok(conn) = rusqlite::Connection::open(&path) else {
                continue;
            };
            let _ = conn.busy_timeout(Duration::from_secs(5));
            let found: Option<(String, String)> = conn
                .query_row(
                    "SELECT created_at, text FROM notifications_emails
                      WHERE recipient = ?1 AND template = ?2 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    [recipient, kind],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .ok();
            if let Some(found) = found
                && newest.as_ref().is_none_or(|(at, _)| found.0 > *at)
            {
                newest = Some(found);
            }
        }
        if let Some((_, text)) = newest {
            return Some(text);
        }
        let conn =
            rusqlite::Connection::open(self.data_dir.join("control.db")).expect("open control.db");
        conn.query_row(
            "SELECT body FROM mail_outbox WHERE recipient = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1",
            [recipient, kind],
            |row| row.get(0),
        )
        .ok()
    }

    /// Waits until a mail arrives (the forgot-password work runs in the
    /// background, and the email is queued when the event is delivered).
    pub async fn wait_for_mail(&self, recipient: &str, kind: &str) -> String {
        for _ in 0..200 {
            if let Some(body) = self.last_mail(recipient, kind) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {kind} mail for {recipient}");
    }

    /// The token line of a mail body.
    pub fn token_in(mail: &str) -> String {
        mail.lines()
            .map(str::trim)
            .find(|line| line.starts_with("ml"))
            .expect("a token in the mail")
            .to_string()
    }

    /// A tenant's SQLite file.
    pub fn tenant_file(&self, tenant_id: &str) -> PathBuf {
        self.data_dir
            .join("tenants")
            .join(format!("{tenant_id}.db"))
    }

    /// Invites `email` into the session's tenant with `role` and accepts it.
    pub async fn add_member(
        &self,
        owner: &Session,
        role_name: &str,
        store_id: Option<&str>,
    ) -> Session {
        let (status, roles) = self.get("/api/v1/roles", &owner.auth()).await;
        assert_eq!(status, 200, "{roles}");
        let role_id = roles["roles"]
            .as_array()
            .and_then(|roles| roles.iter().find(|r| r["name"] == role_name))
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no role {role_name}"))
            .to_string();
        let email = format!(
            "{}-{}@example.com",
            role_name.to_lowercase(),
            uuid::Uuid::new_v4().simple()
        );
        let (status, invitation) = self
            .post(
                "/api/v1/invitations",
                &owner.auth(),
                json!({"email": email, "role_id": role_id, "store_id": store_id}),
            )
            .await;
        assert_eq!(status, 201, "invite: {invitation}");
        let token = Self::token_in(&self.wait_for_mail(&email, "invitation").await);
        let (status, accepted) = self
            .post(
                "/api/v1/invitations/accept",
                &Auth::None,
                json!({"token": token, "password": PASSWORD, "full_name": format!("{role_name} person")}),
            )
            .await;
        assert_eq!(status, 200, "accept: {accepted}");
        Session {
            default_store: owner.default_store.clone(),
            ..Session::from_auth_response(&accepted, &email)
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub email: String,
    pub user_id: String,
    pub tenant_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub default_store: Option<String>,
}

impl Session {
    /// From a register/login/accept answer.
    pub fn from_auth_response(body: &Value, email: &str) -> Self {
        Self {
            email: email.to_string(),
            user_id: body["user"]["id"].as_str().expect("user id").to_string(),
            tenant_id: body["tenant"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            access_token: body["access_token"]
                .as_str()
                .expect("access token")
                .to_string(),
            refresh_token: body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_string(),
            default_store: None,
        }
    }

    /// Bearer auth with this session's access token.
    pub fn auth(&self) -> Auth {
        Auth::Bearer(self.access_token.clone())
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    ApiKey(String),
}

impl Auth {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::ApiKey(key) => request.header("X-API-Key", key),
        }
    }
}

/// The Python the black-box tests drive with (the MCP SDK, the SMTP sink):
/// `MALIPO_TEST_PYTHON`, else the repository's `.venv` (made by
/// `scripts/test`), else `python3`.
pub fn test_python() -> PathBuf {
    if let Ok(path) = std::env::var("MALIPO_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A response header as text, if present and readable.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Whether `needle`'s bytes occur in `haystack` (a file, an export).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Finished plugin calls, by plugin, operation and outcome (the count of
/// the call-duration histogram).
const PLUGIN_CALLS_FINISHED: &str = "malipo_plugin_call_duration_seconds_count";

/// A sample's label pairs.
type Labels = Vec<(String, String)>;

/// The labels of a sample line `name{k="v",...} value`, and its value.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => val.extend(chars.next()),
                '"' => break,
                c => val.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

/// From a `/metrics` text: the value of the sample `name` whose labels include all of `want`
/// (summed if several match), or 0 if none does.
pub fn metric_value(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, labels, _)| {
            *n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}
