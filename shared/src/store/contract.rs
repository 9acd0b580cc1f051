//! The store contract: behaviour every adapter pair (blob store + metadata store) must show. Each adapter's tests
//! call [`check_all`] with a fresh, empty store.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::{
    BlobStore, ByteRange, ByteStream, LinkedBlob, ManifestRecord, MetadataStore, PageRequest, StoreError, UploadSession,
    scanning::{AdvisorySnapshot, Finding, QueuedScan, ScanReport, ScanStatus, ScanStore, ScannedImage, SeverityCounts, StoredAdvisory},
};
use crate::oci::{Algorithm, Digest, DigestHasher, Reference, RepositoryName, Tag};

pub(crate) struct Stores {
    pub blobs: Arc<dyn BlobStore>,
    pub metadata: Arc<dyn MetadataStore>,
    pub scans: Arc<dyn ScanStore>,
}

pub(crate) async fn check_all(stores: Stores) {
    uploads_append_commit_and_read_back(&stores).await;
    append_discards_bytes_of_an_unsaved_request(&stores).await;
    large_uploads_in_uneven_chunks(&stores).await;
    a_close_retried_after_its_bytes_were_assembled(&stores).await;
    small_puts_are_content_addressed(&stores).await;
    upload_sessions_save_conditionally(&stores).await;
    linking_a_blob_closes_its_upload(&stores).await;
    manifests_tags_and_referrers(&stores).await;
    listings_page_in_lexical_order(&stores).await;
    manifest_and_referrer_listings_page_in_digest_order(&stores).await;
    deleting_a_repository_removes_everything_it_held(&stores).await;
    advisories_replace_by_id_under_a_new_snapshot(&stores).await;
    layer_inventories_by_digest(&stores).await;
    scan_reports_of_any_size_page_in_digest_order(&stores).await;
    the_scan_queue_keeps_one_entry_per_manifest_until_finished(&stores).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

fn page(limit: usize, after: Option<&str>) -> PageRequest {
    PageRequest { limit, after: after.map(str::to_owned) }
}

/// Everything `listing` lists, followed page by page (`limit` entries after the last one seen) until a short page.
/// Every page but the last must be full: a filter that thinned pages would show here.
async fn every_page(limit: usize, listing: impl AsyncFn(PageRequest) -> Vec<Digest>) -> Vec<Digest> {
    let mut all: Vec<Digest> = Vec::new();
    loop {
        let found = listing(page(limit, all.last().map(ToString::to_string).as_deref())).await;
        assert!(found.len() <= limit, "a page of {limit} held {}", found.len());
        let done = found.len() < limit;
        all.extend(found);
        if done {
            return all;
        }
    }
}

pub(crate) fn session(repository: &str) -> UploadSession {
    UploadSession {
        id: uuid::Uuid::new_v4().to_string(),
        repository: repo(repository),
        size: 0,
        hash_state: DigestHasher::new(Algorithm::Sha256).save(),
        backend_state: String::new(),
        started_at: 0,
        updated_at: 0,
    }
}

fn chunks(parts: &[&'static [u8]]) -> ByteStream {
    Box::pin(stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))).collect::<Vec<_>>()))
}

pub(crate) async fn collect(mut bytes: ByteStream) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(chunk) = bytes.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    all
}

/// The digest a tag points at.
async fn tag_target(stores: &Stores, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>, StoreError> {
    Ok(stores.metadata.tagged_manifest(repository, tag).await?.map(|found| found.digest))
}

fn record(content: &[u8], subject: Option<&Digest>, artifact_type: Option<&str>) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::of(Algorithm::Sha256, content),
        media_type: crate::oci::media_types::OCI_MANIFEST.into(),
        size: content.len() as u64,
        artifact_type: artifact_type.map(str::to_owned),
        subject: subject.cloned(),
        annotations: None,
        annotations_not_indexed: false,
        pushed_at: 1,
    }
}

