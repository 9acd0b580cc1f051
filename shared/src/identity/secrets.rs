//! Passwords Berth generates (service principals, the admin user, repository-scoped tokens): 256 random bits,
//! shown once, stored only as a SHA-256 hash and compared in constant time.
//!
//! One SHA-256 suffices for secrets of this entropy (a slow KDF guards guessable human passwords, which Berth never
//! accepts); the hash is compared as a fixed 32-byte value, so the comparison does not depend on where it differs.

use aws_lc_rs::{digest, rand};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

const SECRET_BYTES: usize = 32;

/// A stored password: its hash and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// Hex SHA-256 of the password.
    pub sha256: String,
    /// Unix seconds; also names the credential in refresh tokens, so that renewing it ends their logins.
    pub created_at: u64,
}

/// A fresh password and its stored form.
pub fn generate(created_at: u64) -> (String, StoredSecret) {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::fill(&mut bytes).expect("the system random generator works");
    let password = URL_SAFE_NO_PAD.encode(bytes);
    let stored = StoredSecret { sha256: hash(&password), created_at };
    (password, stored)
}

/// SHA-256 of `text`, in hex: how secrets are stored, and how the failed-login counters name who failed.
pub(super) fn hash(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

impl StoredSecret {
    /// Whether `password` is this secret, in time independent of where they differ.
    pub fn matches(&self, password: &str) -> bool {
        let presented = digest::digest(&digest::SHA256, password.as_bytes());
        let Ok(stored) = hex::decode(&self.sha256) else {
            return false;
        };
        stored.len() == presented.as_ref().len() && bool::from(stored.as_slice().ct_eq(presented.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_random_and_only_their_hash_is_kept() {
        let (password, stored) = generate(5);
        let (other, _) = generate(5);
        assert_ne!(password, other);
        assert_eq!(password.len(), 43, "256 bits in base64url");
        assert!(stored.matches(&password));
        assert!(!stored.matches(&other));
        assert!(!stored.matches(""));
        assert!(!stored.sha256.contains(&password));
        assert_eq!(stored.sha256.len(), 64);
    }
}
