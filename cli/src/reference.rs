//! Image references as the repository commands take them: `NAME`, `NAME:TAG` or `NAME@DIGEST`, where NAME is the
//! repository alone (it may contain slashes, but no registry host: `--registry` says where the registry is).

use berth::oci::{Digest, Reference, RepositoryName, Tag};

/// `NAME`, `NAME:TAG` or `NAME@DIGEST`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRef {
    pub name: RepositoryName,
    /// `None` for the whole repository.
    pub reference: Option<Reference>,
}

/// `NAME:TAG`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedImage {
    pub name: RepositoryName,
    pub tag: Tag,
}

/// Parses a bare repository name (clap value parser).
pub fn parse_name(text: &str) -> Result<RepositoryName, String> {
    RepositoryName::parse(text).map_err(|error| {
        // Whoever pastes `host:port/repo` or `repo:tag` where a name belongs gets told why it fails.
        let first = text.split('/').next().unwrap_or_default();
        if text.contains('/') && (first.contains(':') || first.contains('.') || first == "localhost") {
            format!("{error} (give the repository without the registry host; --registry says where the registry is)")
        } else if text.contains(':') || text.contains('@') {
            format!("{error} (a repository name, without :TAG or @DIGEST)")
        } else {
            error.to_string()
        }
    })
}

/// Parses `NAME`, `NAME:TAG` or `NAME@DIGEST` (clap value parser).
pub fn parse_image(text: &str) -> Result<ImageRef, String> {
    if let Some((name, digest)) = text.split_once('@') {
        if name.rsplit_once(':').is_some_and(|(_, tag)| !tag.contains('/')) {
            return Err(format!("{text}: give a tag or a digest, not both"));
        }
        let digest = Digest::parse(digest).map_err(|error| error.to_string())?;
        return Ok(ImageRef { name: parse_name(name)?, reference: Some(Reference::Digest(digest)) });
    }
    // Only a colon after the last slash starts a tag: one before it belongs to a `host:port` that is not allowed in a
    // name anyway, and then the name check reports it.
    match text.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => {
            let tag = Tag::parse(tag).map_err(|error| error.to_string())?;
            Ok(ImageRef { name: parse_name(name)?, reference: Some(Reference::Tag(tag)) })
        }
        _ => Ok(ImageRef { name: parse_name(text)?, reference: None }),
    }
}

/// Parses `NAME:TAG` (clap value parser).
pub fn parse_tagged(text: &str) -> Result<TaggedImage, String> {
    match parse_image(text)? {
        ImageRef { name, reference: Some(Reference::Tag(tag)) } => Ok(TaggedImage { name, tag }),
        _ => Err(format!("{text}: expected NAME:TAG")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn name(text: &str) -> RepositoryName {
        RepositoryName::parse(text).unwrap()
    }

    #[test]
    fn names_with_slashes_tags_and_digests() {
        let cases = [
            ("ubuntu", ImageRef { name: name("ubuntu"), reference: None }),
            ("team/app/web", ImageRef { name: name("team/app/web"), reference: None }),
            ("team/app:v1.2", ImageRef { name: name("team/app"), reference: Some(Reference::Tag(Tag::parse("v1.2").unwrap())) }),
            (
                "registry.example/app:latest",
                ImageRef { name: name("registry.example/app"), reference: Some(Reference::Tag(Tag::parse("latest").unwrap())) },
            ),
            (
                &format!("team/app@{DIGEST}"),
                ImageRef { name: name("team/app"), reference: Some(Reference::Digest(Digest::parse(DIGEST).unwrap())) },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_image(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_hosts_bad_parts_and_tag_plus_digest() {
        let host = parse_image("localhost:5000/app:v1").unwrap_err();
        assert!(host.contains("without the registry host"), "{host}");
        assert!(parse_image("localhost:5000/app").unwrap_err().contains("registry host"));
        assert!(parse_image("app:").unwrap_err().contains("invalid tag"));
        assert!(parse_image("app:-x").unwrap_err().contains("invalid tag"));
        assert!(parse_image("app@sha256:short").unwrap_err().contains("invalid digest"));
        assert!(parse_image("App:v1").unwrap_err().contains("invalid repository name"));
        assert!(parse_image("a//b").unwrap_err().contains("invalid repository name"));
        assert!(parse_image("").is_err());
        assert!(parse_image(&format!("app:v1@{DIGEST}")).unwrap_err().contains("not both"));
    }

    #[test]
    fn untag_needs_a_tag() {
        assert_eq!(parse_tagged("a/b:v1"), Ok(TaggedImage { name: name("a/b"), tag: Tag::parse("v1").unwrap() }));
        assert!(parse_tagged("a/b").unwrap_err().contains("expected NAME:TAG"));
        assert!(parse_tagged(&format!("a/b@{DIGEST}")).unwrap_err().contains("expected NAME:TAG"));
    }

    #[test]
    fn bare_names_explain_what_does_not_belong() {
        assert_eq!(parse_name("a/b"), Ok(name("a/b")));
        assert!(parse_name("a/b:v1").unwrap_err().contains("without :TAG"));
        assert!(parse_name("127.0.0.1:5000/a").unwrap_err().contains("registry host"));
    }
}