async fn uploads_append_commit_and_read_back(stores: &Stores) {
    let mut upload = session("contract/upload");
    let written = stores.blobs.append_upload(&mut upload, chunks(&[b"hello ", b"wor"])).await.unwrap();
    assert_eq!(written, 9);
    upload.size += written;
    let written = stores.blobs.append_upload(&mut upload, chunks(&[b"ld"])).await.unwrap();
    upload.size += written;
    assert_eq!(collect(stores.blobs.read_upload(&mut upload).await.unwrap()).await, b"hello world");
    let digest = Digest::of(Algorithm::Sha256, b"hello world");
    assert_eq!(stores.blobs.commit_upload(&upload, &digest).await.unwrap(), None, "a blob smaller than a part goes to its address");
    assert_eq!(collect(stores.blobs.read(&digest, None, None).await.unwrap()).await, b"hello world");
    // A second close of the same upload (a client racing itself) finds the blob stored and must leave it intact.
    stores.blobs.commit_upload(&upload, &digest).await.unwrap();
    assert_eq!(collect(stores.blobs.read(&digest, None, None).await.unwrap()).await, b"hello world");
    assert_eq!(collect(stores.blobs.read(&digest, None, Some(ByteRange { first: 6, last: 9 })).await.unwrap()).await, b"worl");

    let empty = session("contract/upload");
    let empty_digest = Digest::of(Algorithm::Sha256, b"");
    stores.blobs.commit_upload(&empty, &empty_digest).await.unwrap();
    assert_eq!(collect(stores.blobs.read(&empty_digest, None, None).await.unwrap()).await, b"");
    stores.blobs.abort_upload(&empty).await.unwrap();
}

async fn append_discards_bytes_of_an_unsaved_request(stores: &Stores) {
    let mut upload = session("contract/retry");
    upload.size += stores.blobs.append_upload(&mut upload, chunks(&[b"keep"])).await.unwrap();
    // Requests whose session was never saved (one broke off, one lost the race to save): their bytes, even whole
    // parts of them, must not survive into what the saved session holds.
    let failed: ByteStream =
        Box::pin(stream::iter(vec![Ok(Bytes::from(vec![b'L'; 6 << 20])), Err(std::io::Error::other("client went away"))]));
    assert!(stores.blobs.append_upload(&mut upload.clone(), failed).await.is_err());
    let mut unsaved = upload.clone();
    stores.blobs.append_upload(&mut unsaved, Box::pin(stream::iter(vec![Ok(Bytes::from(vec![b'U'; 6 << 20]))]))).await.unwrap();
    let kept: Vec<u8> = b"-this".iter().copied().chain(std::iter::repeat_n(b'K', 6 << 20)).collect();
    upload.size += stores.blobs.append_upload(&mut upload, Box::pin(stream::iter(vec![Ok(Bytes::from(kept.clone()))]))).await.unwrap();
    let expected: Vec<u8> = b"keep".iter().copied().chain(kept).collect();
    assert_eq!(collect(stores.blobs.read_upload(&mut upload).await.unwrap()).await, expected);
    stores.blobs.abort_upload(&upload).await.unwrap();
}

/// Chunks that straddle the backend's part boundaries, across several requests, come back byte for byte.
async fn large_uploads_in_uneven_chunks(stores: &Stores) {
    let content: Vec<u8> = (0..12 << 20).map(|index: u32| (index % 251) as u8).collect();
    let mut upload = session("contract/large");
    for range in [0..(3 << 20) + 1, (3 << 20) + 1..(7 << 20) + 1, (7 << 20) + 1..12 << 20] {
        let chunk: ByteStream =
            Box::pin(stream::iter(content[range].chunks(64 << 10).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect::<Vec<_>>()));
        upload.size += stores.blobs.append_upload(&mut upload, chunk).await.unwrap();
    }
    assert_eq!(upload.size, content.len() as u64);
    assert_eq!(collect(stores.blobs.read_upload(&mut upload).await.unwrap()).await, content, "the unfinished upload reads back whole");
    let digest = Digest::of(Algorithm::Sha256, &content);
    let key = stores.blobs.commit_upload(&upload, &digest).await.unwrap();
    assert_eq!(stores.blobs.commit_upload(&upload, &digest).await.unwrap(), key, "a retried close commits the same way");
    assert_eq!(Digest::of(Algorithm::Sha256, &collect(stores.blobs.read(&digest, key.as_deref(), None).await.unwrap()).await), digest);
    let across_parts = ByteRange { first: (5 << 20) - 10, last: (5 << 20) + 9 };
    let read = stores.blobs.read(&digest, key.as_deref(), Some(across_parts)).await.unwrap();
    assert_eq!(collect(read).await, content[(5 << 20) - 10..(5 << 20) + 10]);
}

