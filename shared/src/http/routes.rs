//! Route parsing: `(method, path)` to the endpoint it names, as a pure function. Repository names contain slashes, so
//! paths are read from their right end, where the resource keywords are.

use axum::http::Method;

use crate::{
    error::Error,
    oci::{Digest, Reference, RepositoryName, is_upload_id},
};

/// Which Lambda function serves an endpoint; `berth serve` mounts them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Token,
    Manifests,
    Blobs,
    /// Serves no endpoint: the table's stream invokes it for every pushed manifest ([`crate::stream`]).
    Scan,
    /// Serves no endpoint: a daily schedule invokes it to download OSV's exports ([`crate::scan::download`]).
    Advisories,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// `GET /v2/`
    ApiVersion,
    /// `GET|POST /token` (and `/oauth2/token`): docker's token endpoint
    Token,
    /// `POST /oauth2/exchange`: an identity proof (an OIDC ID token, a signed sts:GetCallerIdentity) for a refresh token;
    /// `GET` says which proofs are taken
    TokenExchange,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    ListTags { name: RepositoryName },
    /// `GET|HEAD /v2/<name>/manifests/<reference>`
    GetManifest { name: RepositoryName, reference: Reference, head: bool },
    /// `PUT /v2/<name>/manifests/<reference>`
    PutManifest { name: RepositoryName, reference: Reference },
    /// `DELETE /v2/<name>/manifests/<reference>`
    DeleteManifest { name: RepositoryName, reference: Reference },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers { name: RepositoryName, digest: Digest },
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    GetBlob { name: RepositoryName, digest: Digest, head: bool },
    /// `DELETE /v2/<name>/blobs/<digest>`
    DeleteBlob { name: RepositoryName, digest: Digest },
    /// `POST /v2/<name>/blobs/uploads/`
    StartUpload { name: RepositoryName },
    /// `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus { name: RepositoryName, id: String },
    /// `PATCH /v2/<name>/blobs/uploads/<id>`
    PatchUpload { name: RepositoryName, id: String },
    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=<digest>`
    FinishUpload { name: RepositoryName, id: String },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    CancelUpload { name: RepositoryName, id: String },
    /// `GET /berth/v1/repositories/<name>/manifests` (management: every manifest with its tags and push time)
    ListManifests { name: RepositoryName },
    /// `DELETE /berth/v1/repositories/<name>` (management: the whole repository)
    DeleteRepository { name: RepositoryName },
    /// `GET /berth/v1/repositories/<name>/scans/<reference>` (management: the image's vulnerability findings)
    ScanReport { name: RepositoryName, reference: Reference },
    /// `POST /berth/v1/advisories` (management: OSV advisories to scan against, a new snapshot)
    ImportAdvisories,
    /// `/berth/v1/access/...` (management: identities and access settings; the method says what to do)
    Access { method: Method, resource: AccessResource },
}

/// The identity and settings resources of the management API, under `/berth/v1/access/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessResource {
    /// `service-principals`
    Principals,
    /// `service-principals/<name>`
    Principal(String),
    /// `service-principals/<name>/credential`
    PrincipalCredential(String),
    /// `role-assignments`
    RoleAssignments,
    /// `admin`
    Admin,
    /// `admin/passwords/<1|2>`
    AdminPassword(u8),
    /// `scope-maps`
    ScopeMaps,
    /// `scope-maps/<name>`
    ScopeMap(String),
    /// `tokens`
    Tokens,
    /// `tokens/<name>`
    Token(String),
    /// `tokens/<name>/passwords/<1|2>`
    TokenPassword(String, u8),
    /// `registry`: the registry's access settings
    Registry,
}

impl AccessResource {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').collect();
        let name = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let slot = |text: &str| text.parse::<u8>().ok().filter(|slot| (1..=2).contains(slot));
        Some(match segments.as_slice() {
            ["service-principals"] => Self::Principals,
            ["service-principals", principal] => Self::Principal(name(principal)?),
            ["service-principals", principal, "credential"] => Self::PrincipalCredential(name(principal)?),
            ["role-assignments"] => Self::RoleAssignments,
            ["admin"] => Self::Admin,
            ["admin", "passwords", number] => Self::AdminPassword(slot(number)?),
            ["scope-maps"] => Self::ScopeMaps,
            ["scope-maps", map] => Self::ScopeMap(name(map)?),
            ["tokens"] => Self::Tokens,
            ["tokens", token] => Self::Token(name(token)?),
            ["tokens", token, "passwords", number] => Self::TokenPassword(name(token)?, slot(number)?),
            ["registry"] => Self::Registry,
            _ => return None,
        })
    }
}

