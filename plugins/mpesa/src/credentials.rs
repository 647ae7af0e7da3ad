//! The tenant's Daraja credentials: settings in `mpesa_settings`, secrets in the host's encrypted store, and which server they target.

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::daraja::Daraja;
use crate::env::{Env, upstream};
use crate::validate::{self, check_len};

/// Secret names the manifest declares.
pub const CONSUMER_KEY: &str = "consumer_key";
pub const CONSUMER_SECRET: &str = "consumer_secret";
pub const PASSKEY: &str = "passkey";
pub const SECURITY_CREDENTIAL: &str = "security_credential";
pub const INITIATOR_PASSWORD: &str = "initiator_password";
pub const SECRET_NAMES: [&str; 5] = [
    CONSUMER_KEY,
    CONSUMER_SECRET,
    PASSKEY,
    SECURITY_CREDENTIAL,
    INITIATOR_PASSWORD,
];
/// The cached Daraja OAuth access token, kept sealed by the host like the
/// credentials (its expiry and server are in `mpesa_tokens`).
pub const OAUTH_TOKEN: &str = "oauth_token";

pub const SANDBOX_URL: &str = "https://sandbox.safaricom.co.ke";
pub const PRODUCTION_URL: &str = "https://api.safaricom.co.ke";
pub const ENVIRONMENTS: &[&str] = &["sandbox", "production", "custom"];

/// The non-secret part of the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub environment: String,
    /// Only for `custom`.
    pub base_url: Option<String>,
    pub shortcode: String,
    pub initiator_name: String,
    /// The target (see [`Target::credential_key`]) the stored SecurityCredential was made for.
    pub credential_target: Option<String>,
    pub updated_at: String,
}

impl Settings {
    /// The stored settings, if credentials were ever saved.
    pub fn load(env: &dyn Env) -> Result<Option<Self>> {
        let table = env.db().query(
            "SELECT environment, base_url, shortcode, initiator_name, credential_target, updated_at \
             FROM mpesa_settings WHERE id = 1",
            &[],
        )?;
        let Some(row) = table.first() else {
            return Ok(None);
        };
        Ok(Some(Self {
            environment: row.req_text("environment")?.to_owned(),
            base_url: row.text("base_url").map(str::to_owned),
            shortcode: row.req_text("shortcode")?.to_owned(),
            initiator_name: row.req_text("initiator_name")?.to_owned(),
            credential_target: row.text("credential_target").map(str::to_owned),
            updated_at: row.req_text("updated_at")?.to_owned(),
        }))
    }
}

/// The Daraja-compatible server the tenant's calls go to, and the
/// certificate its SecurityCredential must be made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// `sandbox`, `production` or `custom` (the certificate to encrypt with).
    pub cert_environment: &'static str,
    /// The server publishing the certificate, for `custom`.
    pub cert_base_url: Option<String>,
    /// The built-in emulator stands in for the sandbox.
    pub emulator: bool,
}

impl Target {
    /// Sandbox goes to the built-in emulator when the operator runs one,
    /// production to Safaricom, custom to the tenant's own URL.
    pub fn resolve(env: &dyn Env, environment: &str, base_url: Option<&str>) -> Result<Self> {
        let custom = |url: &str, emulator: bool| Self {
            base_url: url.trim_end_matches('/').to_owned(),
            cert_environment: "custom",
            cert_base_url: Some(url.trim_end_matches('/').to_owned()),
            emulator,
        };
        match environment {
            "production" => Ok(Self {
                base_url: PRODUCTION_URL.to_owned(),
                cert_environment: "production",
                cert_base_url: None,
                emulator: false,
            }),
            "custom" => base_url
                .map(|url| custom(url, false))
                .ok_or_else(|| Error::internal("custom environment without a base URL")),
            "sandbox" => Ok(
                match env
                    .config("daraja-emulator-url")
                    .filter(|u| !u.trim().is_empty())
                {
                    Some(url) => custom(url.trim(), true),
                    None => Self {
                        base_url: SANDBOX_URL.to_owned(),
                        cert_environment: "sandbox",
                        cert_base_url: None,
                        emulator: false,
                    },
                },
            ),
            other => Err(Error::internal(format!(
                "unknown stored environment `{other}`"
            ))),
        }
    }