/// A sha512 close assembles the upload to hash it; if that close fails afterwards, the session saved before it does
/// not know, and the retry must still commit the same bytes.
async fn a_close_retried_after_its_bytes_were_assembled(stores: &Stores) {
    let content: Vec<u8> = (0..7 << 20).map(|index: u32| (index % 241) as u8).collect();
    let mut upload = session("contract/retried");
    for piece in [&content[..6 << 20], &content[6 << 20..]] {
        upload.size += stores.blobs.append_upload(&mut upload, Box::pin(stream::iter([Ok(Bytes::copy_from_slice(piece))]))).await.unwrap();
    }
    let mut first_attempt = upload.clone();
    assert_eq!(collect(stores.blobs.read_upload(&mut first_attempt).await.unwrap()).await, content);
    let digest = Digest::of(Algorithm::Sha512, &content);
    assert_eq!(collect(stores.blobs.read_upload(&mut upload.clone()).await.unwrap()).await, content, "the retry reads it again");
    let key = stores.blobs.commit_upload(&upload, &digest).await.unwrap();
    assert_eq!(collect(stores.blobs.read(&digest, key.as_deref(), None).await.unwrap()).await, content);
}

async fn small_puts_are_content_addressed(stores: &Stores) {
    let content = Bytes::from_static(b"{\"small\":true}");
    let digest = Digest::of(Algorithm::Sha256, &content);
    stores.blobs.put(&digest, content.clone()).await.unwrap();
    stores.blobs.put(&digest, content.clone()).await.unwrap();
    assert_eq!(collect(stores.blobs.read(&digest, None, None).await.unwrap()).await, content);
    assert_eq!(stores.blobs.get(&digest).await.unwrap(), content);
    stores.blobs.delete(&digest).await.unwrap();
    assert!(stores.blobs.read(&digest, None, None).await.is_err());
    stores.blobs.delete(&digest).await.unwrap();
}

async fn upload_sessions_save_conditionally(stores: &Stores) {
    let mut upload = session("contract/sessions");
    stores.metadata.create_upload(&upload).await.unwrap();
    assert_eq!(stores.metadata.upload(&upload.id).await.unwrap(), Some(upload.clone()));
    upload.size = 10;
    stores.metadata.save_upload(&upload, 0).await.unwrap();
    upload.size = 20;
    assert!(matches!(stores.metadata.save_upload(&upload, 0).await, Err(StoreError::Conflict)), "a stale size must lose");
    assert_eq!(stores.metadata.upload(&upload.id).await.unwrap().unwrap().size, 10);
    stores.metadata.delete_upload(&upload.id).await.unwrap();
    assert_eq!(stores.metadata.upload(&upload.id).await.unwrap(), None);
    assert!(matches!(stores.metadata.save_upload(&upload, 10).await, Err(StoreError::Conflict)), "a deleted session cannot be saved");
}