impl Endpoint {
    pub fn function(&self) -> Function {
        match self {
            Self::ApiVersion | Self::Token | Self::TokenExchange | Self::Access { .. } => Function::Token,
            Self::GetBlob { .. }
            | Self::DeleteBlob { .. }
            | Self::StartUpload { .. }
            | Self::UploadStatus { .. }
            | Self::PatchUpload { .. }
            | Self::FinishUpload { .. }
            | Self::CancelUpload { .. } => Function::Blobs,
            _ => Function::Manifests,
        }
    }
}

const MANAGEMENT_PREFIX: &str = "/berth/v1/repositories/";
const ADVISORIES_PATH: &str = "/berth/v1/advisories";
const ACCESS_PREFIX: &str = "/berth/v1/access/";

pub fn parse(method: &Method, path: &str) -> Result<Endpoint, Error> {
    let unknown = || Error::EndpointUnknown(path.chars().take(300).collect());
    if let Some(rest) = path.strip_prefix(MANAGEMENT_PREFIX) {
        return match (method, rest.strip_suffix("/manifests"), rest.rsplit_once("/scans/")) {
            (&Method::GET, Some(name), _) => Ok(Endpoint::ListManifests { name: RepositoryName::parse(name)? }),
            (&Method::GET, None, Some((name, reference))) => {
                Ok(Endpoint::ScanReport { name: RepositoryName::parse(name)?, reference: Reference::parse(reference)? })
            }
            (&Method::DELETE, ..) => Ok(Endpoint::DeleteRepository { name: RepositoryName::parse(rest)? }),
            _ => Err(unknown()),
        };
    }
    if path == ADVISORIES_PATH {
        return allow(method, &[Method::POST], Endpoint::ImportAdvisories);
    }
    if let Some(rest) = path.strip_prefix(ACCESS_PREFIX) {
        let resource = AccessResource::parse(rest).ok_or_else(unknown)?;
        return Ok(Endpoint::Access { method: method.clone(), resource });
    }
    if path == "/oauth2/exchange" {
        return allow(method, &[Method::GET, Method::POST], Endpoint::TokenExchange);
    }
    if matches!(path, "/token" | "/oauth2/token") {
        return allow(method, &[Method::GET, Method::POST], Endpoint::Token);
    }
    let rest = match path {
        "/v2" => "",
        _ => path.strip_prefix("/v2/").ok_or_else(unknown)?,
    };
    let name = |segments: &[&str]| RepositoryName::parse(&segments.join("/"));
    let segments: Vec<&str> = rest.split('/').collect();
    let endpoint = match segments.as_slice() {
        [""] => allow(method, &[Method::GET, Method::HEAD], Endpoint::ApiVersion)?,
        ["_catalog"] => allow(method, &[Method::GET], Endpoint::Catalog)?,
        [repo @ .., "tags", "list"] => allow(method, &[Method::GET], Endpoint::ListTags { name: name(repo)? })?,
        [repo @ .., "blobs", "uploads", ""] | [repo @ .., "blobs", "uploads"] => {
            allow(method, &[Method::POST], Endpoint::StartUpload { name: name(repo)? })?
        }
        [repo @ .., "blobs", "uploads", id] => {
            let name = name(repo)?;
            if !is_upload_id(id) {
                return Err(Error::BlobUploadUnknown);
            }
            let id = id.to_string();
            match *method {
                Method::GET => Endpoint::UploadStatus { name, id },
                Method::PATCH => Endpoint::PatchUpload { name, id },
                Method::PUT => Endpoint::FinishUpload { name, id },
                Method::DELETE => Endpoint::CancelUpload { name, id },
                _ => return Err(unsupported(method)),
            }
        }
        [repo @ .., "blobs", digest] => {
            let (name, digest) = (name(repo)?, Digest::parse(digest)?);
            match *method {
                Method::GET | Method::HEAD => Endpoint::GetBlob { name, digest, head: method == Method::HEAD },
                Method::DELETE => Endpoint::DeleteBlob { name, digest },
                _ => return Err(unsupported(method)),
            }
        }
        [repo @ .., "manifests", reference] => {
            let (name, reference) = (name(repo)?, Reference::parse(reference)?);
            match *method {
                Method::GET | Method::HEAD => Endpoint::GetManifest { name, reference, head: method == Method::HEAD },
                Method::PUT => Endpoint::PutManifest { name, reference },
                Method::DELETE => Endpoint::DeleteManifest { name, reference },
                _ => return Err(unsupported(method)),
            }
        }
        [repo @ .., "referrers", digest] => {
            allow(method, &[Method::GET], Endpoint::Referrers { name: name(repo)?, digest: Digest::parse(digest)? })?
        }
        _ => return Err(unknown()),
    };
    Ok(endpoint)
}