    /// Identifies the certificate a SecurityCredential was made with.
    pub fn credential_key(&self) -> String {
        format!(
            "{}|{}",
            self.cert_environment,
            self.cert_base_url.as_deref().unwrap_or("")
        )
    }

    /// Makes the SecurityCredential for `password` with this target's certificate.
    pub fn security_credential(&self, env: &dyn Env, password: &str) -> Result<String> {
        env.security_credential(
            self.cert_environment,
            self.cert_base_url.as_deref(),
            password,
        )
        .map_err(|err| {
            upstream(format!(
                "Could not make the Daraja SecurityCredential: {err}"
            ))
        })
    }
}

/// A complete, usable set of credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub settings: Settings,
    pub target: Target,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub passkey: String,
}

impl Credentials {
    /// Loads the tenant's credentials; `conflict` if they are not configured.
    pub fn load(env: &dyn Env) -> Result<Self> {
        let not_configured = || {
            Error::conflict(
                "M-Pesa is not configured for this tenant: set the Daraja credentials with \
                 PUT /api/v1/mpesa/credentials first.",
            )
        };
        let settings = Settings::load(env)?.ok_or_else(not_configured)?;
        let secret = |name: &str| {
            env.secret(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(not_configured)
        };
        let target = Target::resolve(env, &settings.environment, settings.base_url.as_deref())?;
        Ok(Self {
            consumer_key: secret(CONSUMER_KEY)?,
            consumer_secret: secret(CONSUMER_SECRET)?,
            passkey: secret(PASSKEY)?,
            target,
            settings,
        })
    }

    /// The SecurityCredential for initiator calls. Remade (and stored) when
    /// the target changed since it was made, e.g. the operator started or
    /// stopped the built-in emulator.
    pub fn security_credential(&self, env: &dyn Env) -> Result<String> {
        let key = self.target.credential_key();
        let stored = env.secret(SECURITY_CREDENTIAL).filter(|v| !v.is_empty());
        if let Some(credential) = stored
            && self.settings.credential_target.as_deref() == Some(key.as_str())
        {
            return Ok(credential);
        }
        let password = env
            .secret(INITIATOR_PASSWORD)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::conflict(
                    "The initiator password is not set: PUT /api/v1/mpesa/credentials again.",
                )
            })?;
        let credential = self.target.security_credential(env, &password)?;
        env.put_secret(SECURITY_CREDENTIAL, &credential)?;
        env.db().execute(
            "UPDATE mpesa_settings SET credential_target = ?1 WHERE id = 1",
            &[Sql::from(key)],
        )?;
        Ok(credential)
    }
}