async fn linking_a_blob_closes_its_upload(stores: &Stores) {
    let (a, b) = (repo("contract/link-a"), repo("contract/link-b"));
    let digest = Digest::of(Algorithm::Sha256, b"linked");
    let upload = session("contract/link-a");
    stores.metadata.create_upload(&upload).await.unwrap();
    stores.metadata.link_blob(&a, &digest, 6, None, Some(&upload.id)).await.unwrap();
    assert_eq!(stores.metadata.upload(&upload.id).await.unwrap(), None);
    assert_eq!(stores.metadata.linked_blob(&a, &digest).await.unwrap(), Some(LinkedBlob { size: 6, key: None }));
    assert_eq!(stores.metadata.linked_blob(&b, &digest).await.unwrap(), None, "links are per repository");
    let many: Vec<Digest> =
        (0..130).map(|index| Digest::of(Algorithm::Sha256, format!("blob {index}").as_bytes())).chain([digest.clone()]).collect();
    assert_eq!(stores.metadata.missing_blobs(&a, &many).await.unwrap(), many[..130].to_vec(), "only the linked blob is present");
    assert_eq!(stores.metadata.missing_blobs(&b, std::slice::from_ref(&digest)).await.unwrap(), vec![digest.clone()]);
    assert!(stores.metadata.missing_blobs(&a, &[]).await.unwrap().is_empty());
    assert!(stores.metadata.unlink_blob(&a, &digest).await.unwrap());
    assert!(!stores.metadata.unlink_blob(&a, &digest).await.unwrap());
    assert_eq!(stores.metadata.linked_blob(&a, &digest).await.unwrap(), None);

    // A blob kept at its own key has one key in the registry: a second upload's key is refused with the first's.
    let big = Digest::of(Algorithm::Sha256, b"kept at a key");
    stores.metadata.link_blob(&a, &big, 13, Some("data/first"), None).await.unwrap();
    let second = stores.metadata.link_blob(&b, &big, 13, Some("data/second"), None).await;
    assert!(matches!(&second, Err(StoreError::StoredAt(key)) if key == "data/first"), "{second:?}");
    assert_eq!(stores.metadata.linked_blob(&b, &big).await.unwrap(), None, "nothing was linked");
    stores.metadata.link_blob(&b, &big, 13, Some("data/first"), None).await.unwrap();
    let linked = LinkedBlob { size: 13, key: Some("data/first".to_owned()) };
    assert_eq!(stores.metadata.linked_blob(&b, &big).await.unwrap(), Some(linked.clone()));
    assert_eq!(stores.metadata.linked_blob(&a, &big).await.unwrap(), Some(linked));
}

/// What the contract's manifests "are": the index never parses them.
const MANIFEST_BYTES: &[u8] = b"{\"schemaVersion\":2}";

async fn manifests_tags_and_referrers(stores: &Stores) {
    let name = repo("contract/manifests");
    let image = record(b"image", None, None);
    let sbom = record(b"sbom", Some(&image.digest), Some("application/spdx+json"));
    let signature = record(b"signature", Some(&image.digest), Some("application/vnd.dev.sigstore"));
    stores.metadata.put_manifest(&name, &image, Some(&tag("v1")), MANIFEST_BYTES).await.unwrap();
    stores.metadata.put_manifest(&name, &sbom, None, MANIFEST_BYTES).await.unwrap();
    stores.metadata.put_manifest(&name, &signature, Some(&tag("sig")), MANIFEST_BYTES).await.unwrap();

    assert_eq!(tag_target(stores, &name, &tag("v1")).await.unwrap(), Some(image.digest.clone()));
    assert_eq!(stores.metadata.manifest(&name, &image.digest).await.unwrap(), Some(image.clone()));
    assert_eq!(stores.metadata.manifest(&repo("contract/other"), &image.digest).await.unwrap(), None);
    assert_eq!(stores.metadata.tagged_manifest(&name, &tag("v1")).await.unwrap(), Some(image.clone()), "a tag yields its whole record");
    // Where the index keeps the bytes inline, they are exactly those it was given, by tag and by digest.
    for reference in [Reference::Tag(tag("v1")), Reference::Digest(image.digest.clone())] {
        let (found, inline) = stores.metadata.manifest_content(&name, &reference).await.unwrap().expect("the manifest is there");
        assert_eq!(found, image);
        assert!(inline.is_none_or(|bytes| bytes.as_ref() == MANIFEST_BYTES), "{reference:?}");
    }
    assert!(stores.metadata.manifest_content(&name, &Reference::Tag(tag("absent"))).await.unwrap().is_none());
    let absent = Digest::of(Algorithm::Sha256, b"absent");
    assert_eq!(
        stores.metadata.missing_manifests(&name, &[image.digest.clone(), absent.clone(), sbom.digest.clone()]).await.unwrap(),
        vec![absent]
    );
    let referrers = stores.metadata.referrers(&name, &image.digest, None, &page(10, None)).await.unwrap();
    let mut expected = vec![sbom.clone(), signature.clone()];
    expected.sort_by_key(|record| record.digest.to_string());
    assert_eq!(referrers, expected, "referrers come whole, in digest order");

    // Moving a tag points it at the new manifest and leaves the old one in place.
    stores.metadata.put_manifest(&name, &sbom, Some(&tag("v1")), MANIFEST_BYTES).await.unwrap();
    assert_eq!(tag_target(stores, &name, &tag("v1")).await.unwrap(), Some(sbom.digest.clone()));
    assert!(stores.metadata.manifest(&name, &image.digest).await.unwrap().is_some());

    let listed = stores.metadata.list_manifests(&name, &page(10, None)).await.unwrap();
    assert_eq!(listed.len(), 3);
    let sbom_entry = listed.iter().find(|entry| entry.manifest.digest == sbom.digest).unwrap();
    assert_eq!(sbom_entry.tags, vec![tag("v1")]);

    assert!(stores.metadata.delete_tag(&name, &tag("sig")).await.unwrap());
    assert!(!stores.metadata.delete_tag(&name, &tag("sig")).await.unwrap());
    assert!(stores.metadata.manifest(&name, &signature.digest).await.unwrap().is_some(), "untagging keeps the manifest");

    // Deleting a manifest removes its tags and its referrer entry.
    assert!(stores.metadata.delete_manifest(&name, &sbom.digest).await.unwrap());
    assert!(!stores.metadata.delete_manifest(&name, &sbom.digest).await.unwrap());
    assert_eq!(tag_target(stores, &name, &tag("v1")).await.unwrap(), None);
    let left: Vec<Digest> = stores
        .metadata
        .referrers(&name, &image.digest, None, &page(10, None))
        .await
        .unwrap()
        .into_iter()
        .map(|found| found.digest)
        .collect();
    assert_eq!(left, vec![signature.digest.clone()]);
}

