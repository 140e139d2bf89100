//! Masked personal fields, as supervisors see them: enough to recognise a person on the
//! phone, not enough to identify one (`张*`, `350102********1238`, `138****5678`).

use assist_catalog::{EventData, Personal};

/// Masks one personal field's plaintext by what the field is.
pub fn mask(field: &str, value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let keep = |head: usize, tail: usize| -> String {
        if n <= head + tail {
            return "*".repeat(n.max(1));
        }
        let mut out: String = chars[..head].iter().collect();
        out.push_str(&"*".repeat(n - head - tail));
        out.extend(&chars[n - tail..]);
        out
    };
    match field {
        "name" => keep(1, 0),
        "national_id" => keep(6, 4),
        "phone" => keep(3, 4),
        // An address keeps its first part (province and city, as a rule), no more.
        _ => {
            let head = (n / 3).min(6);
            let mut out: String = chars[..head].iter().collect();
            out.push_str("****");
            out
        }
    }
}

/// Masks every opened personal field of `data`; erased fields stay as they read.
pub fn mask_event(data: &mut EventData) {
    for (field, value) in data.personal_fields_mut() {
        if let Personal::Plain(text) = value {
            if text != assist_privacy::ERASED {
                *text = mask(field, text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn names_ids_and_phones_are_masked_as_supervisors_expect() {
        assert_eq!(mask("name", "张三"), "张*");
        assert_eq!(mask("name", "欧阳娜娜"), "欧***");
        assert_eq!(
            mask("national_id", "350102199003071238"),
            "350102********1238"
        );
        assert_eq!(mask("phone", "13812345678"), "138****5678");
        assert_eq!(mask("phone", "123"), "***");
        assert!(!mask("address", "福建省福州市闽侯县甘蔗街道").contains("甘蔗"));
    }
}
