//! Repository names, tags and manifest references, validated as the distribution spec's grammar gives them.

use std::fmt;

use super::Digest;
use crate::error::Error;

/// The longest repository name accepted; the spec asks registries to take at least 255 characters with the hostname,
/// and ACR caps names at this length too.
pub(super) const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// A repository name: `/`-separated components of `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn parse(name: &str) -> Result<Self, Error> {
        if name.is_empty() || name.len() > MAX_NAME_LENGTH || !name.split('/').all(valid_component) {
            return Err(Error::NameInvalid(name.chars().take(MAX_NAME_LENGTH + 1).collect()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(&bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alnum(&bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return false;
        }
    }
    true
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::serde_as_text!(RepositoryName);

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn parse(tag: &str) -> Result<Self, Error> {
        let bytes = tag.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_TAG_LENGTH
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid { Ok(Self(tag.to_owned())) } else { Err(Error::TagInvalid(tag.chars().take(MAX_TAG_LENGTH + 1).collect())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::serde_as_text!(Tag);

/// What follows `/manifests/` in a path: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference with a `:` can only be a digest; anything else must be a valid tag.
    pub fn parse(reference: &str) -> Result<Self, Error> {
        if reference.contains(':') { Digest::parse(reference).map(Self::Digest) } else { Tag::parse(reference).map(Self::Tag) }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(tag) => tag.fmt(f),
            Self::Digest(digest) => digest.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for valid in ["a", "library/ubuntu", "a-b/c__d/e.f", "a---b", "0/1/2", &"a".repeat(255)] {
            assert!(RepositoryName::parse(valid).is_ok(), "{valid} should be valid");
        }
        for invalid in
            ["", "A", "Upper/case", "a//b", "/a", "a/", "a/../b", "..", "a..b", "-a", "a-", "a___b", "a b", "a/.b", &"a".repeat(256)]
        {
            assert!(matches!(RepositoryName::parse(invalid), Err(Error::NameInvalid(_))), "{invalid} should be invalid");
        }
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for valid in ["latest", "v1.2.3", "_x", "A-b_c.D", &"t".repeat(128)] {
            assert!(Tag::parse(valid).is_ok(), "{valid} should be valid");
        }
        for invalid in ["", ".x", "-x", "a/b", "a:b", "a b", &"t".repeat(129)] {
            assert!(matches!(Tag::parse(invalid), Err(Error::TagInvalid(_))), "{invalid} should be invalid");
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(Reference::parse(&digest), Ok(Reference::Digest(_))));
        assert!(matches!(Reference::parse("sha256:xyz"), Err(Error::DigestInvalid(_))));
    }
}

#[cfg(test)]
mod properties {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex_lite::Regex;

    use super::*;
    use crate::oci::strategies::{digest_text, name_text, near, tag_text};

    /// The spec's grammars, as regular expressions, to judge the hand-written parsers by.
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$").unwrap());
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap());

    fn wire(error: &Error) -> (&'static str, u16) {
        let (code, status) = error.wire();
        (code, status.as_u16())
    }

    /// Texts a name parser meets: anything, strings of the name alphabet, names with one change, long ones.
    fn name_candidates() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z0-9._/-]{0,24}", near(name_text()), near(name_text()), "[a-z]{250,260}"]
    }

    fn tag_candidates() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-zA-Z0-9._:/-]{0,12}", near(tag_text()), near(tag_text()), "[a-z]{120,135}"]
    }

    proptest! {
        #[test]
        fn names_of_the_grammar_parse_and_print_back(text in name_text()) {
            let name = RepositoryName::parse(&text).unwrap();
            prop_assert_eq!(name.to_string(), text);
            prop_assert_eq!(serde_json::from_str::<RepositoryName>(&serde_json::to_string(&name).unwrap()).unwrap(), name);
        }

        #[test]
        fn names_are_accepted_exactly_as_the_grammar_says(text in name_candidates()) {
            let valid = text.len() <= MAX_NAME_LENGTH && NAME.is_match(&text);
            match RepositoryName::parse(&text) {
                Ok(name) => prop_assert!(valid && name.as_str() == text, "{text:?} accepted"),
                Err(error) => {
                    prop_assert!(!valid, "{text:?} rejected");
                    prop_assert!(matches!(error, Error::NameInvalid(_)));
                    prop_assert_eq!(wire(&error), ("NAME_INVALID", 400));
                }
            }
        }

        #[test]
        fn tags_of_the_grammar_parse_and_print_back(text in tag_text()) {
            let tag = Tag::parse(&text).unwrap();
            prop_assert_eq!(tag.to_string(), text);
            prop_assert_eq!(serde_json::from_str::<Tag>(&serde_json::to_string(&tag).unwrap()).unwrap(), tag);
        }

        #[test]
        fn tags_are_accepted_exactly_as_the_grammar_says(text in tag_candidates()) {
            match Tag::parse(&text) {
                Ok(tag) => prop_assert!(TAG.is_match(&text) && tag.as_str() == text, "{text:?} accepted"),
                Err(error) => {
                    prop_assert!(!TAG.is_match(&text), "{text:?} rejected");
                    prop_assert!(matches!(error, Error::TagInvalid(_)));
                    prop_assert_eq!(wire(&error), ("MANIFEST_INVALID", 400));
                }
            }
        }

        #[test]
        fn references_of_the_grammar_parse_and_print_back(text in prop_oneof![tag_text(), digest_text()]) {
            let reference = Reference::parse(&text).unwrap();
            prop_assert_eq!(reference.to_string(), text.as_str());
            prop_assert_eq!(matches!(reference, Reference::Digest(_)), text.contains(':'));
        }

        /// A reference with a `:` is judged as a digest, anything else as a tag, and fails with that one's error.
        #[test]
        fn references_are_the_tag_or_the_digest_they_read_as(
            text in prop_oneof![tag_candidates(), near(digest_text()), near(tag_text())]
        ) {
            match (Reference::parse(&text), text.contains(':')) {
                (Ok(Reference::Digest(digest)), true) => prop_assert_eq!(digest, Digest::parse(&text).unwrap()),
                (Ok(Reference::Tag(tag)), false) => prop_assert_eq!(tag, Tag::parse(&text).unwrap()),
                (Err(error), true) => {
                    prop_assert!(Digest::parse(&text).is_err());
                    prop_assert_eq!(wire(&error), ("DIGEST_INVALID", 400));
                }
                (Err(error), false) => {
                    prop_assert!(Tag::parse(&text).is_err());
                    prop_assert_eq!(wire(&error), ("MANIFEST_INVALID", 400));
                }
                (Ok(reference), _) => prop_assert!(false, "{text:?} read as {reference:?}"),
            }
        }
    }
}