async fn listings_page_in_lexical_order(stores: &Stores) {
    let name = repo("contract/paging");
    let image = record(b"paged", None, None);
    for tag_name in ["b", "a", "c", "a1"] {
        stores.metadata.put_manifest(&name, &image, Some(&tag(tag_name)), MANIFEST_BYTES).await.unwrap();
    }
    let names = |tags: Vec<Tag>| tags.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(names(stores.metadata.list_tags(&name, &page(10, None)).await.unwrap()), ["a", "a1", "b", "c"]);
    assert_eq!(names(stores.metadata.list_tags(&name, &page(2, None)).await.unwrap()), ["a", "a1"]);
    assert_eq!(names(stores.metadata.list_tags(&name, &page(2, Some("a1"))).await.unwrap()), ["b", "c"]);
    assert!(stores.metadata.list_tags(&name, &page(2, Some("c"))).await.unwrap().is_empty());

    // Other repositories whose names share the prefix stay out of the listing.
    stores.metadata.put_manifest(&repo("contract/paging-other"), &image, Some(&tag("zz")), MANIFEST_BYTES).await.unwrap();
    assert_eq!(names(stores.metadata.list_tags(&name, &page(10, Some("b"))).await.unwrap()), ["c"]);

    let all = stores.metadata.catalog(&page(1000, None)).await.unwrap();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(all.contains(&name) && all.contains(&repo("contract/paging-other")));
    let after_paging = stores.metadata.catalog(&page(1, Some("contract/paging"))).await.unwrap();
    assert_eq!(after_paging, vec![repo("contract/paging-other")]);
    assert!(stores.metadata.repository_exists(&name).await.unwrap());
    assert!(!stores.metadata.repository_exists(&repo("contract/never")).await.unwrap());
}

fn in_digest_order<'a>(records: impl IntoIterator<Item = &'a ManifestRecord>) -> Vec<Digest> {
    let mut digests: Vec<Digest> = records.into_iter().map(|record| record.digest.clone()).collect();
    digests.sort_by_key(ToString::to_string);
    digests
}

