//! Repository names, tags and manifest references, validated as the distribution spec's grammar gives them.

use std::fmt;

use super::Digest;
use crate::error::Error;

/// The longest repository name accepted; the spec asks registries to take at least 255 characters with the hostname,
/// and ACR caps names at this length too.
const MAX_NAME_LENGTH: usize = 255;
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
