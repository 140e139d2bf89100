//! The checked-in OpenAPI document (`crates/assist-http/openapi.json`) is the one the code
//! generates. Regenerate it with `ASSIST_WRITE_OPENAPI=1 cargo test -p assist-http --test
//! openapi` (or `assist serve --print-openapi > crates/assist-http/openapi.json`) and review
//! the diff.

use assist_http::openapi::document_json;
use std::path::Path;

#[test]
fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = document_json();
    if std::env::var_os("ASSIST_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the document the code generates; regenerate it with \
         `ASSIST_WRITE_OPENAPI=1 cargo test -p assist-http --test openapi` and review the diff",
        path.display()
    );
}

#[test]
fn the_openapi_document_is_version_3_1() {
    let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}
