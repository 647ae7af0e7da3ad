//! The migrations are embedded by `refinery::embed_migrations!`; a new file
//! in `migrations/` must rebuild this crate.

fn main() {
    for dir in ["../../migrations/control", "../../migrations/tenant"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