/// Manifests and referrers page in digest order with nothing missed or repeated, whatever the page size; referrers
/// filtered by artifact type fill every page but the last.
async fn manifest_and_referrer_listings_page_in_digest_order(stores: &Stores) {
    let name = repo("contract/listing");
    let image = record(b"listed image", None, None);
    stores.metadata.put_manifest(&name, &image, Some(&tag("latest")), MANIFEST_BYTES).await.unwrap();
    let (sbom, signature) = ("application/spdx+json", "application/vnd.dev.sigstore");
    let referrers: Vec<ManifestRecord> = (0..9)
        .map(|index| record(format!("referrer {index}").as_bytes(), Some(&image.digest), [Some(sbom), Some(signature), None][index % 3]))
        .collect();
    for (index, referrer) in referrers.iter().enumerate() {
        stores.metadata.put_manifest(&name, referrer, Some(&tag(&format!("r{index}"))), MANIFEST_BYTES).await.unwrap();
    }
    stores.metadata.put_manifest(&name, &referrers[0], Some(&tag("again")), MANIFEST_BYTES).await.unwrap();
    // Referrers of another subject, and of this subject in a repository whose name extends this one's, stay out.
    let of_another_subject = record(b"of another subject", Some(&referrers[1].digest), Some(sbom));
    stores.metadata.put_manifest(&name, &of_another_subject, None, MANIFEST_BYTES).await.unwrap();
    stores
        .metadata
        .put_manifest(&repo("contract/listing-other"), &record(b"elsewhere", Some(&image.digest), Some(sbom)), None, MANIFEST_BYTES)
        .await
        .unwrap();

    let every_referrer = in_digest_order(&referrers);
    let sboms = in_digest_order(referrers.iter().filter(|referrer| referrer.artifact_type.as_deref() == Some(sbom)));
    let every_manifest = in_digest_order(referrers.iter().chain([&image, &of_another_subject]));
    let tags_of = |digest: &Digest| match referrers.iter().position(|referrer| &referrer.digest == digest) {
        Some(0) => vec![tag("again"), tag("r0")],
        Some(index) => vec![tag(&format!("r{index}"))],
        None if digest == &image.digest => vec![tag("latest")],
        None => Vec::new(),
    };
    let referrer_page = async |artifact_type: Option<&str>, request: PageRequest| -> Vec<Digest> {
        let found = stores.metadata.referrers(&name, &image.digest, artifact_type, &request).await.unwrap();
        found.into_iter().map(|record| record.digest).collect()
    };
    for limit in [1, 2, 3, 4, 100] {
        assert_eq!(
            every_page(limit, async |request| referrer_page(None, request).await).await,
            every_referrer,
            "referrers in pages of {limit}"
        );
        assert_eq!(every_page(limit, async |request| referrer_page(Some(sbom), request).await).await, sboms, "{sbom}s in pages of {limit}");
        let manifests = every_page(limit, async |request| {
            let listed = stores.metadata.list_manifests(&name, &request).await.unwrap();
            for entry in &listed {
                assert_eq!(entry.tags, tags_of(&entry.manifest.digest), "the tags of {}", entry.manifest.digest);
            }
            listed.into_iter().map(|entry| entry.manifest.digest).collect()
        })
        .await;
        assert_eq!(manifests, every_manifest, "manifests in pages of {limit}");
    }
    assert!(referrer_page(Some("application/none"), page(5, None)).await.is_empty());
    assert!(referrer_page(None, page(0, None)).await.is_empty());
    assert!(stores.metadata.list_manifests(&name, &page(0, None)).await.unwrap().is_empty());
    assert!(stores.metadata.list_manifests(&repo("contract/never-listed"), &page(5, None)).await.unwrap().is_empty());
}

async fn deleting_a_repository_removes_everything_it_held(stores: &Stores) {
    let (doomed, kept) = (repo("contract/doomed"), repo("contract/doomed-not"));
    let image = record(b"doomed", None, None);
    let digest = Digest::of(Algorithm::Sha256, b"doomed-layer");
    for name in [&doomed, &kept] {
        stores.metadata.link_blob(name, &digest, 12, None, None).await.unwrap();
        stores.metadata.put_manifest(name, &image, Some(&tag("v1")), MANIFEST_BYTES).await.unwrap();
    }
    assert!(stores.metadata.delete_repository(&doomed).await.unwrap());
    assert!(!stores.metadata.delete_repository(&doomed).await.unwrap());
    assert!(!stores.metadata.repository_exists(&doomed).await.unwrap());
    assert_eq!(stores.metadata.linked_blob(&doomed, &digest).await.unwrap(), None);
    assert_eq!(tag_target(stores, &doomed, &tag("v1")).await.unwrap(), None);
    assert_eq!(stores.metadata.manifest(&doomed, &image.digest).await.unwrap(), None);
    assert_eq!(stores.metadata.linked_blob(&kept, &digest).await.unwrap(), Some(LinkedBlob { size: 12, key: None }));
    assert_eq!(tag_target(stores, &kept, &tag("v1")).await.unwrap(), Some(image.digest));
}