fn allow(method: &Method, allowed: &[Method], endpoint: Endpoint) -> Result<Endpoint, Error> {
    if allowed.contains(method) { Ok(endpoint) } else { Err(unsupported(method)) }
}

fn unsupported(method: &Method) -> Error {
    Error::Unsupported(format!("method {method} is not allowed here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> RepositoryName {
        RepositoryName::parse(text).unwrap()
    }

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap()
    }

    #[test]
    fn parses_every_endpoint() {
        let id = uuid::Uuid::new_v4().to_string();
        let d = digest().to_string();
        let latest = Reference::parse("latest").unwrap();
        let cases = vec![
            (Method::GET, "/v2/".to_string(), Endpoint::ApiVersion),
            (Method::GET, "/token".to_string(), Endpoint::Token),
            (Method::POST, "/oauth2/token".to_string(), Endpoint::Token),
            (Method::GET, "/v2".to_string(), Endpoint::ApiVersion),
            (Method::GET, "/v2/_catalog".to_string(), Endpoint::Catalog),
            (Method::GET, "/v2/a/b/c/tags/list".to_string(), Endpoint::ListTags { name: name("a/b/c") }),
            (
                Method::GET,
                "/v2/a/manifests/latest".to_string(),
                Endpoint::GetManifest { name: name("a"), reference: latest.clone(), head: false },
            ),
            (
                Method::HEAD,
                "/v2/a/manifests/latest".to_string(),
                Endpoint::GetManifest { name: name("a"), reference: latest.clone(), head: true },
            ),
            (
                Method::PUT,
                format!("/v2/a/manifests/{d}"),
                Endpoint::PutManifest { name: name("a"), reference: Reference::Digest(digest()) },
            ),
            (Method::DELETE, "/v2/a/manifests/latest".to_string(), Endpoint::DeleteManifest { name: name("a"), reference: latest }),
            (Method::GET, format!("/v2/a/referrers/{d}"), Endpoint::Referrers { name: name("a"), digest: digest() }),
            (Method::GET, format!("/v2/x/blobs/{d}"), Endpoint::GetBlob { name: name("x"), digest: digest(), head: false }),
            (Method::DELETE, format!("/v2/x/blobs/{d}"), Endpoint::DeleteBlob { name: name("x"), digest: digest() }),
            (Method::POST, "/v2/x/y/blobs/uploads/".to_string(), Endpoint::StartUpload { name: name("x/y") }),
            (Method::PATCH, format!("/v2/x/blobs/uploads/{id}"), Endpoint::PatchUpload { name: name("x"), id: id.clone() }),
            (Method::PUT, format!("/v2/x/blobs/uploads/{id}"), Endpoint::FinishUpload { name: name("x"), id: id.clone() }),
            (Method::GET, format!("/v2/x/blobs/uploads/{id}"), Endpoint::UploadStatus { name: name("x"), id: id.clone() }),
            (Method::DELETE, format!("/v2/x/blobs/uploads/{id}"), Endpoint::CancelUpload { name: name("x"), id }),
            // A repository may itself be called "manifests" or "blobs": keywords are read from the right.
            (
                Method::GET,
                "/v2/manifests/blobs/manifests/v1".to_string(),
                Endpoint::GetManifest { name: name("manifests/blobs"), reference: Reference::parse("v1").unwrap(), head: false },
            ),
            (Method::GET, "/berth/v1/repositories/a/b/manifests".to_string(), Endpoint::ListManifests { name: name("a/b") }),
            (Method::DELETE, "/berth/v1/repositories/a/b".to_string(), Endpoint::DeleteRepository { name: name("a/b") }),
            (
                Method::GET,
                "/berth/v1/repositories/a/scans/scans/v1".to_string(),
                Endpoint::ScanReport { name: name("a/scans"), reference: Reference::parse("v1").unwrap() },
            ),
            (
                Method::GET,
                format!("/berth/v1/repositories/a/scans/{d}"),
                Endpoint::ScanReport { name: name("a"), reference: Reference::Digest(digest()) },
            ),
            (Method::POST, "/berth/v1/advisories".to_string(), Endpoint::ImportAdvisories),
        ];
        for (method, path, expected) in cases {
            assert_eq!(parse(&method, &path).unwrap(), expected, "{method} {path}");
        }
    }

    #[test]
    fn functions_split_the_api() {
        assert_eq!(parse(&Method::GET, "/v2/").unwrap().function(), Function::Token);
        assert_eq!(parse(&Method::GET, "/token").unwrap().function(), Function::Token);
        assert_eq!(parse(&Method::POST, "/v2/a/blobs/uploads/").unwrap().function(), Function::Blobs);
        assert_eq!(parse(&Method::GET, "/v2/a/tags/list").unwrap().function(), Function::Manifests);
    }

    #[test]
    fn rejects_bad_paths_with_the_right_error() {
        let d = digest().to_string();
        type Case = (Method, String, fn(&Error) -> bool);
        let cases: Vec<Case> = vec![
            (Method::GET, "/v2/UPPER/tags/list".into(), |e| matches!(e, Error::NameInvalid(_))),
            (Method::GET, "/v2/a//b/tags/list".into(), |e| matches!(e, Error::NameInvalid(_))),
            (Method::GET, "/v2/../tags/list".into(), |e| matches!(e, Error::NameInvalid(_))),
            (Method::GET, "/v2/tags/list".into(), |e| matches!(e, Error::NameInvalid(_))),
            (Method::GET, "/v2/a/manifests/-bad".into(), |e| matches!(e, Error::TagInvalid(_))),
            (Method::GET, "/v2/a/manifests/sha256:zz".into(), |e| matches!(e, Error::DigestInvalid(_))),
            (Method::GET, "/v2/a/blobs/latest".into(), |e| matches!(e, Error::DigestInvalid(_))),
            (Method::PATCH, "/v2/a/blobs/uploads/../../x".into(), |e| matches!(e, Error::EndpointUnknown(_))),
            (Method::PATCH, "/v2/a/blobs/uploads/not-a-session".into(), |e| matches!(e, Error::BlobUploadUnknown)),
            (Method::POST, format!("/v2/a/manifests/{d}"), |e| matches!(e, Error::Unsupported(_))),
            (Method::DELETE, "/v2/_catalog".into(), |e| matches!(e, Error::Unsupported(_))),
            (Method::GET, "/berth/v1/advisories".into(), |e| matches!(e, Error::Unsupported(_))),
            (Method::GET, "/berth/v1/repositories/a/scans/-bad".into(), |e| matches!(e, Error::TagInvalid(_))),
            (Method::GET, "/v3/".into(), |e| matches!(e, Error::EndpointUnknown(_))),
            (Method::GET, "/v2/a/unknown".into(), |e| matches!(e, Error::EndpointUnknown(_))),
        ];
        for (method, path, expected) in cases {
            let error = parse(&method, &path).unwrap_err();
            assert!(expected(&error), "{method} {path} gave {error:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::{prelude::*, sample::Index};

    use super::*;
    use crate::oci::strategies::{digest, digest_text, name, name_text, near, tag, tag_text};

    fn upload_id() -> impl Strategy<Value = String> {
        any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).hyphenated().to_string())
    }

    fn reference() -> impl Strategy<Value = Reference> {
        prop_oneof![tag().prop_map(Reference::Tag), digest().prop_map(Reference::Digest)]
    }

    /// Every endpoint, with names, references, digests and upload ids as clients send them.
    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop_oneof![
            prop_oneof![
                Just(Endpoint::ApiVersion),
                Just(Endpoint::Token),
                Just(Endpoint::Catalog),
                name().prop_map(|name| Endpoint::ListTags { name }),
                name().prop_map(|name| Endpoint::ListManifests { name }),
                name().prop_map(|name| Endpoint::DeleteRepository { name }),
                (name(), reference()).prop_map(|(name, reference)| Endpoint::ScanReport { name, reference }),
                Just(Endpoint::ImportAdvisories),
            ],
            (name(), reference(), 0..4u8).prop_map(|(name, reference, method)| match method {
                0 => Endpoint::GetManifest { name, reference, head: false },
                1 => Endpoint::GetManifest { name, reference, head: true },
                2 => Endpoint::PutManifest { name, reference },
                _ => Endpoint::DeleteManifest { name, reference },
            }),
            (name(), digest(), 0..4u8).prop_map(|(name, digest, method)| match method {
                0 => Endpoint::GetBlob { name, digest, head: false },
                1 => Endpoint::GetBlob { name, digest, head: true },
                2 => Endpoint::DeleteBlob { name, digest },
                _ => Endpoint::Referrers { name, digest },
            }),
            (name(), upload_id(), 0..5u8).prop_map(|(name, id, method)| match method {
                0 => Endpoint::StartUpload { name },
                1 => Endpoint::UploadStatus { name, id },
                2 => Endpoint::PatchUpload { name, id },
                3 => Endpoint::FinishUpload { name, id },
                _ => Endpoint::CancelUpload { name, id },
            }),
        ]
    }

    /// The request naming `endpoint`: its method and its path, in the spelling `alternative` picks where there are
    /// two (`/v2` or `/v2/`, `/token` or `/oauth2/token`, `uploads/` or `uploads`, GET or HEAD of `/v2/`).
    fn request(endpoint: &Endpoint, alternative: bool) -> (Method, String) {
        let pick = |first: &str, second: &str| if alternative { second.to_owned() } else { first.to_owned() };
        let get_or_head = |head: bool| if head { Method::HEAD } else { Method::GET };
        match endpoint {
            Endpoint::ApiVersion => (get_or_head(alternative), pick("/v2/", "/v2")),
            Endpoint::Token => (if alternative { Method::POST } else { Method::GET }, pick("/token", "/oauth2/token")),
            Endpoint::Catalog => (Method::GET, "/v2/_catalog".into()),
            Endpoint::ListTags { name } => (Method::GET, format!("/v2/{name}/tags/list")),
            Endpoint::GetManifest { name, reference, head } => (get_or_head(*head), format!("/v2/{name}/manifests/{reference}")),
            Endpoint::PutManifest { name, reference } => (Method::PUT, format!("/v2/{name}/manifests/{reference}")),
            Endpoint::DeleteManifest { name, reference } => (Method::DELETE, format!("/v2/{name}/manifests/{reference}")),
            Endpoint::Referrers { name, digest } => (Method::GET, format!("/v2/{name}/referrers/{digest}")),
            Endpoint::GetBlob { name, digest, head } => (get_or_head(*head), format!("/v2/{name}/blobs/{digest}")),
            Endpoint::DeleteBlob { name, digest } => (Method::DELETE, format!("/v2/{name}/blobs/{digest}")),
            Endpoint::StartUpload { name } => {
                (Method::POST, pick(&format!("/v2/{name}/blobs/uploads/"), &format!("/v2/{name}/blobs/uploads")))
            }
            Endpoint::UploadStatus { name, id } => (Method::GET, format!("/v2/{name}/blobs/uploads/{id}")),
            Endpoint::PatchUpload { name, id } => (Method::PATCH, format!("/v2/{name}/blobs/uploads/{id}")),
            Endpoint::FinishUpload { name, id } => (Method::PUT, format!("/v2/{name}/blobs/uploads/{id}")),
            Endpoint::CancelUpload { name, id } => (Method::DELETE, format!("/v2/{name}/blobs/uploads/{id}")),
            Endpoint::ListManifests { name } => (Method::GET, format!("{MANAGEMENT_PREFIX}{name}/manifests")),
            Endpoint::DeleteRepository { name } => (Method::DELETE, format!("{MANAGEMENT_PREFIX}{name}")),
            Endpoint::ScanReport { name, reference } => (Method::GET, format!("{MANAGEMENT_PREFIX}{name}/scans/{reference}")),
            Endpoint::ImportAdvisories => (Method::POST, ADVISORIES_PATH.into()),
            Endpoint::Access { method, .. } => (method.clone(), format!("{ACCESS_PREFIX}admin")),
            Endpoint::TokenExchange => (Method::POST, "/oauth2/exchange".into()),
        }
    }

    /// The repository an endpoint names, and where in its path the name starts.
    fn named(endpoint: &Endpoint) -> Option<(&RepositoryName, usize)> {
        match endpoint {
            Endpoint::ApiVersion
            | Endpoint::Token
            | Endpoint::TokenExchange
            | Endpoint::Catalog
            | Endpoint::Access { .. }
            | Endpoint::ImportAdvisories => None,
            Endpoint::ListManifests { name } | Endpoint::DeleteRepository { name } | Endpoint::ScanReport { name, .. } => {
                Some((name, MANAGEMENT_PREFIX.len()))
            }
            Endpoint::ListTags { name }
            | Endpoint::GetManifest { name, .. }
            | Endpoint::PutManifest { name, .. }
            | Endpoint::DeleteManifest { name, .. }
            | Endpoint::Referrers { name, .. }
            | Endpoint::GetBlob { name, .. }
            | Endpoint::DeleteBlob { name, .. }
            | Endpoint::StartUpload { name }
            | Endpoint::UploadStatus { name, .. }
            | Endpoint::PatchUpload { name, .. }
            | Endpoint::FinishUpload { name, .. }
            | Endpoint::CancelUpload { name, .. } => Some((name, "/v2/".len())),
        }
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::GET),
            Just(Method::HEAD),
            Just(Method::PUT),
            Just(Method::POST),
            Just(Method::PATCH),
            Just(Method::DELETE),
            Just(Method::OPTIONS),
            Just(Method::from_bytes(b"BREW").unwrap()),
        ]
    }

    /// Paths near the API's: its prefixes, then segments that are keywords, names, references, ids or junk.
    fn path() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            prop_oneof![
                Just("tags"),
                Just("list"),
                Just("manifests"),
                Just("blobs"),
                Just("uploads"),
                Just("referrers"),
                Just("_catalog"),
                Just(""),
                Just(".."),
            ]
            .prop_map(str::to_owned),
            name_text(),
            near(name_text()),
            tag_text(),
            near(tag_text()),
            digest_text(),
            near(digest_text()),
            upload_id(),
            near(upload_id()),
        ];
        let prefix = prop_oneof![Just("/v2/"), Just("/v2"), Just(MANAGEMENT_PREFIX), Just("/"), Just(""), Just("/token")];
        prop_oneof![
            any::<String>(),
            (prefix, prop::collection::vec(segment, 0..7)).prop_map(|(prefix, segments)| format!("{prefix}{}", segments.join("/"))),
        ]
    }

    /// Names no grammar allows, each made from a valid one by a change that leaves the path's keywords alone.
    fn invalid_name() -> impl Strategy<Value = String> {
        (name_text(), 0..6u8, any::<Index>()).prop_map(|(name, fault, at)| match fault {
            0 => {
                let at = at.index(name.len() + 1);
                format!("{}A{}", &name[..at], &name[at..])
            }
            1 => format!("-{name}"),
            2 => format!("{name}/"),
            3 => format!("/{name}"),
            4 => format!("{name}/.."),
            _ => format!("{name}/{}", "a".repeat(256)),
        })
    }

    fn wire(error: &Error) -> (&'static str, u16) {
        let (code, status) = error.wire();
        (code, status.as_u16())
    }

    proptest! {
        #[test]
        fn every_endpoint_parses_from_its_path(endpoint in endpoint(), alternative in any::<bool>()) {
            let (method, path) = request(&endpoint, alternative);
            prop_assert_eq!(parse(&method, &path).unwrap(), endpoint, "{} {}", method, path);
        }

        /// Any request names one endpoint, whose path is the one asked for (up to the spellings of one endpoint), or
        /// gets one of the spec's errors for what is wrong.
        #[test]
        fn any_request_is_one_endpoint_or_a_spec_error(method in method(), path in path()) {
            match parse(&method, &path) {
                Ok(endpoint) => {
                    let spellings = [request(&endpoint, false).1, request(&endpoint, true).1];
                    prop_assert!(spellings.contains(&path), "{method} {path:?} read as {endpoint:?}");
                }
                Err(error) => {
                    let expected = match &error {
                        Error::NameInvalid(_) => ("NAME_INVALID", 400),
                        Error::TagInvalid(_) => ("MANIFEST_INVALID", 400),
                        Error::DigestInvalid(_) => ("DIGEST_INVALID", 400),
                        Error::BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", 404),
                        Error::EndpointUnknown(_) => ("UNSUPPORTED", 404),
                        Error::Unsupported(_) => ("UNSUPPORTED", 405),
                        other => return Err(TestCaseError::fail(format!("{method} {path:?} gave {other:?}"))),
                    };
                    prop_assert_eq!(wire(&error), expected);
                }
            }
        }

        #[test]
        fn an_invalid_name_is_name_invalid(endpoint in endpoint(), alternative in any::<bool>(), bad in invalid_name()) {
            if let Some((name, at)) = named(&endpoint) {
                let (method, mut path) = request(&endpoint, alternative);
                path.replace_range(at..at + name.as_str().len(), &bad);
                let error = parse(&method, &path).unwrap_err();
                prop_assert!(matches!(error, Error::NameInvalid(_)), "{method} {path:?} gave {error:?}");
                prop_assert_eq!(wire(&error), ("NAME_INVALID", 400));
            }
        }

        /// A reference that is neither a tag nor a digest, or a blob digest that is none, is the spec's error for it.
        #[test]
        fn an_invalid_reference_or_digest_is_its_error(
            name in name(),
            tag in tag_text(),
            digest in digest_text(),
            fault in 0..6u8,
            method in prop_oneof![Just(Method::GET), Just(Method::HEAD), Just(Method::PUT), Just(Method::DELETE)],
        ) {
            let (reference, code) = match fault {
                0 => (format!("-{tag}"), "MANIFEST_INVALID"),
                1 => (format!(".{tag}"), "MANIFEST_INVALID"),
                2 => (format!("{tag}{}", "t".repeat(128)), "MANIFEST_INVALID"),
                3 => (digest.to_uppercase(), "DIGEST_INVALID"),
                4 => (digest[..digest.len() - 1].to_owned(), "DIGEST_INVALID"),
                _ => (digest.replacen("sha", "sha3", 1), "DIGEST_INVALID"),
            };
            let error = parse(&method, &format!("/v2/{name}/manifests/{reference}")).unwrap_err();
            prop_assert_eq!(wire(&error), (code, 400), "{:?}", error);
            if code == "DIGEST_INVALID" && method != Method::PUT {
                let error = parse(&method, &format!("/v2/{name}/blobs/{reference}")).unwrap_err();
                prop_assert_eq!(wire(&error), (code, 400), "{:?}", error);
            }
            let error = parse(&Method::GET, &format!("/v2/{name}/referrers/{reference}")).unwrap_err();
            prop_assert_eq!(wire(&error), ("DIGEST_INVALID", 400), "{:?}", error);
        }

        /// Only the canonical (lowercase, hyphenated) form of an id the registry issued can name an upload.
        #[test]
        fn an_upload_id_of_no_session_is_blob_upload_unknown(
            name in name(),
            id in prop_oneof![upload_id().prop_map(|id| id.to_uppercase()), upload_id().prop_map(|id| id.replace('-', "")), "[a-z0-9.-]{1,40}"],
            method in prop_oneof![Just(Method::GET), Just(Method::PATCH), Just(Method::PUT), Just(Method::DELETE)],
        ) {
            if !is_upload_id(&id) {
                let error = parse(&method, &format!("/v2/{name}/blobs/uploads/{id}")).unwrap_err();
                prop_assert_eq!(wire(&error), ("BLOB_UPLOAD_UNKNOWN", 404), "{:?}", error);
            }
        }

        /// On the registry API, a method an endpoint's path does not take is 405; the management API's paths are
        /// Berth's own, where a method they do not take is no endpoint (404).
        #[test]
        fn other_methods_are_unsupported(endpoint in endpoint(), alternative in any::<bool>(), method in method()) {
            let (_, path) = request(&endpoint, alternative);
            if let Err(error) = parse(&method, &path) {
                let expected = match (path.starts_with(MANAGEMENT_PREFIX), &method) {
                    // A DELETE of any management path names a repository (`<name>/manifests` too, which may be too long).
                    (true, &Method::DELETE) => ("NAME_INVALID", 400),
                    (true, _) => ("UNSUPPORTED", 404),
                    (false, _) => ("UNSUPPORTED", 405),
                };
                prop_assert_eq!(wire(&error), expected, "{} {:?} gave {:?}", method, path, error);
            }
        }
    }
}
