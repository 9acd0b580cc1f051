//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a hasher whose state can be saved between requests.

use std::{fmt, str::FromStr};

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Error;

/// The digest algorithms the spec registers; both are accepted everywhere a digest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_length(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// A validated content digest: a known algorithm and its lowercase hex encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(digest: &str) -> Result<Self, Error> {
        let invalid = || Error::DigestInvalid(digest.chars().take(140).collect());
        let (algorithm, hex) = digest.split_once(':').ok_or_else(invalid)?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid()),
        };
        let well_formed = hex.len() == algorithm.hex_length() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(invalid());
        }
        Ok(Self { algorithm, hex: hex.to_owned() })
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(digest: &str) -> Result<Self, Error> {
        Self::parse(digest)
    }
}

super::serde_as_text!(Digest);

/// An incremental hasher for either algorithm. Its state survives a round trip through bytes, so an upload spread over
/// many stateless requests never re-reads what it already hashed.
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Sha256(_) => Algorithm::Sha256,
            Self::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(hasher) => (Algorithm::Sha256, hex::encode(hasher.finalize())),
            Self::Sha512(hasher) => (Algorithm::Sha512, hex::encode(hasher.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The hasher's internal state, to be stored with an upload session.
    pub fn save(&self) -> Vec<u8> {
        match self {
            Self::Sha256(hasher) => hasher.serialize().to_vec(),
            Self::Sha512(hasher) => hasher.serialize().to_vec(),
        }
    }

    /// Rebuilds a hasher from [`DigestHasher::save`]'s bytes; `None` when they are not a valid state.
    pub fn restore(algorithm: Algorithm, state: &[u8]) -> Option<Self> {
        match algorithm {
            Algorithm::Sha256 => Sha256::deserialize(state.try_into().ok()?).ok().map(Self::Sha256),
            Algorithm::Sha512 => Sha512::deserialize(state.try_into().ok()?).ok().map(Self::Sha512),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn parses_and_prints_both_algorithms() {
        assert_eq!(Digest::parse(ABC_SHA256).unwrap().to_string(), ABC_SHA256);
        let sha512 = format!("sha512:{}", "0".repeat(128));
        assert_eq!(Digest::parse(&sha512).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_malformed_digests() {
        for invalid in [
            "",
            "sha256",
            "sha256:",
            "md5:abc",
            "sha256:ABC",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha512:{}", "a".repeat(64)),
        ] {
            assert!(matches!(Digest::parse(invalid), Err(Error::DigestInvalid(_))), "{invalid} should be invalid");
        }
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"abc").to_string(), ABC_SHA256);
        assert!(Digest::of(Algorithm::Sha512, b"abc").hex().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn saved_state_continues_where_it_stopped() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = DigestHasher::new(algorithm);
            first.update(b"hello ");
            let mut resumed = DigestHasher::restore(algorithm, &first.save()).expect("state restores");
            resumed.update(b"world");
            assert_eq!(resumed.finish(), Digest::of(algorithm, b"hello world"));
        }
        assert!(DigestHasher::restore(Algorithm::Sha256, b"garbage").is_none());
    }
}
