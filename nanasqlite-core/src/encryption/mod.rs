//! Encryption at rest of values, in Python NanaSQLite's formats.
//!
//! Only values are encrypted; keys, table names, value sizes and access patterns are not
//! hidden. An encrypted value is stored as a BLOB:
//!
//! - AES-GCM (the default mode of Python NanaSQLite) and ChaCha20-Poly1305: a random 12-byte
//!   nonce, the ciphertext and the 16-byte tag, with no associated data;
//! - Fernet: the token's URL-safe base64 text, as bytes.
//!
//! The plaintext is the JSON text an unencrypted store writes. Random nonces are safe for
//! about 2³² values under one key; rotate the key (`rekey`)
//! well before that.

mod fernet;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use chacha20poly1305::ChaCha20Poly1305;

use crate::error::{Error, Result};
use fernet::FernetKey;

type Aes192Gcm = AesGcm<Aes192, aes_gcm::aead::consts::U12>;

const NONCE: usize = 12;
const TAG: usize = 16;

/// How values are encrypted, with the key: give it to a builder's `encryption`.
///
/// When the last clone is dropped, the key is wiped from memory: the AES round keys (AES-GCM,
/// and Fernet's AES-CBC), the ChaCha20 key, the Fernet key's two halves. So is the state each
/// value's encryption or decryption derives from the key and then drops (the Poly1305 state of
/// ChaCha20-Poly1305, Fernet's AES key schedule). **Not wiped**, because the crates that hold
/// them cannot wipe them: the AES-GCM GHASH subkey (one AES block derived from the key; polyval
/// 0.6 keeps it without a wiping drop on CPUs with carry-less multiply), the HMAC-SHA256 state
/// Fernet derives from its signing key for each value, and copies made outside the process's
/// control (swap, core dumps). `Debug` shows only the mode.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{Encryption, NanaSQLite};
///
/// let key = [7u8; 32]; // keep real keys out of the source
/// let db = NanaSQLite::builder(":memory:").encryption(Encryption::aes_gcm(key)?).open()?;
/// db.set("card", &"4111 1111 1111 1111")?;
/// assert_eq!(db.get::<String>("card")?.as_deref(), Some("4111 1111 1111 1111"));
/// assert_eq!(format!("{:?}", Encryption::chacha20(key)?), "Encryption(\"chacha20\")");
/// assert!(Encryption::aes_gcm([0u8; 20]).is_err(), "AES keys are 16, 24 or 32 bytes");
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Encryption(Arc<Cipher>);

/// The ciphers, each holding its key (the RustCrypto types wipe their keys on drop).
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha20(Box<ChaCha20Poly1305>),
    Fernet(FernetKey),
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Encryption").field(&self.mode()).finish()
    }
}

fn bad_key(message: String) -> Error {
    Error::Validation { message }
}

impl Encryption {
    /// AES-GCM with a key of 16, 24 or 32 bytes (AES-128, -192 or -256): Python NanaSQLite's
    /// `encryption_mode="aes-gcm"`, its default. A text key is used as its UTF-8 bytes, as
    /// Python does.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a key of another length.
    pub fn aes_gcm(key: impl AsRef<[u8]>) -> Result<Self> {
        let key = key.as_ref();
        let wrong_length = |_| bad_key(format!("an AES-GCM key is 16, 24 or 32 bytes, not {}", key.len()));
        let cipher = match key.len() {
            16 => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(wrong_length)?)),
            24 => Cipher::Aes192(Box::new(Aes192Gcm::new_from_slice(key).map_err(wrong_length)?)),
            _ => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(wrong_length)?)),
        };
        Ok(Self(Arc::new(cipher)))
    }

    /// ChaCha20-Poly1305 with a 32-byte key: Python NanaSQLite's `encryption_mode="chacha20"`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a key of another length.
    pub fn chacha20(key: impl AsRef<[u8]>) -> Result<Self> {
        let key = key.as_ref();
        let cipher = ChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| bad_key(format!("a ChaCha20-Poly1305 key is 32 bytes, not {}", key.len())))?;
        Ok(Self(Arc::new(Cipher::ChaCha20(Box::new(cipher)))))
    }

    /// Fernet with its key in the 44-character URL-safe base64 form that Python's
    /// `Fernet.generate_key()` prints: Python NanaSQLite's `encryption_mode="fernet"`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `key` is not 32 bytes in URL-safe base64.
    pub fn fernet(key: &str) -> Result<Self> {
        Ok(Self(Arc::new(Cipher::Fernet(FernetKey::from_base64(key).map_err(bad_key)?))))
    }

    /// The mode's name in Python NanaSQLite: `"aes-gcm"`, `"chacha20"` or `"fernet"`.
    #[must_use]
    pub fn mode(&self) -> &'static str {
        match &*self.0 {
            Cipher::Aes128(_) | Cipher::Aes192(_) | Cipher::Aes256(_) => "aes-gcm",
            Cipher::ChaCha20(_) => "chacha20",
            Cipher::Fernet(_) => "fernet",
        }
    }

    /// Whether the mode is an AEAD one (a plaintext row then needs `allow_legacy_plaintext`).
    pub(crate) fn is_aead(&self) -> bool {
        !matches!(&*self.0, Cipher::Fernet(_))
    }

    /// The stored form of `plaintext`.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let failed = |_| Error::Validation { message: "the value could not be encrypted".to_owned() };
        match &*self.0 {
            Cipher::Aes128(cipher) => seal_aead(&**cipher, plaintext).map_err(failed),
            Cipher::Aes192(cipher) => seal_aead(&**cipher, plaintext).map_err(failed),
            Cipher::Aes256(cipher) => seal_aead(&**cipher, plaintext).map_err(failed),
            Cipher::ChaCha20(cipher) => seal_aead(&**cipher, plaintext).map_err(failed),
            Cipher::Fernet(key) => {
                let mut iv = [0; 16];
                getrandom::getrandom(&mut iv).map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Ok(key.encrypt_with(plaintext, now, iv))
            }
        }
    }

    /// The plaintext of a stored value, or why it cannot be had.
    pub(crate) fn decrypt(&self, stored: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match &*self.0 {
            Cipher::Aes128(cipher) => open_aead(&**cipher, stored),
            Cipher::Aes192(cipher) => open_aead(&**cipher, stored),
            Cipher::Aes256(cipher) => open_aead(&**cipher, stored),
            Cipher::ChaCha20(cipher) => open_aead(&**cipher, stored),
            Cipher::Fernet(key) => key.decrypt(stored),
        }
    }
}

