//! Embeds the shipped examples (`events/examples/*.json`) so `assist demo` works from anywhere.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("/// The shipped examples: (file name, JSON text).\npub const EXAMPLES: &[(&str, &str)] = &[\n");
    for n in names {
        let path = dir.join(&n);
        let _ = writeln!(
            out,
            "    ({n:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("examples.rs");
    std::fs::write(target, out).unwrap_or_else(|e| panic!("cannot write examples.rs: {e}"));
}