fn digest_of(text: &str) -> Digest {
    Digest::of(Algorithm::Sha256, text.as_bytes())
}

async fn advisories_replace_by_id_under_a_new_snapshot(stores: &Stores) {
    let scans = &stores.scans;
    assert_eq!(scans.advisory_snapshot().await.unwrap(), None);
    let (openssl, zlib, absent) = ("Debian:12\topenssl".to_owned(), "Debian:12\tzlib".to_owned(), "PyPI\tabsent".to_owned());
    assert!(scans.advisories_of(std::slice::from_ref(&openssl)).await.unwrap().is_empty());
    let advisory = |id: &str, summary: &str, packages: &[&String]| StoredAdvisory {
        id: id.to_owned(),
        json: format!(r#"{{"id":"{id}","summary":"{summary}"}}"#).into_bytes(),
        packages: packages.iter().map(|package| (*package).clone()).collect(),
    };
    let first = AdvisorySnapshot { id: "s1".to_owned(), imported_at: 1 };
    let (old, two) = (advisory("DLA-1", "old", &[&openssl]), advisory("GHSA-2", "two", &[&openssl, &zlib]));
    scans.import_advisories(&[old, two.clone()], &first).await.unwrap();
    assert_eq!(scans.advisory_snapshot().await.unwrap(), Some(first));
    let second = AdvisorySnapshot { id: "s2".to_owned(), imported_at: 2 };
    let new = advisory("DLA-1", "new", &[&openssl]);
    scans.import_advisories(std::slice::from_ref(&new), &second).await.unwrap();
    assert_eq!(scans.advisory_snapshot().await.unwrap(), Some(second));
    assert_eq!(scans.advisory("DLA-1").await.unwrap(), Some(new.json.clone()));
    assert_eq!(scans.advisory("DLA-3").await.unwrap(), None);
    let of = |packages: Vec<String>| async move {
        let mut found = scans.advisories_of(&packages).await.unwrap();
        found.sort();
        found
    };
    assert_eq!(of(vec![openssl.clone()]).await, [new.json.clone(), two.json.clone()]);
    assert_eq!(of(vec![zlib.clone()]).await, [two.json.clone()]);
    assert_eq!(of(vec![openssl, zlib, absent.clone()]).await, [new.json, two.json], "each advisory once");
    assert!(of(vec![absent]).await.is_empty());
}

async fn layer_inventories_by_digest(stores: &Stores) {
    let layer = digest_of("layer");
    assert_eq!(stores.scans.layer_inventory(&layer).await.unwrap(), None);
    let inventory =
        scanner::inventory::LayerInventory { whiteouts: vec!["usr/lib/python3/dist-packages/old".to_owned()], ..Default::default() };
    stores.scans.put_layer_inventory(&layer, &inventory).await.unwrap();
    assert_eq!(stores.scans.layer_inventory(&layer).await.unwrap(), Some(inventory));
}

/// A report whose findings compress to well over one DynamoDB item (random summaries barely compress).
fn report(manifest: Digest, findings: usize) -> ScanReport {
    let findings: Vec<Finding> = (0..findings)
        .map(|number| Finding {
            id: format!("DLA-{number}"),
            aliases: vec![format!("CVE-2026-{number}")],
            package: "openssl".to_owned(),
            ecosystem: "Debian:12".to_owned(),
            installed: "3.0.1-1".to_owned(),
            fixed: (number % 2 == 0).then(|| "3.0.2-1".to_owned()),
            severity: scanner::Severity::High,
            summary: Some((0..4).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect()),
            remediation: "upgrade openssl from 3.0.1-1 to 3.0.2-1 or later".to_owned(),
            path: "var/lib/dpkg/status".to_owned(),
            platform: None,
        })
        .collect();
    ScanReport {
        images: vec![ScannedImage { digest: manifest.clone(), platform: None, layers: vec![digest_of("layer")] }],
        manifest,
        repository: repo("scans/app"),
        status: ScanStatus::Done,
        error: None,
        scanned_at: Some(7),
        snapshot: Some(AdvisorySnapshot { id: "s1".to_owned(), imported_at: 1 }),
        summary: SeverityCounts { high: findings.len() as u64, ..SeverityCounts::default() },
        findings,
    }
}

async fn scan_reports_of_any_size_page_in_digest_order(stores: &Stores) {
    let scans = &stores.scans;
    let small = report(digest_of("small"), 1);
    let big = report(digest_of("big"), 8000);
    // Some 500 KB even compressed: more than one DynamoDB item holds.
    assert!(serde_json::to_vec(&big).unwrap().len() > 2_000_000);
    assert_eq!(scans.scan_report(&small.manifest).await.unwrap(), None);
    scans.put_scan_report(&small).await.unwrap();
    scans.put_scan_report(&big).await.unwrap();
    assert_eq!(scans.scan_report(&big.manifest).await.unwrap().as_ref(), Some(&big));
    let smaller_again = ScanReport { findings: Vec::new(), summary: SeverityCounts::default(), ..big.clone() };
    scans.put_scan_report(&smaller_again).await.unwrap();
    assert_eq!(scans.scan_report(&big.manifest).await.unwrap(), Some(smaller_again));
    let mut expected = vec![small.manifest.clone(), big.manifest.clone()];
    expected.sort();
    let listed = every_page(1, async |page| scans.reported_manifests(&page).await.unwrap()).await;
    assert_eq!(listed, expected);
}

async fn the_scan_queue_keeps_one_entry_per_manifest_until_finished(stores: &Stores) {
    let scans = &stores.scans;
    let queued = |repository: &str, text: &str| QueuedScan { repository: repo(repository), manifest: digest_of(text), enqueued_at: 5 };
    assert!(scans.queued_scans(10).await.unwrap().is_empty());
    for scan in [queued("queue/a", "one"), queued("queue/a", "one"), queued("queue/a", "two"), queued("queue/b", "one")] {
        scans.enqueue_scan(&scan).await.unwrap();
    }
    let mut waiting = scans.queued_scans(10).await.unwrap();
    waiting.sort_by_key(|scan| (scan.repository.to_string(), scan.manifest.clone()));
    let mut expected = vec![queued("queue/a", "one"), queued("queue/a", "two"), queued("queue/b", "one")];
    expected.sort_by_key(|scan| (scan.repository.to_string(), scan.manifest.clone()));
    assert_eq!(waiting, expected);
    assert_eq!(scans.queued_scans(2).await.unwrap().len(), 2);
    scans.finish_scan(&repo("queue/a"), &digest_of("one")).await.unwrap();
    scans.finish_scan(&repo("queue/a"), &digest_of("missing")).await.unwrap();
    assert_eq!(scans.queued_scans(10).await.unwrap().len(), 2);
    assert!(!scans.queued_scans(10).await.unwrap().contains(&queued("queue/a", "one")));
}

/// The embedded adapters of `berth serve`.
#[tokio::test]
async fn embedded_adapters_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(super::filesystem::FilesystemBlobStore::open(dir.path()).await.unwrap());
    let metadata = Arc::new(super::embedded::EmbeddedMetadata::open(&dir.path().join(super::layout::METADATA_FILE)).unwrap());
    check_all(Stores { blobs, scans: metadata.clone(), metadata }).await;
}

/// The AWS adapters, on the emulator.
#[tokio::test]
async fn aws_adapters_keep_the_contract() {
    let (blobs, metadata) = crate::testing::fresh_aws_stores().await;
    let metadata = Arc::new(metadata);
    check_all(Stores { blobs: Arc::new(blobs), scans: metadata.clone(), metadata }).await;
}
