//! `/stores`: a tenant's stores (branches, tills) and who may use them.
//! A store the caller may not use answers 404, exactly like a missing one.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use crate::core::Core;
use crate::core::authz;
use crate::core::authz::ACCESS_ALL_STORES;
use crate::core::operation::HostCall;
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::{StoreId, UserId};
use crate::json_schema::{deleted, object, uuid, uuid_id_input};
use crate::resources::support::{audited_write, name};
use crate::time_util::now_rfc3339;

fn store_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": row.get::<_, String>(0)?,
        "name": row.get::<_, String>(1)?,
        "status": row.get::<_, String>(2)?,
        "created_at": row.get::<_, String>(3)?,
        "updated_at": row.get::<_, String>(4)?,
    }))
}

const STORE_COLUMNS: &str = "id, name, status, created_at, updated_at";

/// The store named by the `id` input, if the caller may use it.
async fn usable_store(state: &Arc<Core>, call: &HostCall) -> Result<StoreId, ApiError> {
    let principal = call.principal()?;
    let tenant = principal.tenant()?;
    let store =
        StoreId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("store"))?;
    if authz::may_use_store(state, tenant, principal.user_id, store).await? {
        Ok(store)
    } else {
        Err(ApiError::not_found("store"))
    }
}

/// `GET /stores`: every store for holders of `stores.access_all`, else the
/// stores the caller was added to.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let all = authz::permitted(&state, tenant, principal.user_id, ACCESS_ALL_STORES, None).await?;
    let stores = blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let (sql, args): (String, Vec<String>) = if all {
            (format!("SELECT {STORE_COLUMNS} FROM stores ORDER BY created_at, id"), vec![])
        } else {
            (
                format!(
                    "SELECT {STORE_COLUMNS} FROM stores WHERE id IN (SELECT store_id FROM store_members WHERE user_id = ?1)
                     ORDER BY created_at, id"
                ),
                vec![principal.user_id.to_string()],
            )
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), store_json)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await?;
    Ok(json!({"stores": stores}))
}

/// `POST /stores`.
pub async fn create(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let store_name = name(&call.str_field("name")?, "name", 120)?;
    let (entry, audited) = (call.audit.clone(), call.audited.clone());
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, entry| {
        let id = StoreId::new();
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO stores (id, name, status, created_at, updated_at) VALUES (?1, ?2, 'active', ?3, ?3)",
            params![id.to_string(), store_name, now],
        )?;
        entry.target = Some(id.to_string());
        Ok(tx.query_row(
            &format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = ?1"),
            [id.to_string()],
            store_json,
        )?)
        })
    })
    .await
}

/// `GET /stores/{id}`.
pub async fn get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let store = usable_store(&state, &call).await?;
    let tenant = call.principal()?.tenant()?;
    blocking(move || {
        let db = state.tenancy.get(tenant)?;
        db.conn()?
            .query_row(
                &format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = ?1"),
                [store.to_string()],
                store_json,
            )
            .optional()?
            .ok_or_else(|| ApiError::not_found("store"))
    })
    .await
}

/// `PATCH /stores/{id}` `{name?}`.
pub async fn update(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let store = usable_store(&state, &call).await?;
    let tenant = call.principal()?.tenant()?;
    let new_name = call
        .opt_str_field("name")?
        .map(|n| name(&n, "name", 120))
        .transpose()?;
    let Some(new_name) = new_name else {
        return Err(ApiError::Validation("give `name` to change".into()));
    };
    let (entry, audited) = (call.audit.clone(), call.audited.clone());
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            tx.execute(
                "UPDATE stores SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![store.to_string(), new_name, now_rfc3339()],
            )?;
            Ok(tx.query_row(
                &format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = ?1"),
                [store.to_string()],
                store_json,
            )?)
        })
    })
    .await
}

/// `DELETE /stores/{id}`: refuses to delete the last store.
pub async fn delete(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let store = usable_store(&state, &call).await?;
    let tenant = call.principal()?.tenant()?;
    let (entry, audited) = (call.audit.clone(), call.audited.clone());
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM stores", [], |row| row.get(0))?;
            if count <= 1 {
                return Err(ApiError::Conflict(
                    "a tenant keeps at least one store".into(),
                ));
            }
            tx.execute("DELETE FROM stores WHERE id = ?1", [store.to_string()])?;
            Ok(json!({"deleted": true, "id": store}))
        })
    })
    .await
}

/// `POST /stores/{id}/users` `{user_id}`: lets a member use this store.
pub async fn add_user(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let store = usable_store(&state, &call).await?;
    let tenant = call.principal()?.tenant()?;
    let user =
        UserId::parse(&call.str_field("user_id")?).ok_or_else(|| ApiError::not_found("user"))?;
    let (entry, audited) = (call.audit.clone(), call.audited.clone());
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            let member: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM members WHERE user_id = ?1 AND status = 'active')",
                [user.to_string()],
                |row| row.get(0),
            )?;
            if !member {
                return Err(ApiError::not_found("user"));
            }
            tx.execute(
                "INSERT INTO store_members (store_id, user_id, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (store_id, user_id) DO NOTHING",
                params![store.to_string(), user.to_string(), now_rfc3339()],
            )?;
            Ok(json!({"store_id": store, "user_id": user}))
        })
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    let store = object(
        &["id", "name", "status", "created_at", "updated_at"],
        json!({"id": uuid(), "name": str_, "status": str_, "created_at": str_, "updated_at": str_}),
    );
    vec![
        Op::get("/stores", "stores.list")
            .permission("stores.read")
            .summary("The stores the caller may use.")
            .output(object(
                &["stores"],
                json!({"stores": {"type": "array", "items": store}}),
            ))
            .handle(list),
        Op::post("/stores", "stores.create")
            .permission("stores.create")
            .summary("Create a store.")
            .input(object(&["name"], json!({"name": str_})))
            .output(store.clone())
            .status(201)
            .handle(create),
        Op::get("/stores/{id}", "stores.get")
            .permission("stores.read")
            .summary("One store.")
            .input(uuid_id_input())
            .output(store.clone())
            .handle(get),
        Op::patch("/stores/{id}", "stores.update")
            .permission("stores.update")
            .summary("Rename a store.")
            .input(object(&["id"], json!({"id": uuid(), "name": str_})))
            .output(store.clone())
            .handle(update),
        Op::delete("/stores/{id}", "stores.delete")
            .permission("stores.delete")
            .summary("Delete a store (not the last one).")
            .input(uuid_id_input())
            .output(deleted())
            .handle(delete),
        Op::post("/stores/{id}/users", "stores.add-user")
            .permission("stores.members.manage")
            .summary("Let a member of the organization use this store.")
            .input(object(
                &["id", "user_id"],
                json!({"id": uuid(), "user_id": uuid()}),
            ))
            .output(object(
                &["store_id", "user_id"],
                json!({"store_id": uuid(), "user_id": uuid()}),
            ))
            .status(201)
            .update()
            .handle(add_user),
    ]
}
