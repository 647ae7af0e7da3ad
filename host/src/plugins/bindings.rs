//! Host-side bindings generated from `wit/malipo.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use self::malipo::plugin::types::{Annotations, HttpMethod, Operation, PermissionDef};
pub use self::malipo::plugin::{config, daraja, events, log, outbound_http, secrets, tenant_db};
