//! The token signing key and the public keys that verify it.
//!
//! The signing key is an ECDSA P-256 key (JWT `ES256`) derived from a secret seed of at least 32 random bytes: the
//! seed lives in `<data-dir>/signing-key` for `berth serve`, and in a Secrets Manager secret that the template
//! generates on AWS, so no process ever has to create and race to store a key. Only the token function reads the
//! seed; the others hold only public keys ([`VerifyingKeys`]), published as JWKs by key id.

use std::collections::HashMap;

use aws_lc_rs::{
    digest,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

/// The shortest seed accepted: 256 bits of entropy when it is random bytes, and the template's generated secret
/// (64 characters of letters and digits) carries about 380.
pub const MIN_SEED_BYTES: usize = 32;

/// The key the token function signs with.
pub struct SigningKey {
    pub(super) encoding: EncodingKey,
    public: PublicKey,
}

/// A verifying key in JWK form (RFC 7517 §4, EC public key), as published for the verifying functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key seed holds {0} bytes; at least {MIN_SEED_BYTES} are needed")]
    SeedTooShort(usize),
    #[error("invalid public key {0}")]
    InvalidPublicKey(String),
}

impl SigningKey {
    /// The key a seed stands for: the same seed gives the same key in every process.
    pub fn from_seed(seed: &[u8]) -> Result<Self, KeyError> {
        if seed.len() < MIN_SEED_BYTES {
            return Err(KeyError::SeedTooShort(seed.len()));
        }
        // A hash of the seed is a valid P-256 scalar unless it is zero or at least the group order, a chance of about
        // 2^-32; the counter moves past such a value.
        for counter in 0u8..=255 {
            let mut context = digest::Context::new(&digest::SHA256);
            context.update(b"berth token signing key\0");
            context.update(seed);
            context.update(&[counter]);
            let scalar = context.finish();
            if let Ok(key_pair) = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &rfc5915_der(scalar.as_ref())) {
                let pkcs8 = key_pair.to_pkcs8v1().expect("a parsed key serializes");
                let public = PublicKey::from_point(key_pair.public_key().as_ref());
                return Ok(Self { encoding: EncodingKey::from_ec_der(pkcs8.as_ref()), public });
            }
        }
        unreachable!("256 hashes of a seed are never all outside the P-256 group order")
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// An RFC 5915 `ECPrivateKey` holding `scalar` on P-256, without the optional public key (derived on parsing).
fn rfc5915_der(scalar: &[u8]) -> Vec<u8> {
    const PRIME256V1: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[0xa0, 0x0a]);
    der.extend_from_slice(&PRIME256V1);
    der
}

impl PublicKey {
    /// From an uncompressed SEC1 point (`04 || x || y`); the key id is derived from the point, so the same key
    /// always has the same id.
    fn from_point(point: &[u8]) -> Self {
        let (x, y) = point[1..].split_at(32);
        let kid = hex::encode(&digest::digest(&digest::SHA256, point).as_ref()[..12]);
        Self { kid, kty: "EC".to_owned(), crv: "P-256".to_owned(), x: URL_SAFE_NO_PAD.encode(x), y: URL_SAFE_NO_PAD.encode(y) }
    }

    fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(KeyError::InvalidPublicKey(format!("{}: not an EC P-256 key", self.kid)));
        }
        DecodingKey::from_ec_components(&self.x, &self.y).map_err(|error| KeyError::InvalidPublicKey(format!("{}: {error}", self.kid)))
    }
}

/// The public keys tokens are verified with, by key id.
#[derive(Clone, Default)]
pub struct VerifyingKeys(HashMap<String, DecodingKey>);

impl VerifyingKeys {
    pub fn new(keys: &[PublicKey]) -> Result<Self, KeyError> {
        keys.iter().map(|key| Ok((key.kid.clone(), key.decoding_key()?))).collect::<Result<_, _>>().map(Self)
    }

    pub(super) fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.0.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.0.contains_key(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_derives_the_same_key() {
        let seed = [7u8; 32];
        let (first, second) = (SigningKey::from_seed(&seed).unwrap(), SigningKey::from_seed(&seed).unwrap());
        assert_eq!(first.public_key(), second.public_key());
        assert_ne!(first.public_key(), SigningKey::from_seed(&[8u8; 32]).unwrap().public_key());
        assert_eq!(first.public_key().kid.len(), 24);
        assert!(matches!(SigningKey::from_seed(&[1u8; 31]), Err(KeyError::SeedTooShort(31))));
    }

    #[test]
    fn only_ec_p256_keys_verify() {
        let mut key = SigningKey::from_seed(&[7u8; 32]).unwrap().public_key().clone();
        assert!(VerifyingKeys::new(std::slice::from_ref(&key)).unwrap().contains(&key.kid));
        key.crv = "P-384".to_owned();
        assert!(VerifyingKeys::new(&[key]).is_err());
    }
}
