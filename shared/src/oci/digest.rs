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
        if !block_count_fits(algorithm, state) {
            return None;
        }
        match algorithm {
            Algorithm::Sha256 => Sha256::deserialize(state.try_into().ok()?).ok().map(Self::Sha256),
            Algorithm::Sha512 => Sha512::deserialize(state.try_into().ok()?).ok().map(Self::Sha512),
        }
    }
}

/// Whether a saved state's block count (little-endian, after the eight state words) is one SHA-2 can finish: the
/// message's length in bits must fit the 64-bit (SHA-256) or 128-bit (SHA-512) length field, or finishing overflows.
fn block_count_fits(algorithm: Algorithm, state: &[u8]) -> bool {
    match algorithm {
        Algorithm::Sha256 => {
            state.get(32..40).and_then(|count| count.try_into().ok()).is_some_and(|count| u64::from_le_bytes(count) < 1 << 55)
        }
        Algorithm::Sha512 => {
            state.get(64..80).and_then(|count| count.try_into().ok()).is_some_and(|count| u128::from_le_bytes(count) < 1 << 118)
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

    #[test]
    fn saved_state_holds_the_block_count_where_restore_checks_it() {
        // The layout is sha2's, not a documented format: this fails if an update moves the counter.
        for (algorithm, block, counter) in [(Algorithm::Sha256, 64, 32..40), (Algorithm::Sha512, 128, 64..80)] {
            let mut hasher = DigestHasher::new(algorithm);
            hasher.update(&vec![0; 3 * block + 1]);
            let state = hasher.save();
            assert_eq!(state[counter.clone()][0], 3);
            assert!(state[counter.start + 1..counter.end].iter().all(|byte| *byte == 0));
        }
    }

    #[test]
    fn a_state_counting_more_blocks_than_sha2_can_is_corrupt() {
        // Finishing such a state once overflowed the message's bit length (a panic in debug builds).
        for (algorithm, counter) in [(Algorithm::Sha256, 32..40), (Algorithm::Sha512, 64..80)] {
            let mut state = DigestHasher::new(algorithm).save();
            state[counter].fill(0xff);
            assert!(DigestHasher::restore(algorithm, &state).is_none());
        }
    }
}

#[cfg(test)]
mod properties {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex_lite::Regex;

    use super::*;
    use crate::oci::strategies::{digest_text, near};

    /// The registered algorithms' grammars, as a regular expression, to judge the parser by.
    static DIGEST: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$").unwrap());

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
    }

    /// Texts a digest parser meets: anything, digest-shaped texts of other algorithms, cases and lengths, and digests
    /// with one change.
    fn digest_candidates() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "(sha256|sha512|sha384|SHA256|md5|sha256\\+b64|)(:|)[0-9a-fA-Fg]{62,66}",
            "(sha256|sha512|sha384|SHA256|md5|sha256\\+b64|)(:|)[0-9a-fA-Fg]{126,130}",
            near(digest_text()),
            near(digest_text()),
        ]
    }

    proptest! {
        #[test]
        fn digests_of_the_grammar_parse_and_print_back(text in digest_text()) {
            let digest = Digest::parse(&text).unwrap();
            prop_assert_eq!(digest.to_string(), text.as_str());
            prop_assert_eq!(format!("{}:{}", digest.algorithm().as_str(), digest.hex()), text.as_str());
            prop_assert_eq!(serde_json::from_str::<Digest>(&serde_json::to_string(&digest).unwrap()).unwrap(), digest);
        }

        #[test]
        fn digests_are_accepted_exactly_as_the_grammar_says(text in digest_candidates()) {
            match Digest::parse(&text) {
                Ok(digest) => prop_assert!(DIGEST.is_match(&text) && digest.to_string() == text, "{text:?} accepted"),
                Err(error) => {
                    prop_assert!(!DIGEST.is_match(&text), "{text:?} rejected");
                    prop_assert!(matches!(error, Error::DigestInvalid(_)));
                    let (code, status) = error.wire();
                    prop_assert_eq!((code, status.as_u16()), ("DIGEST_INVALID", 400));
                }
            }
        }

        #[test]
        fn digests_of_content_parse_back(algorithm in algorithm(), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let digest = Digest::of(algorithm, &bytes);
            prop_assert_eq!(digest.algorithm(), algorithm);
            prop_assert_eq!(Digest::parse(&digest.to_string()).unwrap(), digest);
        }

        /// However an upload's bytes are split between requests, the saved and restored hash ends as the whole's.
        #[test]
        fn saved_hash_state_continues_where_it_stopped(
            algorithm in algorithm(),
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut hasher = DigestHasher::new(algorithm);
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                hasher.update(&bytes[from..cut]);
                hasher = DigestHasher::restore(algorithm, &hasher.save()).unwrap();
                from = cut;
            }
            prop_assert_eq!(hasher.finish(), Digest::of(algorithm, &bytes));
        }

        /// A stored state is the registry's own, but a corrupt one must fail to restore or hash on, never panic.
        #[test]
        fn corrupt_hash_state_never_panics(
            algorithm in algorithm(),
            prefix in prop::collection::vec(any::<u8>(), 0..200),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            garbage in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut hasher = DigestHasher::new(algorithm);
            hasher.update(&prefix);
            let mut state = hasher.save();
            for (at, value) in flips {
                let at = at.index(state.len());
                state[at] = value;
            }
            for state in [state, garbage] {
                if let Some(mut restored) = DigestHasher::restore(algorithm, &state) {
                    restored.update(b"more");
                    prop_assert_eq!(restored.finish().algorithm(), algorithm);
                }
            }
        }
    }
}
