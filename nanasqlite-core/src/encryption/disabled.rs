//! `Encryption` without the `encryption` feature: the type the builders and `rekey` take
//! exists, but no value of it can be made, so every store is plaintext and none of the crypto
//! crates is built.

use std::fmt;

use crate::error::Result;

/// How values are encrypted: built with the `encryption` feature (on by default), which adds
/// `Encryption::aes_gcm`, `chacha20` and `fernet`. Without it no value of this type exists.
#[derive(Clone)]
pub struct Encryption(Never);

/// No cipher: the feature is off.
#[derive(Clone, Copy)]
enum Never {}

impl fmt::Debug for Encryption {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {}
    }
}

impl Encryption {
    /// The mode's name in Python NanaSQLite.
    #[must_use]
    pub fn mode(&self) -> &'static str {
        match self.0 {}
    }

    pub(crate) fn is_aead(&self) -> bool {
        match self.0 {}
    }

    pub(crate) fn encrypt(&self, _: &[u8]) -> Result<Vec<u8>> {
        match self.0 {}
    }

    pub(crate) fn decrypt(&self, _: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match self.0 {}
    }
}
