//! Webhook endpoints: create (the signing secret is answered once), list,
//! delete. Secrets live sealed in the tenant's `webhook-secrets`.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::{Host, SECRETS};

const COLUMNS: &str =
    "id, url, events, description, status, disabled_reason, created_at, created_by";

/// The endpoint secrets, endpoint id → `whsec_…`.
pub fn secrets(host: &dyn Host) -> Map<String, Value> {
    host.secret(SECRETS)
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
        .unwrap_or_default()
}

fn save_secrets(host: &dyn Host, map: &Map<String, Value>) -> Result<()> {
    host.put_secret(SECRETS, &Value::Object(map.clone()).to_string())
        .map_err(|e| Error::internal(format!("could not store the signing secret: {e}")))
}

/// Checks an endpoint URL: absolute http(s), no credentials, at most 2,048 characters.
fn checked_url(url: &str) -> Result<String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Error::validation("`url` must be an http:// or https:// URL."))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || url.len() > 2048
        || url.chars().any(char::is_whitespace)
    {
        return Err(Error::validation(
            "`url` must be an absolute URL with a host and no credentials.",
        ));
    }
    Ok(url.to_owned())
}

fn public(row: &malipo_plugin_sdk::Row<'_>) -> Value {
    let mut object = row.to_json();
    if let Some(Value::String(events)) = object.get("events") {
        let list: Value = serde_json::from_str(events).unwrap_or(Value::Array(Vec::new()));
        object.insert("events".into(), list);
    }
    Value::Object(object)
}

/// `POST /webhooks` `{url, events, description?}`.
pub fn create(host: &dyn Host, ctx: &Context, input: &Input) -> Result<Value> {
    let url = checked_url(input.req_str("url")?)?;
    let events = input.req_str_list("events")?;
    if events.is_empty() || events.iter().any(|e| e.trim().is_empty() || e.len() > 100) {
        return Err(Error::validation(
            "`events` must name at least one event (or \"*\" for all).",
        ));
    }
    let description = input.opt_trimmed("description")?.map(str::to_owned);
    let id = format!("ep_{}", malipo_plugin_sdk::id::uuid_v4()?.replace('-', ""));
    let secret = crate::sign::new_secret(&host.random()?);
    host.db().execute(
        "INSERT INTO notifications_webhooks (id, url, events, description, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            Sql::Text(id.clone()),
            Sql::Text(url),
            Sql::Text(json!(events).to_string()),
            description.map_or(Sql::Null, Sql::Text),
            Sql::Text(ctx.now()),
            ctx.user_id.clone().map_or(Sql::Null, Sql::Text),
        ],
    )?;
    let mut map = secrets(host);
    map.insert(id.clone(), Value::String(secret.clone()));
    save_secrets(host, &map)?;
    let mut answer = get(host.db(), &id)?;
    answer["secret"] = Value::String(secret);
    Ok(answer)
}

fn get(db: &dyn Db, id: &str) -> Result<Value> {
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM notifications_webhooks WHERE id = ?1 AND deleted_at IS NULL"
        ),
        &[Sql::Text(id.to_owned())],
    )?;
    rows.first()
        .map(|row| public(&row))
        .ok_or_else(|| Error::not_found("No webhook endpoint with that id."))
}

/// `GET /webhooks`.
pub fn list(db: &dyn Db) -> Result<Value> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM notifications_webhooks WHERE deleted_at IS NULL ORDER BY created_at, id"),
        &[],
    )?;
    Ok(json!({ "webhooks": rows.iter().map(|row| public(&row)).collect::<Vec<_>>() }))
}

/// `DELETE /webhooks/{id}`: stops deliveries and forgets the secret.
pub fn delete(host: &dyn Host, ctx: &Context, input: &Input) -> Result<Value> {
    let db = host.db();
    let id = input.req_str("id")?;
    let changed = db.execute(
        "UPDATE notifications_webhooks SET deleted_at = ?2, status = 'disabled', disabled_reason = 'deleted'
          WHERE id = ?1 AND deleted_at IS NULL",
        &[Sql::Text(id.to_owned()), Sql::Text(ctx.now())],
    )?;
    if changed == 0 {
        return Err(Error::not_found("No webhook endpoint with that id."));
    }
    db.execute(
        "UPDATE notifications_deliveries SET status = 'failed', last_error = 'endpoint deleted'
          WHERE webhook_id = ?1 AND status = 'pending'",
        &[Sql::Text(id.to_owned())],
    )?;
    let mut map = secrets(host);
    if map.remove(id).is_some() {
        save_secrets(host, &map)?;
    }
    Ok(json!({ "deleted": true, "id": id }))
}
