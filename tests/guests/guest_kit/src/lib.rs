//! What the test guests share: the `malipo:plugin/plugin` bindings,
//! generated once here, and the manifest and error helpers of the hostile
//! probes, so each guest shows only what makes it hostile.
//!
//! A guest implements [`Guest`] and exports it with `guest_kit::export!`;
//! wit-bindgen's export macro places the component-type section (with the
//! world's exports) in the guest's own `.wasm`.
//!
//! Never install a guest in production.

pub mod probe;

/// The generated bindings (also re-exported at the crate root). They live
/// in a module because wit-bindgen re-exports its world-level export macro
/// with `pub use` next to the `#[macro_export]` definition, which clashes
/// at a crate root; `export!` reaches them by this path.
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../../wit",
        pub_export_macro: true,
        default_bindings_module: "guest_kit::bindings",
    });
}

pub use bindings::*;
pub use malipo::plugin::types::{Annotations, HttpMethod, Migration, Operation, PermissionDef};
