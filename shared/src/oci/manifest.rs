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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::oci::strategies::digest;

    /// Where a manifest states its media type: in its body, in the request's `Content-Type` (with or without
    /// parameters), or both.
    #[derive(Debug, Clone, Copy)]
    enum Stated {
        Body,
        Header,
        HeaderWithParameters,
        Both,
    }

    /// A manifest built from parts, with what parsing it must report.
    #[derive(Debug)]
    struct Built {
        bytes: Vec<u8>,
        content_type: Option<String>,
        media_type: &'static str,
        artifact_type: Option<String>,
        blobs: Vec<Digest>,
        manifests: Vec<Digest>,
        subject: Option<Descriptor>,
        annotations: Option<BTreeMap<String, String>>,
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z]{1,8}/[a-z0-9.+-]{1,24}", any::<String>()]
    }

    fn annotations() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
        prop::option::of(prop::collection::btree_map(text(), text(), 0..3))
    }

    fn descriptor(media_type: impl Strategy<Value = String>) -> impl Strategy<Value = Descriptor> {
        let platform = prop::option::of(
            ("[a-z]{1,8}", "[a-z0-9]{1,8}").prop_map(|(os, architecture)| json!({"os": os, "architecture": architecture})),
        );
        let urls = prop::option::of(prop::collection::vec("https://[a-z]{1,8}\\.example/[a-z]{0,8}", 0..2));
        (media_type, digest(), any::<u64>(), prop::option::of(text()), annotations(), urls, platform).prop_map(
            |(media_type, digest, size, artifact_type, annotations, urls, platform)| Descriptor {
                media_type,
                digest,
                size,
                artifact_type,
                annotations,
                urls,
                platform,
            },
        )
    }

    fn layer_type() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("application/vnd.oci.image.layer.v1.tar+gzip".to_owned()),
            Just(media_types::DOCKER_FOREIGN_LAYER.to_owned()),
            "application/vnd\\.oci\\.image\\.layer\\.nondistributable\\.v1\\.tar(\\+gzip)?",
            text(),
        ]
    }

    fn stated() -> impl Strategy<Value = Stated> {
        prop_oneof![Just(Stated::Body), Just(Stated::Header), Just(Stated::HeaderWithParameters), Just(Stated::Both)]
    }

    /// The manifest's JSON with its media type stated as `stated` says, and the `Content-Type` that goes with it.
    fn finish(mut body: Value, media_type: &str, stated: Stated) -> (Vec<u8>, Option<String>) {
        let content_type = match stated {
            Stated::Body => None,
            Stated::Header | Stated::Both => Some(media_type.to_owned()),
            Stated::HeaderWithParameters => Some(format!("{media_type}; charset=utf-8")),
        };
        if matches!(stated, Stated::Body | Stated::Both) {
            body["mediaType"] = json!(media_type);
        }
        (serde_json::to_vec(&body).unwrap(), content_type)
    }

    /// Adds the fields every manifest kind may carry.
    fn with_common(
        mut body: Value,
        artifact_type: &Option<String>,
        subject: &Option<Descriptor>,
        annotations: &Option<BTreeMap<String, String>>,
    ) -> Value {
        if let Some(artifact_type) = artifact_type {
            body["artifactType"] = json!(artifact_type);
        }
        if let Some(subject) = subject {
            body["subject"] = serde_json::to_value(subject).unwrap();
        }
        if let Some(annotations) = annotations {
            body["annotations"] = json!(annotations);
        }
        body
    }

    fn image() -> impl Strategy<Value = Built> {
        (
            prop_oneof![Just(media_types::OCI_MANIFEST), Just(media_types::DOCKER_MANIFEST)],
            descriptor(text()),
            prop::collection::vec(descriptor(layer_type()), 0..6),
            prop::option::of(text()),
            prop::option::of(descriptor(Just(media_types::OCI_MANIFEST.to_owned()))),
            annotations(),
            stated(),
        )
            .prop_map(|(media_type, config, layers, artifact_type, subject, annotations, stated)| {
                let body = json!({"schemaVersion": 2, "config": config, "layers": layers});
                let (bytes, content_type) = finish(with_common(body, &artifact_type, &subject, &annotations), media_type, stated);
                let blobs = std::iter::once(&config)
                    .chain(layers.iter().filter(|layer| layer.is_distributable()))
                    .map(|descriptor| descriptor.digest.clone())
                    .collect();
                // Only an OCI image's config type stands in for a missing artifactType.
                let fallback = (media_type == media_types::OCI_MANIFEST).then(|| config.media_type.clone());
                Built {
                    bytes,
                    content_type,
                    media_type,
                    artifact_type: artifact_type.or(fallback),
                    blobs,
                    manifests: Vec::new(),
                    subject,
                    annotations,
                }
            })
    }

    fn index() -> impl Strategy<Value = Built> {
        let child_type = prop_oneof![Just(media_types::OCI_MANIFEST.to_owned()), Just(media_types::DOCKER_MANIFEST.to_owned()), text()];
        (
            prop_oneof![Just(media_types::OCI_INDEX), Just(media_types::DOCKER_MANIFEST_LIST)],
            prop::collection::vec(descriptor(child_type), 0..6),
            prop::option::of(text()),
            prop::option::of(descriptor(Just(media_types::OCI_INDEX.to_owned()))),
            annotations(),
            stated(),
        )
            .prop_map(|(media_type, children, artifact_type, subject, annotations, stated)| {
                let body = json!({"schemaVersion": 2, "manifests": children});
                let (bytes, content_type) = finish(with_common(body, &artifact_type, &subject, &annotations), media_type, stated);
                let manifests = children.iter().map(|child| child.digest.clone()).collect();
                Built { bytes, content_type, media_type, artifact_type, blobs: Vec::new(), manifests, subject, annotations }
            })
    }

    /// JSON of any shape, its keys often the manifest's own, so that near-manifests come up.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            prop_oneof![
                Just("schemaVersion"),
                Just("mediaType"),
                Just("config"),
                Just("layers"),
                Just("manifests"),
                Just("subject"),
                Just("annotations"),
                Just("artifactType"),
                Just("digest"),
                Just("size"),
                Just("platform"),
            ]
            .prop_map(str::to_owned),
            any::<String>(),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            Just(json!(2)),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![crate::oci::strategies::digest_text(), Just(media_types::OCI_MANIFEST.to_owned()), any::<String>()]
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn content_type() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            Just(media_types::OCI_MANIFEST.to_owned()),
            Just(media_types::OCI_INDEX.to_owned()),
            Just(media_types::DOCKER_MANIFEST_LIST.to_owned()),
            any::<String>(),
        ])
    }

    /// Whatever the outcome, a rejection is MANIFEST_INVALID, and what passes is one of the kinds Berth knows with
    /// the references that kind has.
    fn check(result: Result<ParsedManifest, Error>) -> Result<(), TestCaseError> {
        match result {
            Ok(parsed) => match parsed.media_type.as_str() {
                media_types::OCI_MANIFEST | media_types::DOCKER_MANIFEST => {
                    prop_assert!(!parsed.blobs.is_empty() && parsed.manifests.is_empty(), "{:?}", parsed);
                }
                media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST => prop_assert!(parsed.blobs.is_empty(), "{:?}", parsed),
                other => prop_assert!(false, "accepted as {other}"),
            },
            Err(error) => {
                prop_assert!(matches!(error, Error::ManifestInvalid(_)), "{:?}", error);
                prop_assert_eq!(error.wire(), ("MANIFEST_INVALID", axum::http::StatusCode::BAD_REQUEST));
            }
        }
        Ok(())
    }

    proptest! {
        /// A manifest or index built from parts parses, and reports the parts the registry checks and indexes.
        #[test]
        fn manifests_report_what_they_were_built_from(built in prop_oneof![image(), index()]) {
            let parsed = ParsedManifest::parse(&built.bytes, built.content_type.as_deref()).unwrap();
            prop_assert_eq!(parsed.media_type, built.media_type);
            prop_assert_eq!(parsed.artifact_type, built.artifact_type);
            prop_assert_eq!(parsed.blobs, built.blobs);
            prop_assert_eq!(parsed.manifests, built.manifests);
            prop_assert_eq!(parsed.subject, built.subject);
            prop_assert_eq!(parsed.annotations, built.annotations);
        }

        /// A manifest whose body and `Content-Type` disagree on the kind is refused.
        #[test]
        fn body_and_header_must_agree_on_the_kind(built in prop_oneof![image(), index()], header in content_type()) {
            let stated_in_body = serde_json::from_slice::<Value>(&built.bytes).unwrap().get("mediaType").is_some();
            let header_type = header.as_deref().map(|value| value.split(';').next().unwrap_or_default().trim()).filter(|value| !value.is_empty());
            let result = ParsedManifest::parse(&built.bytes, header.as_deref());
            if stated_in_body && header_type.is_some_and(|header| header != built.media_type) {
                prop_assert!(matches!(result, Err(Error::ManifestInvalid(_))));
            }
            check(result)?;
        }

        #[test]
        fn any_bytes_are_a_manifest_or_manifest_invalid(bytes in prop::collection::vec(any::<u8>(), 0..512), header in content_type()) {
            check(ParsedManifest::parse(&bytes, header.as_deref()))?;
        }

        #[test]
        fn any_json_is_a_manifest_or_manifest_invalid(value in json_value(), header in content_type()) {
            check(ParsedManifest::parse(&serde_json::to_vec(&value).unwrap(), header.as_deref()))?;
        }

        /// A built manifest with one field replaced by any JSON, or removed, is still judged as a whole.
        #[test]
        fn a_changed_manifest_is_a_manifest_or_manifest_invalid(
            built in prop_oneof![image(), index()],
            field in prop::sample::select(vec!["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations", "artifactType"]),
            nested in prop::option::of(prop::sample::select(vec!["mediaType", "digest", "size", "urls", "platform", "annotations"])),
            replacement in prop::option::of(json_value()),
        ) {
            let mut value: Value = serde_json::from_slice(&built.bytes).unwrap();
            // The field itself, or one inside it (in its first item, if it is a list of descriptors).
            let (container, key) = match nested {
                None => (Some(&mut value), field),
                Some(nested) => match value.get_mut(field) {
                    Some(Value::Array(items)) => (items.first_mut(), nested),
                    parent => (parent, nested),
                },
            };
            if let Some(Value::Object(object)) = container {
                match replacement {
                    Some(replacement) => object.insert(key.to_owned(), replacement),
                    None => object.remove(key),
                };
            }
            check(ParsedManifest::parse(&serde_json::to_vec(&value).unwrap(), built.content_type.as_deref()))?;
        }

        /// Nesting deeper than any manifest has is refused by the JSON parser's depth limit, not by the stack.
        #[test]
        fn deep_nesting_is_manifest_invalid(depth in 0..5000usize, object in any::<bool>()) {
            let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
            let nested = format!("{}null{}", open.repeat(depth), close.repeat(depth));
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"x/y","digest":"sha256:{}","size":1,"platform":{nested}}}]}}"#,
                media_types::OCI_INDEX,
                "a".repeat(64)
            );
            check(ParsedManifest::parse(nested.as_bytes(), None))?;
            check(ParsedManifest::parse(manifest.as_bytes(), None))?;
        }
    }
}
