//! `assist token issue`: a bearer token for `assist serve`, signed with the data dir's key.

use crate::outln;
use anyhow::{bail, Context, Result};
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer};
use std::path::Path;
use std::process::ExitCode;

/// Tokens for trying out `assist serve` and for tests.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a token (HS256, iss and aud `assist`) signed with DATA_DIR/jwt.key (made when missing).
    Issue {
        /// service, caseworker, supervisor, observer, auditor or admin.
        #[arg(long)]
        role: String,
        /// The region prefix of the caller's scope (2, 4 or 6 digits).
        #[arg(long)]
        region: RegionPrefix,
        /// The staff or system id.
        #[arg(long)]
        sub: String,
        /// How long it is valid: 90s, 30m, 8h, 7d.
        #[arg(long, default_value = "8h")]
        ttl: String,
    },
}

/// `8h` → 8 hours; seconds, minutes, hours or days.
fn parse_ttl(s: &str) -> Result<chrono::Duration> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .with_context(|| format!("--ttl {s:?} must be a number and a unit: 90s, 30m, 8h, 7d"))?;
    let d = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    };
    match d {
        Some(d) if n > 0 && d <= chrono::Duration::days(366) => Ok(d),
        _ => bail!("--ttl {s:?} must be a positive number and a unit (s, m, h, d), at most a year"),
    }
}

pub fn run(dir: &Path, cmd: Command) -> Result<ExitCode> {
    let Command::Issue {
        role,
        region,
        sub,
        ttl,
    } = cmd;
    let Some(role) = Role::parse(&role) else {
        bail!("--role must be one of service, caseworker, supervisor, observer, auditor, admin");
    };
    if sub.is_empty() || sub.len() > 200 {
        bail!("--sub must have 1 to 200 bytes");
    }
    let ttl = parse_ttl(&ttl)?;
    let secret = load_or_create_secret(dir)?;
    let token = Signer::shared_secret(&secret).sign(&Claims::new(&sub, role, &region, ttl))?;
    outln!("{token}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_are_a_number_and_a_unit() {
        assert_eq!(parse_ttl("8h").unwrap(), chrono::Duration::hours(8));
        assert_eq!(parse_ttl("90s").unwrap(), chrono::Duration::seconds(90));
        for bad in ["", "h", "8", "-1h", "0m", "400d", "8w"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
