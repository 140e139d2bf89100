//! Notices delivered to a webhook: each one an HTTP POST of its JSON, signed with
//! HMAC-SHA256 under a shared secret (`X-Assist-Signature: sha256=<hex>`), with the notice
//! id as `Idempotency-Key`. Any 2xx answer is delivery; anything else is retried by the
//! outbox, so a receiver must drop a notice id it has seen (a crash between sending and
//! recording sends it again).

use assist_projections::notices::{Channel, Notice};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Assist-Signature";
/// The header carrying the notice id.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `sha256=<hex>` of HMAC-SHA256 over `body` under `secret`: what a receiver computes to
/// check that a notice came from this server.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook receiver.
pub struct Webhook {
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("webhook: {0}")]
pub struct WebhookError(String);

impl Webhook {
    /// A webhook at `url` (http://…), signing with `secret`; each POST may take `timeout`.
    pub fn new(url: &str, secret: Vec<u8>, timeout: Duration) -> Result<Webhook, WebhookError> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(WebhookError(
                "a webhook URL starts with http:// or https://".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| WebhookError(format!("cannot make an HTTP client: {e}")))?;
        Ok(Webhook {
            url: url.to_string(),
            secret,
            client,
        })
    }
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn send(&self, notice: &Notice) -> Result<(), String> {
        let body = serde_json::to_vec(notice).map_err(|e| format!("cannot encode: {e}"))?;
        let answer = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(IDEMPOTENCY_HEADER, notice.notice_id.to_string())
            .header(SIGNATURE_HEADER, signature(&self.secret, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "the receiver did not answer in time".to_string()
                } else if e.is_connect() {
                    "cannot connect to the receiver".to_string()
                } else {
                    "the request failed".to_string()
                }
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered HTTP {}", status.as_u16()))
        }
    }
}
