//! The sandbox probe operations.

use std::hint::black_box;

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

/// `sandbox.noop`: answers without touching the database (call-overhead benchmarks).
pub fn noop() -> Value {
    json!({ "ok": true })
}

/// `sandbox.items.create`: stores a note.
pub fn create_item(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let note = input.req_str("note")?;
    let id = insert_note(db, ctx, note)?;
    crate::log_info(&format!("sandbox item {id} created"));
    Ok(json!({ "id": id, "note": note }))
}

/// `sandbox.items.list`: every stored note, oldest first.
pub fn list_items(db: &dyn Db) -> Result<Value> {
    let table = db.query("SELECT id, note FROM sandbox_items ORDER BY id", &[])?;
    Ok(json!({ "items": table.to_json() }))
}

/// `sandbox.stores`: reads the declared host table `stores`.
pub fn stores(db: &dyn Db) -> Result<Value> {
    let table = db.query("SELECT id, name FROM stores ORDER BY name, id", &[])?;
    Ok(json!({ "stores": table.to_json() }))
}

/// `sandbox.spin`: stores a note, then loops forever.
pub fn spin(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    insert_note(db, ctx, input.req_str("note")?)?;
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// `sandbox.hog`: stores a note, then allocates and touches 1 MiB blocks,
/// keeping them all alive, until memory runs out.
pub fn hog(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    insert_note(db, ctx, input.req_str("note")?)?;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block.fill(0xa5);
        hoard.push(black_box(block));
        black_box(&hoard);
    }
}

/// `sandbox.trap`: stores a note, then panics (a trap).
pub fn trap(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = insert_note(db, ctx, input.req_str("note")?)?;
    panic!("sandbox.trap: deliberate panic after inserting item {id}");
}

/// `sandbox.fail`: stores a note, then fails with `conflict` (the host must roll back).
pub fn fail(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = insert_note(db, ctx, input.req_str("note")?)?;
    Err(Error::conflict(format!(
        "sandbox.fail: deliberate conflict after inserting item {id}"
    )))
}

/// `sandbox.trespass`: stores a note, then tries what the host must refuse:
/// reading another plugin's table (`read`, the default), deleting the audit
/// log (`audit`), attaching a database (`attach`) or running a pragma
/// (`pragma`). The database's refusal comes back as `internal`.
pub fn trespass(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let note = input.req_str("note")?;
    let target = input.opt_str("target")?.unwrap_or("read");
    insert_note(db, ctx, note)?;
    match target {
        "read" => Ok(json!({ "rows": db.query("SELECT id FROM rbac_roles", &[])?.to_json() })),
        "audit" => Ok(json!({ "changed": db.execute("DELETE FROM audit_log", &[])? })),
        "attach" => Ok(json!({ "changed": db.execute("ATTACH DATABASE 'x.db' AS x", &[])? })),
        "pragma" => Ok(json!({ "rows": db.query("PRAGMA journal_mode=DELETE", &[])?.to_json() })),
        other => Err(Error::bad_request(format!(
            "Unknown target `{other}`: use `read`, `audit`, `attach` or `pragma`."
        ))),
    }
}

/// `sandbox.big`: an output of `bytes` bytes of data (to test output limits).
pub fn big(input: &Input) -> Result<Value> {
    let bytes = input
        .opt_u64("bytes")?
        .ok_or_else(|| Error::validation("`bytes` is required."))?;
    let bytes = usize::try_from(bytes).map_err(|_| Error::validation("`bytes` is too large."))?;
    Ok(json!({ "data": "x".repeat(bytes) }))
}

/// `sandbox.echo`: the call context as the plugin sees it, and the parsed input.
pub fn echo(ctx: &Context, input: &Input) -> Value {
    json!({
        "tenant_id": ctx.tenant_id,
        "user_id": ctx.user_id,
        "store_id": ctx.store_id,
        "channel": ctx.channel,
        "input": Value::Object(input.as_map().clone()),
    })
}

/// `sandbox.emit`: emits an event `name` whose payload is `payload` as JSON
/// text (an empty object if absent); with `"fail": true` it then fails with
/// `conflict`, so the host must roll the event back.
pub fn emit(input: &Input, emit: impl FnOnce(&str, &str)) -> Result<Value> {
    let name = input.req_trimmed("name")?;
    let payload = input
        .get("payload")
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    let fail = input.get("fail").and_then(Value::as_bool).unwrap_or(false);
    emit(name, &payload);
    if fail {
        return Err(Error::conflict(
            "sandbox.emit: deliberate conflict after emitting",
        ));
    }
    Ok(json!({ "emitted": true }))
}

/// The event the sandbox subscribes to.
pub const PINGED: &str = "sandbox.pinged";

/// `on-event`: records the delivery in `sandbox_events`. A payload with
/// `fail_times: n` makes the first `n` attempts fail (counted by the host
/// in `event_deliveries`, since a failed attempt's own writes roll back):
/// with `conflict`, or by panicking when `fail_with` is `trap`.
pub fn on_event(
    db: &dyn Db,
    ctx: &Context,
    event_id: &str,
    name: &str,
    payload: &str,
) -> Result<()> {
    let parsed: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let fail_times = parsed
        .get("fail_times")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if fail_times > 0 {
        let attempts = db.query_int(
            "SELECT COALESCE(MAX(attempts), 0) FROM event_deliveries WHERE event_id = ?1 AND plugin = 'sandbox'",
            &[event_id.into()],
        )?;
        if attempts < fail_times {
            if parsed.get("fail_with").and_then(Value::as_str) == Some("trap") {
                panic!(
                    "sandbox on-event: deliberate panic on attempt {}",
                    attempts + 1
                );
            }
            return Err(Error::new(
                "unavailable",
                format!(
                    "sandbox on-event: deliberate failure on attempt {}",
                    attempts + 1
                ),
            ));
        }
    }
    db.execute(
        "INSERT INTO sandbox_events (event_id, name, payload, tenant_id, user_id, channel, request_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            event_id.into(),
            name.into(),
            payload.into(),
            ctx.tenant_id.as_str().into(),
            ctx.user_id.as_deref().map_or(Sql::Null, Sql::from),
            ctx.channel.as_str().into(),
            ctx.request_id.as_str().into(),
            Sql::from(ctx.now()),
        ],
    )?;
    Ok(())
}

/// `sandbox.events.list`: every delivery `on-event` recorded, oldest first.
pub fn list_events(db: &dyn Db) -> Result<Value> {
    let table = db.query(
        "SELECT event_id, name, payload, tenant_id, user_id, channel, request_id FROM sandbox_events ORDER BY id",
        &[],
    )?;
    Ok(json!({ "events": table.to_json() }))
}

/// Inserts a note; answers its id.
fn insert_note(db: &dyn Db, ctx: &Context, note: &str) -> Result<i64> {
    db.execute(
        "INSERT INTO sandbox_items (note, created_at) VALUES (?1, ?2)",
        &[note.into(), Sql::from(ctx.now())],
    )?;
    db.query_int("SELECT last_insert_rowid()", &[])
}
