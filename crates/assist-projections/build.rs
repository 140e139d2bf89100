//! `sqlx::migrate!` embeds `projections/` at compile time: rebuild this crate when a
//! migration is added or changed, not only when its Rust code is.
fn main() {
    println!("cargo:rerun-if-changed=../../projections/sqlite");
    println!("cargo:rerun-if-changed=../../projections/postgres");
}
