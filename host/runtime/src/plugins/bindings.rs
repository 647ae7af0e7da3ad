//! Host-side bindings generated from `wit/malipo.wit`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
});

pub use crate::plugins::bindings::malipo::plugin::types::{
    Annotations, HttpMethod, MoneyDirection, MoneyMovement, Operation, PermissionDef,
};
pub use crate::plugins::bindings::malipo::plugin::{
    config, daraja, events, log, mail, outbound_http, progress, secrets, tenant_db,
};
