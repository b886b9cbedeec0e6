//! Fernet tokens (AES-128-CBC with PKCS#7 padding, then HMAC-SHA256), as Python's
//! `cryptography.fernet` writes and reads them.
//!
//! A token is the URL-safe base64 (with padding) of `0x80 ‖ timestamp (8 bytes, big-endian
//! seconds) ‖ IV (16) ‖ ciphertext ‖ HMAC-SHA256 (32)` over everything before the HMAC. Tokens
//! are read with no time-to-live and no clock-skew check, as Python NanaSQLite reads them
//! (`ttl=None`): a token stamped in the future is valid.

use aes::Aes128;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const TAG: usize = 32;

/// URL-safe base64 that writes padding (as Python does) and reads it present or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(true).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A Fernet key: its signing half and its encryption half, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(super) struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl FernetKey {
    /// The key from its 44-character URL-safe base64 form.
    pub(super) fn from_base64(key: &str) -> Result<Self, String> {
        let strict = base64::engine::general_purpose::URL_SAFE;
        let mut bytes = strict.decode(key).map_err(|_| "a Fernet key is 32 bytes in URL-safe base64".to_owned())?;
        if bytes.len() != 32 {
            let length = bytes.len();
            bytes.zeroize();
            return Err(format!("a Fernet key is 32 bytes in URL-safe base64, this one decodes to {length}"));
        }
        let mut key = Self { signing: [0; 16], encryption: [0; 16] };
        key.signing.copy_from_slice(&bytes[..16]);
        key.encryption.copy_from_slice(&bytes[16..]);
        bytes.zeroize();
        Ok(key)
    }

    /// The token for `plaintext`, stamped `timestamp` (seconds since the Unix epoch), with `iv`.
    pub(super) fn encrypt_with(&self, plaintext: &[u8], timestamp: u64, iv: [u8; 16]) -> Vec<u8> {
        let mut token = Vec::with_capacity(HEADER + plaintext.len() + 16 + TAG);
        token.push(VERSION);
        token.extend_from_slice(&timestamp.to_be_bytes());
        token.extend_from_slice(&iv);
        let cipher = cbc::Encryptor::<Aes128>::new(&self.encryption.into(), &iv.into());
        token.extend_from_slice(&cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext));
        let tag = self.mac(&token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        BASE64.encode(token).into_bytes()
    }

    /// The plaintext of `token` (its base64 text as bytes), if it is a valid token of this key.
    pub(super) fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>, String> {
        let invalid = || "not a valid Fernet token for this key (a wrong key, or the value was altered)".to_owned();
        let raw = BASE64.decode(token.trim_ascii()).map_err(|_| invalid())?;
        if raw.len() < HEADER + 16 + TAG || raw[0] != VERSION || !(raw.len() - HEADER - TAG).is_multiple_of(16) {
            return Err(invalid());
        }
        let (signed, tag) = raw.split_at(raw.len() - TAG);
        // `verify_slice` compares in constant time.
        self.mac(signed).verify_slice(tag).map_err(|_| invalid())?;
        let iv: [u8; 16] = signed[9..HEADER].try_into().map_err(|_| invalid())?;
        let cipher = cbc::Decryptor::<Aes128>::new(&self.encryption.into(), &iv.into());
        cipher.decrypt_padded_vec_mut::<Pkcs7>(&signed[HEADER..]).map_err(|_| invalid())
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing).expect("HMAC takes a key of any length");
        mac.update(data);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Fernet specification's generate/verify vector; the invalid tokens are of the kinds its
    // invalid.json lists, and Python's `cryptography` refuses each of them too.
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const SPEC_TOKEN: &str =
        "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const SPEC_IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const SPEC_TIME: u64 = 499_162_800; // 1985-10-26T01:20:00-07:00

    fn key() -> FernetKey {
        FernetKey::from_base64(SECRET).unwrap()
    }

    #[test]
    fn generates_the_specification_token() {
        let token = key().encrypt_with(b"hello", SPEC_TIME, SPEC_IV);
        assert_eq!(String::from_utf8(token).unwrap(), SPEC_TOKEN);
    }

    #[test]
    fn verifies_the_specification_token_without_a_ttl() {
        assert_eq!(key().decrypt(SPEC_TOKEN.as_bytes()).unwrap(), b"hello");
    }

    #[test]
    fn refuses_the_specification_invalid_tokens() {
        let invalid = [
            // incorrect mac
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
            // too short
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
            // invalid base64
            "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
            // payload size not a multiple of the block size
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
            // payload padding error
            "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
        ];
        for token in invalid {
            assert!(key().decrypt(token.as_bytes()).is_err(), "{token}");
        }
    }

    #[test]
    fn a_token_stamped_in_the_far_future_is_valid() {
        let token = key().encrypt_with(b"{\"a\":1}", u64::MAX / 2, [7; 16]);
        assert_eq!(key().decrypt(&token).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn another_key_or_an_altered_token_is_refused() {
        let token = key().encrypt_with(b"secret", SPEC_TIME, SPEC_IV);
        let other = FernetKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert!(other.decrypt(&token).is_err());
        let mut altered = token.clone();
        altered[40] = if altered[40] == b'A' { b'B' } else { b'A' };
        assert!(key().decrypt(&altered).is_err());
    }

    #[test]
    fn keys_of_the_wrong_form_are_refused() {
        // Python refuses a key without its padding too.
        for bad in ["", "short", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4", "!!!!", "AAAA"] {
            assert!(FernetKey::from_base64(bad).is_err(), "{bad:?}");
        }
    }
}
