//! Builds the WebAssembly plugins before the host: the first-party ones in
//! `plugins/` are embedded in the binary; the test-only guests in
//! `tests/guests/` are left in `$OUT_DIR/test-guests/` for the black-box
//! tests (`MALIPO_TEST_GUESTS_DIR`). Both need the `wasm32-wasip2` target:
//! `rustup target add wasm32-wasip2`.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn build_workspace(manifest: &Path, packages: &[&str], target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(manifest);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command
        .arg("--target-dir")
        .arg(target_dir)
        // The host build's flags and target settings are not the guests'.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build {}: {e}", manifest.display()));
    if !status.success() {
        panic!(
            "building the WebAssembly plugins in {} failed. If the error says the `{TARGET}` target \
             is not installed, run: rustup target add {TARGET}",
            manifest.display()
        );
    }
}

fn copy_wasm(from_dir: &Path, names: &[&str], to: &Path) {
    std::fs::create_dir_all(to).expect("create plugin output directory");
    for name in names {
        let source = from_dir.join(format!("{name}.wasm"));
        std::fs::copy(&source, to.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
    }
}

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // <target>/<profile>/build/<pkg>-<hash>/out → <target>/wasm-guests, shared
    // by every profile so the guests compile once.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-guests"))
        .unwrap_or_else(|| out.join("wasm-guests"));
    for watched in ["wit", "plugins", "tests/guests", "migrations"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    build_workspace(
        &root.join("plugins/Cargo.toml"),
        &[
            "malipo-plugin-rbac",
            "malipo-plugin-mpesa",
            "malipo-plugin-notifications",
            "malipo-plugin-billing",
            "malipo-plugin-usage",
        ],
        &target_dir,
    );
    build_workspace(
        &root.join("tests/guests/Cargo.toml"),
        &[
            "malipo-test-sandbox",
            "malipo-test-thief",
            "malipo-test-planter",
            "malipo-test-audit-squatter",
        ],
        &target_dir,
    );
    let built = target_dir.join(TARGET).join("release");
    copy_wasm(
        &built,
        &[
            "malipo_plugin_rbac",
            "malipo_plugin_mpesa",
            "malipo_plugin_notifications",
            "malipo_plugin_billing",
            "malipo_plugin_usage",
        ],
        &out.join("plugins"),
    );
    copy_wasm(
        &built,
        &[
            "malipo_test_sandbox",
            "malipo_test_thief",
            "malipo_test_planter",
            "malipo_test_audit_squatter",
        ],
        &out.join("test-guests"),
    );
    println!(
        "cargo:rustc-env=MALIPO_TEST_GUESTS_DIR={}",
        out.join("test-guests").display()
    );
}
