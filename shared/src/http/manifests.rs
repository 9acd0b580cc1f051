//! The manifests function's endpoints: manifests, tags, referrers, the catalog and repository management.

use axum::{
    Json,
    body::Body,
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;

use super::{CONTENT_DIGEST, Call, header_value, routes::Endpoint};
use crate::{
    error::Error,
    oci::{Descriptor, Digest, Reference, RepositoryName, Tag, media_types},
    registry::Manifests,
    scan::{Scans, policy::PullPolicy},
    store::{
        PageRequest, TaggedManifest,
        scanning::{ScanStatus, SeverityCounts},
    },
};

/// The most entries one listing page returns, whatever `n` asks for; more come through the `Link` header.
const MAX_PAGE: usize = 1000;
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

pub(super) async fn handle(
    manifests: &Manifests,
    scans: Option<&Scans>,
    policy: Option<PullPolicy<'_>>,
    endpoint: Endpoint,
    call: &Call<'_>,
    body: Body,
) -> Result<Response, Error> {
    match endpoint {
        Endpoint::GetManifest { name, reference, head } => get_manifest(manifests, policy, &name, &reference, head).await,
        Endpoint::PutManifest { name, reference } => put_manifest(manifests, &name, &reference, call, body).await,
        Endpoint::DeleteManifest { name, reference } => delete_manifest(manifests, &name, &reference).await,
        Endpoint::ListTags { name } => list_tags(manifests, &name, call).await,
        Endpoint::Catalog => catalog(manifests, call).await,
        Endpoint::Referrers { name, digest } => referrers(manifests, &name, &digest, call).await,
        Endpoint::ListManifests { name } => list_manifests(manifests, scans, &name, call).await,
        Endpoint::DeleteRepository { name } => delete_repository(manifests, &name).await,
        other => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET|HEAD /v2/<name>/manifests/<reference>` — the manifest's bytes with its media type and digest.
async fn get_manifest(
    manifests: &Manifests,
    policy: Option<PullPolicy<'_>>,
    name: &RepositoryName,
    reference: &Reference,
    head: bool,
) -> Result<Response, Error> {
    let (record, body) = if head {
        (manifests.record(name, reference).await?, Body::empty())
    } else {
        let stored = manifests.get(name, reference).await?;
        (stored.record, Body::from(stored.bytes))
    };
    if let Some(policy) = policy {
        policy.check(&record.digest).await?;
    }
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, header_value(&record.media_type)),
            (CONTENT_DIGEST, header_value(&record.digest)),
            (header::ETAG, header_value(format!("\"{}\"", record.digest))),
        ],
        body,
    )
        .into_response();
    // Set after the body, which would otherwise give HEAD its own empty length.
    response.headers_mut().insert(header::CONTENT_LENGTH, header_value(record.size));
    Ok(response)
}

/// `PUT /v2/<name>/manifests/<reference>` — validates and stores a manifest; 201 with its digest.
async fn put_manifest(
    manifests: &Manifests,
    name: &RepositoryName,
    reference: &Reference,
    call: &Call<'_>,
    body: Body,
) -> Result<Response, Error> {
    let limit = manifests.max_manifest_bytes();
    let too_large = |size| Error::TooLarge { what: "manifest", size, limit };
    if let Some(size) = call.content_length()?.filter(|size| *size > limit) {
        return Err(too_large(size));
    }
    let bytes = Limited::new(body, limit as usize).collect().await.map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            too_large(limit + 1)
        } else {
            Error::ManifestInvalid(format!("the request body broke off: {error}"))
        }
    })?;
    let (digest, subject) = manifests.put(name, reference, call.header(header::CONTENT_TYPE), bytes.to_bytes()).await?;
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, header_value(call.url(&format!("/v2/{name}/manifests/{digest}")))), (CONTENT_DIGEST, header_value(&digest))],
    )
        .into_response();
    if let Some(subject) = subject {
        response.headers_mut().insert(OCI_SUBJECT, header_value(subject));
    }
    Ok(response)
}

/// `DELETE /v2/<name>/manifests/<reference>` — by digest the manifest and its tags, by tag the tag alone; 202.
async fn delete_manifest(manifests: &Manifests, name: &RepositoryName, reference: &Reference) -> Result<Response, Error> {
    manifests.delete(name, reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Serialize)]
struct TagList<'a> {
    name: &'a RepositoryName,
    tags: Vec<Tag>,
}

/// `GET /v2/<name>/tags/list?n=<n>&last=<last>` — tags in lexical order, paged with a `Link` header.
async fn list_tags(manifests: &Manifests, name: &RepositoryName, call: &Call<'_>) -> Result<Response, Error> {
    let page = requested_page(call, Tag::parse)?;
    let tags = manifests.tags(name, &page.fetch()).await?;
    Ok(page.respond(&call.url(&format!("/v2/{name}/tags/list")), &[], tags, Tag::to_string, |tags| TagList { name, tags }))
}

#[derive(Serialize)]
struct Catalog {
    repositories: Vec<RepositoryName>,
}

/// `GET /v2/_catalog?n=<n>&last=<last>` — repository names in lexical order, paged with a `Link` header.
async fn catalog(manifests: &Manifests, call: &Call<'_>) -> Result<Response, Error> {
    let page = requested_page(call, RepositoryName::parse)?;
    let names = manifests.catalog(&page.fetch()).await?;
    Ok(page.respond(&call.url("/v2/_catalog"), &[], names, RepositoryName::to_string, |repositories| Catalog { repositories }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageIndex {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=<type>&n=<n>&last=<digest>` — an image index of the manifests
/// whose subject is `<digest>`, in digest order, paged with a `Link` header that keeps the filter; never 404, an empty
/// index when there are none.
async fn referrers(manifests: &Manifests, name: &RepositoryName, digest: &Digest, call: &Call<'_>) -> Result<Response, Error> {
    let page = requested_page(call, Digest::parse)?;
    let artifact_type = call.query("artifactType");
    let found = manifests.referrers(name, digest, artifact_type.as_deref(), &page.fetch()).await?;
    let filters: Vec<(&str, &str)> = artifact_type.iter().map(|wanted| ("artifactType", wanted.as_str())).collect();
    let path = call.url(&format!("/v2/{name}/referrers/{digest}"));
    let mut response = page.respond(
        &path,
        &filters,
        found,
        |descriptor| descriptor.digest.to_string(),
        |manifests| ImageIndex { schema_version: 2, media_type: media_types::OCI_INDEX, manifests },
    );
    response.headers_mut().insert(header::CONTENT_TYPE, header_value(media_types::OCI_INDEX));
    if artifact_type.is_some() {
        response.headers_mut().insert(OCI_FILTERS_APPLIED, header_value("artifactType"));
    }
    Ok(response)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestListing<'a> {
    repository: &'a RepositoryName,
    manifests: Vec<ManifestSummary>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestSummary {
    digest: Digest,
    media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    size: u64,
    tags: Vec<Tag>,
    /// Unix milliseconds.
    pushed_at: u64,
    /// Where the registry scans what is pushed: the scan's status and its findings by severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<ScanColumn>,
}

/// A manifest's scan as a listing shows it.
#[derive(Serialize)]
struct ScanColumn {
    status: ScanStatus,
    #[serde(flatten)]
    findings: SeverityCounts,
}

impl From<TaggedManifest> for ManifestSummary {
    fn from(TaggedManifest { manifest, tags }: TaggedManifest) -> Self {
        Self {
            digest: manifest.digest,
            media_type: manifest.media_type,
            artifact_type: manifest.artifact_type,
            size: manifest.size,
            tags,
            pushed_at: manifest.pushed_at,
            scan: None,
        }
    }
}

/// `GET /berth/v1/repositories/<name>/manifests?n=<n>&last=<digest>` — a repository's manifests in digest order with
/// their tags and push time, paged with a `Link` header.
async fn list_manifests(manifests: &Manifests, scans: Option<&Scans>, name: &RepositoryName, call: &Call<'_>) -> Result<Response, Error> {
    let page = requested_page(call, Digest::parse)?;
    let listed = manifests.list_manifests(name, &page.fetch()).await?;
    let mut summaries: Vec<ManifestSummary> = listed.into_iter().map(ManifestSummary::from).collect();
    if let Some(scans) = scans {
        // The page's entries only: the one past it tells whether there is a next page, and is not shown.
        for summary in summaries.iter_mut().take(page.n) {
            summary.scan =
                scans.report(&summary.digest).await?.map(|report| ScanColumn { status: report.status, findings: report.summary });
        }
    }
    let path = call.url(&format!("/berth/v1/repositories/{name}/manifests"));
    Ok(page.respond(
        &path,
        &[],
        summaries,
        |summary| summary.digest.to_string(),
        |summaries| ManifestListing { repository: name, manifests: summaries },
    ))
}

/// `DELETE /berth/v1/repositories/<name>` — removes a repository's manifests, tags and blob links; 202.
async fn delete_repository(manifests: &Manifests, name: &RepositoryName) -> Result<Response, Error> {
    manifests.delete_repository(name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A listing page as the client asked for it: `n` entries after `last`.
struct Page {
    n: usize,
    last: Option<String>,
}

/// The page a listing's request asks for with `n` and `last`.
fn requested_page<T>(call: &Call<'_>, entry: fn(&str) -> Result<T, Error>) -> Result<Page, Error> {
    page_request(call.query("n").as_deref(), call.query("last").as_deref(), entry)
}

/// The page a listing's `n` and `last` ask for. `last` must name an entry the listing could hold (`entry` parses it),
/// so no store ever sees a key it did not make; an empty `n` or `last` is as good as none, as in the reference
/// registry.
fn page_request<T>(n: Option<&str>, last: Option<&str>, entry: fn(&str) -> Result<T, Error>) -> Result<Page, Error> {
    let n = match n.filter(|text| !text.is_empty()) {
        // Digits only: `usize::from_str` would take `+5`. A count too large for `usize` still asks for a full page.
        Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().map_or(MAX_PAGE, |n: usize| n.min(MAX_PAGE)),
        Some(text) => return Err(Error::PaginationInvalid(format!("n={text} is not a count"))),
        None => MAX_PAGE,
    };
    let last = last.filter(|text| !text.is_empty());
    if let Some(text) = last
        && entry(text).is_err()
    {
        return Err(Error::PaginationInvalid(format!("last={text} names no entry of this listing")));
    }
    Ok(Page { n, last: last.map(str::to_owned) })
}

impl Page {
    /// One entry more than the page holds, to learn whether a next page exists.
    fn fetch(&self) -> PageRequest {
        PageRequest { limit: self.n + 1, after: self.last.clone() }
    }

    /// The JSON `body` makes of the page cut from `entries` (fetched with [`Page::fetch`]), with
    /// `Link: <path?filters&n=&last=>; rel="next"` when entries remain, `last` being the `cursor` of the page's last
    /// entry and `filters` the request's own, so every page is filtered alike.
    fn respond<T, B: Serialize>(
        &self,
        path: &str,
        filters: &[(&str, &str)],
        mut entries: Vec<T>,
        cursor: impl FnOnce(&T) -> String,
        body: impl FnOnce(Vec<T>) -> B,
    ) -> Response {
        let more = entries.len() > self.n;
        entries.truncate(self.n);
        let link = entries.last().filter(|_| more).map(|last| {
            // Names, tags and digests need no escaping in a query; filters (a media type's `+`) may.
            let mut query = serde_urlencoded::to_string(filters).expect("text pairs encode");
            if !query.is_empty() {
                query.push('&');
            }
            format!("<{path}?{query}n={}&last={}>; rel=\"next\"", self.n, cursor(last))
        });
        let mut response = Json(body(entries)).into_response();
        if let Some(link) = link {
            response.headers_mut().insert(header::LINK, header_value(link));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_page(n: Option<&str>, last: Option<&str>) -> Result<Page, Error> {
        page_request(n, last, RepositoryName::parse)
    }

    #[test]
    fn an_empty_last_starts_from_the_beginning() {
        // A DynamoDB query once got `last=` as an empty sort key, which it refuses (a 500).
        assert_eq!(catalog_page(None, Some("")).unwrap().last, None);
        assert_eq!(page_request(None, Some(""), Tag::parse).unwrap().last, None);
        assert_eq!(catalog_page(None, Some("a/b")).unwrap().last.as_deref(), Some("a/b"));
    }

    #[test]
    fn last_must_name_an_entry_of_the_listing() {
        for last in ["UPPER", "a//b", "\u{0}"] {
            assert!(matches!(catalog_page(None, Some(last)), Err(Error::PaginationInvalid(_))), "{last}");
        }
        for last in [".x", "a/b", "a:b"] {
            assert!(matches!(page_request(None, Some(last), Tag::parse), Err(Error::PaginationInvalid(_))), "{last}");
        }
    }

    #[test]
    fn n_is_a_count_capped_at_the_page_size() {
        for (n, expected) in [(None, MAX_PAGE), (Some(""), MAX_PAGE), (Some("0"), 0), (Some("7"), 7), (Some("1001"), MAX_PAGE)] {
            assert_eq!(catalog_page(n, None).unwrap().n, expected, "{n:?}");
        }
        assert_eq!(catalog_page(Some("99999999999999999999999999"), None).unwrap().n, MAX_PAGE);
        for n in ["-1", "+5", "1.5", "ten", " 5", "0x10"] {
            assert!(matches!(catalog_page(Some(n), None), Err(Error::PaginationInvalid(_))), "{n}");
        }
    }
}

#[cfg(test)]
mod properties {
    use axum::http::Request;
    use proptest::prelude::*;

    use super::*;
    use crate::oci::strategies::{name_text, near, tag_text};

    fn is_pagination_invalid(error: &Error) -> bool {
        matches!(error, Error::PaginationInvalid(_)) && error.wire() == ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST)
    }

    /// Which listing a case pages: the catalog (repository names) or a tags list.
    fn entry_parser(catalog: bool) -> fn(&str) -> Result<(), Error> {
        if catalog { |text| RepositoryName::parse(text).map(drop) } else { |text| Tag::parse(text).map(drop) }
    }

    proptest! {
        /// `n` is a count of decimal digits, capped at a full page however large; anything else is 400.
        #[test]
        fn n_is_a_count_or_400(text in prop_oneof![any::<String>(), "[+-]?[0-9]{0,25}", "[0-9 .xe+-]{0,6}"], catalog in any::<bool>()) {
            let expected = if text.is_empty() {
                Some(MAX_PAGE)
            } else if text.bytes().all(|byte| byte.is_ascii_digit()) {
                let significant = text.trim_start_matches('0');
                Some(if significant.len() > 4 { MAX_PAGE } else { significant.parse::<usize>().unwrap_or(0).min(MAX_PAGE) })
            } else {
                None
            };
            match page_request(Some(&text), None, entry_parser(catalog)) {
                Ok(page) => prop_assert_eq!(Some(page.n), expected, "{:?}", text),
                Err(error) => prop_assert!(expected.is_none() && is_pagination_invalid(&error), "{text:?} gave {error:?}"),
            }
        }

        /// `last` reaches the store only as an entry the listing could hold; empty is from the start, else 400.
        #[test]
        fn last_is_an_entry_of_the_listing_or_400(
            text in prop_oneof![any::<String>(), near(name_text()), near(tag_text()), name_text(), tag_text()],
            catalog in any::<bool>(),
        ) {
            let valid = entry_parser(catalog)(&text).is_ok();
            match page_request(None, Some(&text), entry_parser(catalog)) {
                Ok(page) if text.is_empty() => prop_assert_eq!(page.last, None),
                Ok(page) => prop_assert!(valid && page.last.as_deref() == Some(text.as_str()), "{text:?} gave {:?}", page.last),
                Err(error) => prop_assert!(!valid && is_pagination_invalid(&error), "{text:?} gave {error:?}"),
            }
        }

        /// The `Link` a page ends with names the next page: its query, read back as a client sends it, asks for the
        /// same `n` after the page's last entry.
        #[test]
        fn the_next_link_asks_for_the_page_after(
            n in prop_oneof![0..6usize, 995..1005usize],
            catalog in any::<bool>(),
            names in prop::collection::vec(name_text(), 1..4),
            tags in prop::collection::vec(tag_text(), 1..4),
            count in prop_oneof![4 => 0..12usize, 1 => 990..1010usize],
        ) {
            // A few entries repeated: pages near the size limit without generating a thousand names, and only in
            // some cases, since a thousand entries cost more than the rest of the case.
            let parse = entry_parser(catalog);
            let entries: Vec<String> = if catalog { names } else { tags }.into_iter().cycle().take(count).collect();
            let page = page_request(Some(&n.to_string()), None, parse).unwrap();
            prop_assert_eq!(page.fetch().limit, page.n + 1);
            let response = page.respond("/v2/_catalog", &[], entries.clone(), String::clone, |entries| entries);
            let link = response.headers().get(header::LINK).map(|link| link.to_str().unwrap().to_owned());
            let more = entries.len() > page.n && page.n > 0;
            prop_assert_eq!(link.is_some(), more, "{:?}", link);
            if let Some(link) = link {
                let query = link.strip_prefix("</v2/_catalog?").and_then(|rest| rest.strip_suffix(">; rel=\"next\"")).unwrap();
                let parts = Request::builder().uri(format!("/v2/_catalog?{query}")).body(()).unwrap().into_parts().0;
                let call = Call { parts: &parts, public_url: None, granted: crate::identity::access::Granted::default(), tls: false };
                let next = page_request(call.query("n").as_deref(), call.query("last").as_deref(), parse).unwrap();
                prop_assert_eq!(next.n, page.n);
                prop_assert_eq!(next.last.as_deref(), Some(entries[page.n - 1].as_str()));
            }
        }
    }
}
