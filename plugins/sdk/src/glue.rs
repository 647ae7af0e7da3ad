//! A macro that writes the glue between a plugin's generated bindings and this crate.

/// Expands, in a plugin crate whose bindings were generated at its root
/// (`wit_bindgen::generate!` for a `malipo:plugin` world), to:
///
/// - `struct HostDb`, implementing [`Db`](crate::Db) over the
///   `malipo::plugin::tenant_db` import (database failures become
///   `internal` errors);
/// - `fn progress(done: u64, total: Option<u64>, message: Option<&str>)`,
///   over the `malipo::plugin::progress` import: reports how far a long
///   call has come (a no-op when no client listens);
/// - `fn context(CallContext) -> Context`;
/// - `fn plugin_error(Error) -> PluginError`.
///
/// The crate itself never names generated types; the expansion does, at the
/// call site.
#[macro_export]
macro_rules! bindings_glue {
    () => {
        /// The tenant database of the current call, through the `tenant-db` import.
        struct HostDb;

        impl $crate::Db for HostDb {
            fn execute(&self, sql: &str, params: &[$crate::Sql]) -> $crate::Result<u64> {
                malipo::plugin::tenant_db::execute(sql, &__to_host_values(params))
                    .map_err($crate::db::db_error)
            }

            fn query(&self, sql: &str, params: &[$crate::Sql]) -> $crate::Result<$crate::Table> {
                let rows = malipo::plugin::tenant_db::query(sql, &__to_host_values(params))
                    .map_err($crate::db::db_error)?;
                Ok($crate::Table {
                    columns: rows.columns,
                    rows: rows
                        .rows
                        .into_iter()
                        .map(|row| row.into_iter().map(__from_host_value).collect())
                        .collect(),
                })
            }
        }

        fn __to_host_values(params: &[$crate::Sql]) -> Vec<malipo::plugin::tenant_db::Value> {
            use malipo::plugin::tenant_db::Value;
            params
                .iter()
                .map(|param| match param {
                    $crate::Sql::Null => Value::Null,
                    $crate::Sql::Integer(i) => Value::Integer(*i),
                    $crate::Sql::Real(r) => Value::Real(*r),
                    $crate::Sql::Text(s) => Value::Text(s.clone()),
                    $crate::Sql::Blob(b) => Value::Blob(b.clone()),
                })
                .collect()
        }

        fn __from_host_value(value: malipo::plugin::tenant_db::Value) -> $crate::Sql {
            use malipo::plugin::tenant_db::Value;
            match value {
                Value::Null => $crate::Sql::Null,
                Value::Integer(i) => $crate::Sql::Integer(i),
                Value::Real(r) => $crate::Sql::Real(r),
                Value::Text(s) => $crate::Sql::Text(s),
                Value::Blob(b) => $crate::Sql::Blob(b),
            }
        }

        /// Reports how far the current call has come: `done` of `total`
        /// units (when known), with an optional short note (the host keeps
        /// 200 characters). Cheap, and a no-op when no client listens.
        #[allow(dead_code)]
        fn progress(done: u64, total: Option<u64>, message: Option<&str>) {
            malipo::plugin::progress::report(done, total, message);
        }

        /// Copies the generated call context into the SDK's [`Context`].
        fn context(ctx: CallContext) -> $crate::Context {
            $crate::Context {
                tenant_id: ctx.tenant_id,
                user_id: ctx.user_id,
                store_id: ctx.store_id,
                request_id: ctx.request_id,
                channel: ctx.channel,
                now_ms: ctx.now_ms,
                allowed_stores: ctx.allowed_stores,
            }
        }

        /// Converts an SDK error into the generated `plugin-error`.
        fn plugin_error(err: $crate::Error) -> PluginError {
            PluginError {
                code: err.code.to_owned(),
                message: err.message,
            }
        }
    };
}
