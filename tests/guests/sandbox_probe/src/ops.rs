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
    Err(Error::conflict(format!("sandbox.fail: deliberate conflict after inserting item {id}")))
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
/// text (an empty object if absent).
pub fn emit(input: &Input, emit: impl FnOnce(&str, &str)) -> Result<Value> {
    let name = input.req_trimmed("name")?;
    let payload = input.get("payload").map_or_else(|| "{}".to_owned(), Value::to_string);
    emit(name, &payload);
    Ok(json!({ "emitted": true }))
}

/// Inserts a note; answers its id.
fn insert_note(db: &dyn Db, ctx: &Context, note: &str) -> Result<i64> {
    db.execute(
        "INSERT INTO sandbox_items (note, created_at) VALUES (?1, ?2)",
        &[note.into(), Sql::from(ctx.now())],
    )?;
    db.query_int("SELECT last_insert_rowid()", &[])
}