/// `mpesa.credentials.put`: validates the complete set, stores it, and
/// answers what `mpesa.credentials.get` answers.
pub fn put(env: &dyn Env, input: &Input) -> Result<Value> {
    let secret_field = |field: &str| -> Result<String> {
        let text = input.opt_str(field)?.map(str::trim).unwrap_or_default();
        check_len(text, field, 1, 512).map(str::to_owned)
    };
    let consumer_key = secret_field(CONSUMER_KEY)?;
    let consumer_secret = secret_field(CONSUMER_SECRET)?;
    let shortcode = match input.get("shortcode") {
        None => return Err(Error::validation("`shortcode` is required.")),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(Error::validation(
                "`shortcode` must be a string of 5 to 7 digits.",
            ));
        }
    };
    if !validate::is_shortcode(&shortcode) {
        return Err(Error::validation("`shortcode` must be 5 to 7 digits."));
    }
    let passkey = secret_field(PASSKEY)?;
    let initiator_name = validate::text_field(input, "initiator_name", 1, 64)?.to_owned();
    // Passwords are taken as given: spaces may be part of them.
    let initiator_password = input.opt_str(INITIATOR_PASSWORD)?.unwrap_or_default();
    if initiator_password.trim().is_empty() {
        return Err(Error::validation(
            "`initiator_password` is required and must not be blank.",
        ));
    }
    if initiator_password.len() > 512 || initiator_password.chars().any(char::is_control) {
        return Err(Error::validation(
            "`initiator_password` must be at most 512 characters, without control characters.",
        ));
    }
    let environment = validate::one_of(
        input.req_trimmed("environment")?,
        "environment",
        ENVIRONMENTS,
    )?;
    let base_url = match (environment, input.opt_trimmed("base_url")?) {
        ("custom", None) => {
            return Err(Error::validation("`base_url` is required when `environment` is `custom`."));
        }
        ("custom", Some(url)) => Some(validate::base_url(url).ok_or_else(|| {
            Error::validation("`base_url` must be an absolute http:// or https:// URL without query or credentials.")
        })?),
        (_, Some(_)) => {
            return Err(Error::validation(
                "`base_url` is only for `environment` `custom`: sandbox and production use Safaricom's servers.",
            ));
        }
        (_, None) => None,
    };
    // The one outbound policy decides before anything is fetched from the
    // URL (the certificate below): loopback and private addresses only
    // when the operator lists them.
    if let Some(url) = base_url.as_deref() {
        env.check_url(url)
            .map_err(|why| Error::validation(format!("`base_url` is refused: {why}")))?;
    }
    let target = Target::resolve(env, environment, base_url.as_deref())?;
    let security_credential = target.security_credential(env, initiator_password)?;
    for (name, value) in [
        (CONSUMER_KEY, consumer_key.as_str()),
        (CONSUMER_SECRET, consumer_secret.as_str()),
        (PASSKEY, passkey.as_str()),
        (INITIATOR_PASSWORD, initiator_password),
        (SECURITY_CREDENTIAL, security_credential.as_str()),
    ] {
        env.put_secret(name, value)?;
    }
    let ctx = env.ctx();
    env.db().execute(
        "INSERT INTO mpesa_settings (id, environment, base_url, shortcode, initiator_name, credential_target, updated_at, updated_by) \
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET environment = excluded.environment, base_url = excluded.base_url, \
         shortcode = excluded.shortcode, initiator_name = excluded.initiator_name, \
         credential_target = excluded.credential_target, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        &[
            Sql::from(environment),
            Sql::from(base_url),
            Sql::from(shortcode),
            Sql::from(initiator_name),
            Sql::from(target.credential_key()),
            Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
            Sql::from(ctx.user_id.clone()),
        ],
    )?;
    // Tokens of the old credentials must not be reused.
    env.db().execute("DELETE FROM mpesa_tokens", &[])?;
    env.put_secret(OAUTH_TOKEN, "")?;
    get(env)
}

/// `mpesa.credentials.get`: which credentials are set, never their values.
pub fn get(env: &dyn Env) -> Result<Value> {
    let settings = Settings::load(env)?;
    let mut fields = serde_json::Map::new();
    for name in SECRET_NAMES {
        fields.insert(
            name.to_owned(),
            Value::Bool(env.secret(name).is_some_and(|v| !v.is_empty())),
        );
    }
    let all_secrets = fields.values().all(|v| v == &Value::Bool(true));
    let Some(settings) = settings else {
        return Ok(json!({
            "configured": false,
            "environment": null,
            "base_url": null,
            "effective_base_url": null,
            "uses_emulator": false,
            "shortcode": null,
            "initiator_name": null,
            "fields": fields,
            "updated_at": null,
        }));
    };
    let target = Target::resolve(env, &settings.environment, settings.base_url.as_deref())?;
    Ok(json!({
        "configured": all_secrets,
        "environment": settings.environment,
        "base_url": settings.base_url,
        "effective_base_url": target.base_url,
        "uses_emulator": target.emulator,
        "shortcode": settings.shortcode,
        "initiator_name": settings.initiator_name,
        "fields": fields,
        "updated_at": settings.updated_at,
    }))
}

/// `mpesa.credentials.test`: fetches a fresh OAuth token.
pub fn test(env: &dyn Env) -> Result<Value> {
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let token = daraja.fresh_token()?;
    Ok(json!({
        "ok": true,
        "expires_in": token.expires_in,
        "environment": credentials.settings.environment,
        "base_url": credentials.target.base_url,
    }))
}
