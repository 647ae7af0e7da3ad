//! The tenant's outbox table: where every event enters — the plugins'
//! `events.emit` import and the host's own events. Delivering them is
//! the host's event dispatcher (`malipo::events`).

use rusqlite::params;

/// Appends one event to the tenant's outbox on `conn`, from `source` (a
/// plugin's name, or `host`). Answers the event id. Every event enters the
/// outbox here: the `events.emit` import and the host's own events.
pub fn append(
    conn: &rusqlite::Connection,
    name: &str,
    payload: &str,
    source: &str,
) -> rusqlite::Result<String> {
    let event_id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO outbox (event_id, name, payload, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![event_id, name, payload, source, malipo_foundations::time_util::now_rfc3339()],
    )?;
    Ok(event_id)
}
