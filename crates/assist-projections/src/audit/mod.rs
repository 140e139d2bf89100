//! Audit trails: a hash chain per stream over each event's stored bytes (ciphertext of
//! personal fields included, so it still verifies after erasure), a digest per partition
//! at each checkpoint, and the findings an auditor follows up.

use sha2::{Digest, Sha256};

/// The hash of an event in its stream's chain: `sha256(prev_hash || 0x00 || bytes)`, hex.
pub fn chain_hash(prev_hash: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update([0u8]);
    h.update(bytes);
    lower_hex(&h.finalize())
}

/// The next partition digest after one more record: `sha256(digest || sha256(bytes))`, hex.
pub fn next_digest(digest: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(digest.as_bytes());
    h.update(Sha256::digest(bytes));
    lower_hex(&h.finalize())
}

/// A hash as 64 lower-case hex digits (`hex::encode` goes through an iterator of chars,
/// and the projection encodes two hashes per event).
fn lower_hex(hash: &[u8]) -> String {
    let mut out = [0u8; 64];
    match hex::encode_to_slice(hash, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => hex::encode(hash),
    }
}

/// Kinds of audit findings.
pub mod finding {
    /// A job offer for a person with no open case.
    pub const OFFER_WITHOUT_OPEN_CASE: &str = "offer_without_open_case";
    /// An assistance step recorded on a closed case.
    pub const STEP_AFTER_CLOSE: &str = "step_after_close";
    /// A step recorded long after it occurred (found at query time with a delay).
    pub const BACKDATED: &str = "backdated";
    /// A household cleared with no member in work by then (found at query time).
    pub const CLEARED_WITHOUT_EMPLOYED_MEMBER: &str = "cleared_without_employed_member";
    /// A household cleared by naming someone who was not its member at that time (found
    /// at query time).
    pub const CLEARED_BY_NON_MEMBER: &str = "cleared_by_non_member";
    /// A household cleared by naming a member who had been placed, but whose job had ended
    /// by then (found at query time).
    pub const CLEARED_AFTER_JOB_ENDED: &str = "cleared_after_job_ended";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_hash_depends_on_the_previous_hash() {
        assert_ne!(chain_hash("", b"x"), chain_hash("a", b"x"));
        assert_eq!(chain_hash("", b"x"), chain_hash("", b"x"));
    }

    #[test]
    fn hashes_are_64_lower_case_hex_digits_as_hex_encode_gives() {
        let h = chain_hash("", b"x");
        assert_eq!(h, hex::encode(hex::decode(&h).unwrap()));
        assert_eq!(h.len(), 64);
        assert_eq!(
            chain_hash("", b""),
            // sha256 of the single byte 0x00
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn a_digest_changes_with_one_byte() {
        assert_ne!(next_digest("", b"{\"a\":1}"), next_digest("", b"{\"a\":2}"));
    }
}

pub mod chain;
pub mod findings;
pub mod verify;
