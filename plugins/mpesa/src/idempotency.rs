//! Idempotency keys: the same key with the same request answers the stored answer; with another request, a conflict.

use malipo_plugin_sdk::{Context, Db, Error, Result, Sql};
use serde_json::Value;

/// The `response` of a keyed call that began and has not finished.
const IN_PROGRESS: &str = "null";

/// A keyed request of one operation: the normalised request it stands for.
pub struct Keyed<'a> {
    pub operation: &'static str,
    pub key: &'a str,
    /// The normalised request, as canonical JSON (object keys sorted).
    pub request: String,
}

impl<'a> Keyed<'a> {
    /// `None` when the caller gave no key.
    pub fn new(operation: &'static str, key: Option<&'a str>, request: &Value) -> Option<Self> {
        key.map(|key| Self {
            operation,
            key,
            request: request.to_string(),
        })
    }

    /// The stored answer of an earlier call with this key and the same
    /// request; `conflict` if the key was used for a different request.
    pub fn replay(&self, db: &dyn Db) -> Result<Option<Value>> {
        let table = db.query(
            "SELECT request, response FROM mpesa_idempotency WHERE operation = ?1 AND key = ?2",
            &[Sql::from(self.operation), Sql::from(self.key)],
        )?;
        let Some(row) = table.first() else {
            return Ok(None);
        };
        if row.req_text("request")? != self.request {
            return Err(Error::conflict(
                "This Idempotency-Key was already used for a different request; use a new key for a new request.",
            ));
        }
        let response = row.req_text("response")?;
        if response == IN_PROGRESS {
            // Begun, not finished (the server stopped mid-call): the caller resumes it.
            return Ok(None);
        }
        serde_json::from_str(response)
            .map(Some)
            .map_err(|err| Error::internal(format!("stored idempotent answer is not JSON: {err}")))
    }

    /// The object an earlier call with this key (and the same request) began
    /// working on and did not finish: the call to resume.
    pub fn begun(&self, db: &dyn Db) -> Result<Option<String>> {
        let table = db.query(
            "SELECT subject_id FROM mpesa_idempotency WHERE operation = ?1 AND key = ?2 \
             AND request = ?3 AND response = ?4",
            &[
                Sql::from(self.operation),
                Sql::from(self.key),
                Sql::from(self.request.as_str()),
                Sql::from(IN_PROGRESS),
            ],
        )?;
        Ok(table
            .first()
            .and_then(|row| row.text("subject_id"))
            .map(str::to_owned))
    }

    /// Records, before anything is sent, that this key is working on
    /// `subject_id` (committed by the host with the first outbound request).
    pub fn begin(&self, db: &dyn Db, ctx: &Context, subject_id: &str) -> Result<()> {
        db.execute(
            "INSERT INTO mpesa_idempotency (operation, key, request, response, created_by, created_at, subject_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                Sql::from(self.operation),
                Sql::from(self.key),
                Sql::from(self.request.as_str()),
                Sql::from(IN_PROGRESS),
                Sql::from(ctx.user_id.clone()),
                Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
                Sql::from(subject_id),
            ],
        )?;
        Ok(())
    }

    /// Stores the answer for later replays.
    pub fn remember(&self, db: &dyn Db, ctx: &Context, response: &Value) -> Result<()> {
        db.execute(
            "INSERT INTO mpesa_idempotency (operation, key, request, response, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (operation, key) DO UPDATE SET response = excluded.response",
            &[
                Sql::from(self.operation),
                Sql::from(self.key),
                Sql::from(self.request.as_str()),
                Sql::from(response.to_string()),
                Sql::from(ctx.user_id.clone()),
                Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
            ],
        )?;
        Ok(())
    }
}
