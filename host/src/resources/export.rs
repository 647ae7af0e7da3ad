//! `GET /tenant/export`: the organization's whole database as one SQLite
//! file, a consistent snapshot taken while it keeps working, with secrets
//! and one-time tokens removed (`tenancy::snapshot`), streamed from a
//! temporary file that is gone once the answer ends. See docs/DATA.md.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::Core;
use crate::core::operation::{FileBody, HostCall};
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::tenancy::snapshot::{ExportInfo, Secrets, SnapshotError};

/// The media type of an export.
pub const CONTENT_TYPE: &str = "application/vnd.sqlite3";

/// The output schema: a binary SQLite file.
pub fn output_schema() -> Value {
    json!({"type": "string", "format": "binary", "contentMediaType": CONTENT_TYPE,
           "description": "A SQLite 3 database (application/vnd.sqlite3); its tables are documented in docs/DATA.md."})
}

/// Where exports are written before they are streamed: `<data-dir>/tmp`.
pub fn tmp_dir(state: &Core) -> std::path::PathBuf {
    state.config.data_dir.join("tmp")
}

fn snapshot_error(error: SnapshotError) -> ApiError {
    match error {
        SnapshotError::Tenancy(error) => error.into(),
        SnapshotError::Busy => ApiError::Unavailable(error.to_string()),
        other => ApiError::Unexpected(anyhow::anyhow!(other)),
    }
}

/// `GET /tenant/export`.
pub async fn export(state: Arc<Core>, call: HostCall) -> Result<FileBody, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let state_for_db = Arc::clone(&state);
    let export = blocking(move || {
        let record = state_for_db
            .control
            .tenant(tenant)?
            .ok_or_else(|| ApiError::NotFound("no such organization".into()))?;
        let info = ExportInfo {
            tenant_id: tenant,
            name: record.name,
            slug: record.slug,
            plan: record.plan,
            status: record.status,
        };
        let dir = tmp_dir(&state_for_db);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::Unexpected(e.into()))?;
        let dest = dir.join(format!("export-{}.sqlite", uuid::Uuid::new_v4()));
        let db = state_for_db.tenancy.get(tenant)?;
        let export = state_for_db
            .tenancy
            .export(&db, &dest, &info, Secrets::Remove)
            .map_err(snapshot_error)?;
        Ok((info.slug, export))
    })
    .await?;
    let (slug, export) = export;
    let mut entry = call.audit.clone();
    entry.detail = Some(json!({"bytes": export.bytes, "scrubbed": export.scrubbed}).to_string());
    crate::core::execute::record(&state, Some(&principal), entry).await;
    crate::audit::heads::after_commit(&state, Some(tenant)).await;
    let date = crate::time_util::now_rfc3339()
        .chars()
        .take(10)
        .collect::<String>();
    Ok(FileBody {
        path: export.path,
        content_type: CONTENT_TYPE.into(),
        headers: vec![(
            "content-disposition".into(),
            format!("attachment; filename=\"malipo-{slug}-{date}.sqlite\""),
        )],
        delete: true,
    })
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/tenant/export", "tenant.export")
            .permission("tenant.export")
            .summary("Download the organization's database: a consistent SQLite snapshot taken while it keeps working, with secrets, tokens and password material removed (application/vnd.sqlite3; tables in docs/DATA.md).")
            .output(output_schema())
            .feature("data_export")
            .handle(export),
    ]
}