fn seal_aead<C: Aead + AeadCore>(cipher: &C, plaintext: &[u8]) -> std::result::Result<Vec<u8>, aes_gcm::Error> {
    let nonce = C::generate_nonce(&mut OsRng);
    let sealed = cipher.encrypt(&nonce, plaintext)?;
    let mut stored = Vec::with_capacity(NONCE + sealed.len());
    stored.extend_from_slice(&nonce);
    stored.extend_from_slice(&sealed);
    Ok(stored)
}

fn open_aead<C: Aead + AeadCore>(cipher: &C, stored: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if stored.len() < NONCE + TAG {
        return Err(format!(
            "the encrypted value is too short ({} bytes; at least {} expected): it is damaged",
            stored.len(),
            NONCE + TAG
        ));
    }
    let (nonce, sealed) = stored.split_at(NONCE);
    cipher
        .decrypt(nonce.into(), sealed)
        .map_err(|_| "the value does not decrypt with this key (a wrong key, or the value was altered)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_modes() -> Vec<Encryption> {
        vec![
            Encryption::aes_gcm([1; 16]).unwrap(),
            Encryption::aes_gcm([2; 24]).unwrap(),
            Encryption::aes_gcm("k".repeat(32)).unwrap(),
            Encryption::chacha20([3; 32]).unwrap(),
            Encryption::fernet("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap(),
        ]
    }

    #[test]
    fn every_mode_round_trips_with_fresh_randomness() {
        for encryption in all_modes() {
            let first = encryption.encrypt(b"{\"a\":1}").unwrap();
            let second = encryption.encrypt(b"{\"a\":1}").unwrap();
            assert_ne!(first, second, "{encryption:?}: a fresh nonce or IV each time");
            assert_eq!(encryption.decrypt(&first).unwrap(), b"{\"a\":1}");
        }
    }

    #[test]
    fn short_altered_or_foreign_values_are_errors() {
        for encryption in all_modes() {
            let mut stored = encryption.encrypt(b"\"secret\"").unwrap();
            assert!(encryption.decrypt(&stored[..10]).is_err(), "{encryption:?}: short");
            let middle = stored.len() / 2;
            stored[middle] ^= 1;
            assert!(encryption.decrypt(&stored).is_err(), "{encryption:?}: altered");
            assert!(encryption.decrypt(b"").is_err());
        }
        let stored = Encryption::aes_gcm([1; 16]).unwrap().encrypt(b"1").unwrap();
        assert!(Encryption::aes_gcm([9; 16]).unwrap().decrypt(&stored).is_err(), "another key");
    }

    #[test]
    fn the_aead_layout_is_nonce_ciphertext_tag() {
        let encryption = Encryption::chacha20([3; 32]).unwrap();
        assert_eq!(encryption.encrypt(b"12345").unwrap().len(), NONCE + 5 + TAG);
    }

    /// What is wiped, checked on the types themselves: each implements `ZeroizeOnDrop` (or, for
    /// Poly1305, has a drop at all) only when its crate wipes it, which needs the `zeroize`
    /// features this crate turns on.
    #[test]
    fn the_keys_and_the_state_derived_from_them_are_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>() {}
        wiped::<aes_gcm::aes::Aes128>();
        wiped::<aes_gcm::aes::Aes192>();
        wiped::<aes_gcm::aes::Aes256>();
        wiped::<ChaCha20Poly1305>();
        wiped::<FernetKey>();
        assert!(std::mem::needs_drop::<poly1305::Poly1305>(), "each value's Poly1305 state is wiped");
        // Not wiped, as the docs say: polyval 0.6's CPU-dispatching backend holds the GHASH
        // subkey in a union without a drop, whatever its features.
        assert!(!std::mem::needs_drop::<ghash::GHash>());
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert!(Encryption::aes_gcm([0; 15]).is_err());
        assert!(Encryption::chacha20([0; 16]).is_err());
        assert!(Encryption::fernet("not a key").is_err());
        let printed = format!("{:?}", Encryption::aes_gcm([0xAB; 16]).unwrap());
        assert_eq!(printed, "Encryption(\"aes-gcm\")");
    }
}
