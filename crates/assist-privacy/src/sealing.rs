//! Sealing an event's personal fields before it is stored, and revealing them for display.

use crate::{DataKey, KeyState, PrivacyError};
use assist_catalog::{EventData, Personal, Sealed};

/// What a personal field reads as once its key is destroyed.
pub const ERASED: &str = "[erased]";

/// Replaces every plaintext personal field of `data` by its sealed form under `key`.
pub fn seal(data: &mut EventData, key: &DataKey) {
    for (field, value) in data.personal_fields_mut() {
        if let Personal::Plain(text) = value {
            *value = Personal::Sealed(Sealed {
                sealed: key.seal(field, text),
            });
        }
    }
}

/// Replaces every sealed personal field of `data` by its plaintext, or by [`ERASED`] when
/// the key was destroyed.
pub fn reveal(data: &mut EventData, subject: &str, key: &KeyState) -> Result<(), PrivacyError> {
    for (field, value) in data.personal_fields_mut() {
        if let Personal::Sealed(s) = value {
            let text = match key {
                KeyState::Present(k) => k.open(field, &s.sealed)?,
                KeyState::Erased(_) => ERASED.to_string(),
                KeyState::Missing => {
                    return Err(PrivacyError::NoKey {
                        subject: subject.to_string(),
                    })
                }
            };
            *value = Personal::Plain(text);
        }
    }
    Ok(())
}
