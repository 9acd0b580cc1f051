//! Manifest parsing and validation: OCI image manifests and indexes, Docker schema 2 manifests and lists, OCI artifacts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;
use crate::error::Error;

/// The media types Berth understands.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Layers that live outside registries (Windows base layers); manifests may reference them without the blob.
    pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_NONDISTRIBUTABLE_PREFIX: &str = "application/vnd.oci.image.layer.nondistributable.";
}

/// A content descriptor as manifests, indexes and the referrers API carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Descriptor {
    /// Whether the registry must hold this layer: foreign and non-distributable layers are fetched from their URLs.
    fn is_distributable(&self) -> bool {
        self.media_type != media_types::DOCKER_FOREIGN_LAYER && !self.media_type.starts_with(media_types::OCI_NONDISTRIBUTABLE_PREFIX)
    }
}

/// The fields of any manifest kind; which are required depends on the media type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A manifest that passed validation, with what the registry must check and index about it.
#[derive(Debug)]
pub struct ParsedManifest {
    pub media_type: String,
    /// The artifact type the referrers API reports: `artifactType`, else the config's media type.
    pub artifact_type: Option<String>,
    /// Blobs (config and layers) that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index) that must exist in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// Validates `bytes` as a manifest. The media type comes from the body's `mediaType`, else from `content_type`.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, Error> {
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|error| Error::ManifestInvalid(format!("not a valid manifest: {error}")))?;
        if raw.schema_version != Some(2) {
            return Err(Error::ManifestInvalid("schemaVersion must be 2".into()));
        }
        let header_type = content_type.map(|value| value.split(';').next().unwrap_or_default().trim()).filter(|value| !value.is_empty());
        let media_type = match (raw.media_type.as_deref(), header_type) {
            (Some(body), Some(header)) if body != header => {
                return Err(Error::ManifestInvalid(format!("mediaType {body} does not match Content-Type {header}")));
            }
            (Some(body), _) => body.to_owned(),
            (None, Some(header)) => header.to_owned(),
            (None, None) => return Err(Error::ManifestInvalid("no mediaType in the manifest and no Content-Type".into())),
        };
        let mut parsed = Self {
            media_type,
            artifact_type: raw.artifact_type,
            blobs: Vec::new(),
            manifests: Vec::new(),
            subject: raw.subject,
            annotations: raw.annotations,
        };
        match parsed.media_type.as_str() {
            media_types::OCI_MANIFEST | media_types::DOCKER_MANIFEST => {
                let config = raw.config.ok_or_else(|| Error::ManifestInvalid("an image manifest needs a config".into()))?;
                let layers = raw.layers.ok_or_else(|| Error::ManifestInvalid("an image manifest needs layers".into()))?;
                if raw.manifests.is_some() {
                    return Err(Error::ManifestInvalid("an image manifest cannot list manifests".into()));
                }
                if parsed.artifact_type.is_none() && parsed.media_type == media_types::OCI_MANIFEST {
                    parsed.artifact_type = Some(config.media_type.clone());
                }
                parsed.blobs = std::iter::once(config)
                    .chain(layers.into_iter().filter(Descriptor::is_distributable))
                    .map(|descriptor| descriptor.digest)
                    .collect();
            }
            media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST => {
                let manifests = raw.manifests.ok_or_else(|| Error::ManifestInvalid("an index needs manifests".into()))?;
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(Error::ManifestInvalid("an index cannot have a config or layers".into()));
                }
                parsed.manifests = manifests.into_iter().map(|descriptor| descriptor.digest).collect();
            }
            other => return Err(Error::ManifestInvalid(format!("unsupported manifest media type {other}"))),
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    fn image(media_type: &str) -> serde_json::Value {
        json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('a'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('b'), "size": 3},
                {"mediaType": media_types::DOCKER_FOREIGN_LAYER, "digest": digest('c'), "size": 4, "urls": ["https://example.com/l"]}
            ]
        })
    }

    fn parse(value: &serde_json::Value, content_type: Option<&str>) -> Result<ParsedManifest, Error> {
        ParsedManifest::parse(&serde_json::to_vec(value).unwrap(), content_type)
    }

    #[test]
    fn image_manifest_references_its_distributable_blobs() {
        for media_type in [media_types::OCI_MANIFEST, media_types::DOCKER_MANIFEST] {
            let parsed = parse(&image(media_type), Some(media_type)).unwrap();
            assert_eq!(parsed.blobs.iter().map(Digest::to_string).collect::<Vec<_>>(), [digest('a'), digest('b')]);
            assert!(parsed.manifests.is_empty());
        }
    }

    #[test]
    fn oci_artifact_type_falls_back_to_the_config_media_type() {
        assert_eq!(
            parse(&image(media_types::OCI_MANIFEST), None).unwrap().artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        let mut artifact = image(media_types::OCI_MANIFEST);
        artifact["artifactType"] = json!("application/vnd.example.sbom");
        artifact["subject"] = json!({"mediaType": media_types::OCI_MANIFEST, "digest": digest('d'), "size": 10});
        let parsed = parse(&artifact, None).unwrap();
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/vnd.example.sbom"));
        assert_eq!(parsed.subject.unwrap().digest.to_string(), digest('d'));
    }

    #[test]
    fn index_references_child_manifests() {
        let index = json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": [
            {"mediaType": media_types::OCI_MANIFEST, "digest": digest('e'), "size": 5, "platform": {"os": "linux", "architecture": "arm64"}}
        ]});
        let parsed = parse(&index, None).unwrap();
        assert_eq!(parsed.manifests.iter().map(Digest::to_string).collect::<Vec<_>>(), [digest('e')]);
    }

    #[test]
    fn media_type_comes_from_the_header_when_the_body_has_none() {
        let mut manifest = image(media_types::DOCKER_MANIFEST);
        manifest.as_object_mut().unwrap().remove("mediaType");
        assert_eq!(
            parse(&manifest, Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8")).unwrap().media_type,
            media_types::DOCKER_MANIFEST
        );
        assert!(matches!(parse(&manifest, None), Err(Error::ManifestInvalid(_))));
    }

    #[test]
    fn rejects_what_is_not_a_valid_manifest() {
        let mut wrong_version = image(media_types::OCI_MANIFEST);
        wrong_version["schemaVersion"] = json!(1);
        let mut bad_digest = image(media_types::OCI_MANIFEST);
        bad_digest["config"]["digest"] = json!("sha256:nothex");
        let mut no_layers = image(media_types::OCI_MANIFEST);
        no_layers.as_object_mut().unwrap().remove("layers");
        let cases = [
            (wrong_version, None),
            (bad_digest, None),
            (no_layers, None),
            (image(media_types::OCI_MANIFEST), Some(media_types::DOCKER_MANIFEST)),
            (image("application/vnd.docker.distribution.manifest.v1+prettyjws"), None),
            (json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX}), None),
            (json!([1, 2]), None),
        ];
        for (manifest, content_type) in cases {
            assert!(matches!(parse(&manifest, content_type), Err(Error::ManifestInvalid(_))), "{manifest} should be invalid");
        }
        assert!(matches!(ParsedManifest::parse(b"not json", None), Err(Error::ManifestInvalid(_))));
    }
}
