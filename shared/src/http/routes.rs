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
}

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// `GET /v2/`
    ApiVersion,
    /// `GET|POST /token` (and `/oauth2/token`): docker's token endpoint
    Token,
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
}

impl Endpoint {
    pub fn function(&self) -> Function {
        match self {
            Self::ApiVersion | Self::Token => Function::Token,
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

pub fn parse(method: &Method, path: &str) -> Result<Endpoint, Error> {
    let unknown = || Error::EndpointUnknown(path.chars().take(300).collect());
    if let Some(rest) = path.strip_prefix(MANAGEMENT_PREFIX) {
        return match (method, rest.strip_suffix("/manifests")) {
            (&Method::GET, Some(name)) => Ok(Endpoint::ListManifests { name: RepositoryName::parse(name)? }),
            (&Method::DELETE, _) => Ok(Endpoint::DeleteRepository { name: RepositoryName::parse(rest)? }),
            _ => Err(unknown()),
        };
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
            (Method::GET, "/v3/".into(), |e| matches!(e, Error::EndpointUnknown(_))),
            (Method::GET, "/v2/a/unknown".into(), |e| matches!(e, Error::EndpointUnknown(_))),
        ];
        for (method, path, expected) in cases {
            let error = parse(&method, &path).unwrap_err();
            assert!(expected(&error), "{method} {path} gave {error:?}");
        }
    }
}
