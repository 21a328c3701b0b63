//! Strict base64url (RFC 7515 §2): unpadded, no whitespace, canonical trailing bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Decodes one compact-serialization segment. `URL_SAFE_NO_PAD` refuses padding, any byte
/// outside the url-safe alphabet (so also `+`, `/` and whitespace) and non-zero trailing
/// bits, so every byte string has exactly one accepted encoding.
pub fn decode(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn strictness() {
        assert_eq!(decode("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode(""), Some(vec![]));
        for bad in ["YWI=", "YW I", "YWJ", "YW+/", "Y", "YWI\n", "YW\u{0}I"] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
    }
}
