//! The webhook channel against a real HTTP receiver on loopback.

use assist_projections::notices::{Channel, Notice};
use assist_webhook::{signature, Webhook, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn notice() -> Notice {
    let t = chrono::DateTime::parse_from_rfc3339("2026-03-03T01:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    Notice {
        notice_id: uuid::Uuid::from_u128(7),
        kind: "reminder".into(),
        audience: "caseworker".into(),
        recipient: "cw-350121-007".into(),
        clock_id: "response-2473/contact/x".into(),
        subject: "person-x".into(),
        policy: "response-2473".into(),
        step: "contact".into(),
        region: "350121".into(),
        caseworker: "cw-350121-007".into(),
        deadline: t,
        moment: t,
        created_at: t,
    }
}

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver answering `status` to every POST, keeping what it got.
async fn receiver(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((headers, body.to_vec()));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn a_notice_is_posted_as_json_signed_with_its_id_as_idempotency_key() {
    let (url, seen) = receiver(StatusCode::NO_CONTENT).await;
    let hook = Webhook::new(&url, b"s3cret".to_vec(), Duration::from_secs(5)).unwrap();
    hook.send(&notice()).await.unwrap();
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(
        headers[IDEMPOTENCY_HEADER],
        "00000000-0000-0000-0000-000000000007"
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers[SIGNATURE_HEADER],
        signature(b"s3cret", body).as_str()
    );
    assert_ne!(
        headers[SIGNATURE_HEADER],
        signature(b"other", body).as_str(),
        "the signature depends on the secret"
    );
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["clock_id"], "response-2473/contact/x");
    assert_eq!(json["kind"], "reminder");
}

#[test]
fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
    // RFC 4231 test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn a_receiver_answering_an_error_status_is_a_failed_delivery_naming_the_status() {
    let (url, _) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let hook = Webhook::new(&url, b"k".to_vec(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        hook.send(&notice()).await.unwrap_err(),
        "the receiver answered HTTP 503"
    );
}

#[tokio::test]
async fn a_receiver_that_is_not_listening_is_a_failed_delivery() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = Webhook::new(
        &format!("http://127.0.0.1:{port}/hook"),
        b"k".to_vec(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        hook.send(&notice()).await.unwrap_err(),
        "cannot connect to the receiver"
    );
}

#[test]
fn a_url_that_is_not_http_is_refused() {
    assert!(Webhook::new("ftp://x", vec![], Duration::from_secs(1)).is_err());
}
