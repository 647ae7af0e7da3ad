//! Host-side bindings generated from `wit/malipo.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use malipo::plugin::types::{Annotations, HttpMethod, Operation, PermissionDef};
pub use malipo::plugin::{events, log, secrets, tenant_db};
