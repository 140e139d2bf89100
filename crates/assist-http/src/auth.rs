//! Who is calling: a bearer JWT checked for signature, `exp`, `iss` and `aud`, turned into
//! a [`Caller`] (staff id, role, region prefix) that every handler passes to its query.
//!
//! Tokens are signed with HS256 by a key kept in the data dir (`jwt.key`, for trying out
//! and tests: `assist token issue`), or by an identity provider whose public key (PEM,
//! RS256 or ES256) the server is given; then only the provider's tokens are accepted.

use crate::problem::{Kind, Problem};
use crate::App;
use assist_catalog::RegionPrefix;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The `iss` every token must carry.
pub const ISSUER: &str = "assist";
/// The `aud` every token must carry.
pub const AUDIENCE: &str = "assist";
/// The file of the signing key inside the data dir.
pub const KEY_FILE: &str = "jwt.key";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A caseworker system: writes events of its region, reads nothing.
    Service,
    /// A caseworker: its own caseload and the histories of its subjects.
    Caseworker,
    /// A supervisor: caseload, SLA, clocks and findings of its region; personal fields masked.
    Supervisor,
    /// The supervisor's figures, without any list of people.
    Observer,
    /// Histories, findings, verify, dead letters and the access log of its region;
    /// personal fields opened only with a reason.
    Auditor,
    /// Erase (people of its region) and rebuild.
    Admin,
}

impl Role {
    /// The role's name in tokens and the access log.
    pub fn name(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Caseworker => "caseworker",
            Role::Supervisor => "supervisor",
            Role::Observer => "observer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// A role by its name.
    pub fn parse(name: &str) -> Option<Role> {
        [
            Role::Service,
            Role::Caseworker,
            Role::Supervisor,
            Role::Observer,
            Role::Auditor,
            Role::Admin,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// The claims of an `assist` token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The staff or system id.
    pub sub: String,
    /// The role.
    pub role: Role,
    /// The region prefix (2, 4 or 6 digits) the caller's scope is.
    pub region: String,
    /// Issuer, [`ISSUER`].
    pub iss: String,
    /// Audience, [`AUDIENCE`].
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
}

impl Claims {
    /// Claims for `sub` in `role` over `region`, valid for `ttl` from now.
    pub fn new(sub: &str, role: Role, region: &RegionPrefix, ttl: chrono::Duration) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub: sub.to_string(),
            role,
            region: region.as_str().to_string(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            exp: now + ttl.num_seconds(),
            iat: now,
        }
    }
}

/// The authenticated caller: the scope every query of a request runs in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The staff or system id (`sub`).
    pub sub: String,
    /// The role.
    pub role: Role,
    /// The region prefix of the caller's scope.
    pub region: RegionPrefix,
}

/// Why a token or key was refused. Never repeats the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token did not verify.
    #[error("the token is not valid here: {0}")]
    Invalid(String),
    /// The key could not be read or made.
    #[error("signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Checks tokens.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 30;
    v
}

impl Verifier {
    /// Tokens signed with HS256 by `secret` (the data dir's key).
    pub fn shared_secret(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256),
        }
    }

    /// Tokens of an identity provider, signed RS256 or ES256 by the key whose public half
    /// is `pem`.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let bad = |reason: String| AuthError::Key {
            path: "public key".into(),
            reason,
        };
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self {
                key,
                validation: validation(Algorithm::RS256),
            });
        }
        DecodingKey::from_ec_pem(pem)
            .map(|key| Self {
                key,
                validation: validation(Algorithm::ES256),
            })
            .map_err(|e| bad(format!("neither an RSA nor an EC public key in PEM: {e}")))
    }

    /// The caller a token names, when it verifies.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        let region = RegionPrefix::new(&c.region)
            .map_err(|e| AuthError::Invalid(format!("region claim: {e}")))?;
        if c.sub.is_empty() || c.sub.len() > 200 {
            return Err(AuthError::Invalid(
                "sub claim must have 1 to 200 bytes".into(),
            ));
        }
        Ok(Caller {
            sub: c.sub,
            role: c.role,
            region,
        })
    }
}

/// Signs tokens with HS256.
pub struct Signer {
    key: EncodingKey,
}

impl Signer {
    /// A signer with `secret` (the data dir's key).
    pub fn shared_secret(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
        }
    }

    /// The signed token of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// The data dir's signing key, made (32 random bytes, hex, mode 0600) when missing.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, AuthError> {
    use std::io::Write;
    let path = data_dir.join(KEY_FILE);
    let fail = |reason: String| AuthError::Key {
        path: path.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(data_dir).map_err(|e| fail(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let secret: [u8; 32] = rand::random();
            file.write_all(hex::encode(secret).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fail(e.to_string()))?;
            Ok(hex::encode(secret).into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
            let text = text.trim();
            if text.len() < 32 {
                return Err(fail("the key file holds less than 32 characters".into()));
            }
            Ok(text.as_bytes().to_vec())
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Problem::new(Kind::Unauthorized, "no Authorization: Bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Problem::new(Kind::Unauthorized, "the Authorization header is not Bearer")
            })?;
        app.verifier
            .verify(token.trim())
            .map_err(|e| Problem::new(Kind::Unauthorized, e.to_string()))
    }
}
