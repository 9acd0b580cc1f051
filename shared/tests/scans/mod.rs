//! Vulnerability scanning over HTTP, on both stores: images pushed with real package databases and lockfiles get
//! exactly the findings `shared/vulndata/expected.json` lists, whiteouts remove findings, a shared layer is read once,
//! an advisory import re-evaluates scanned images, and a queued scan survives a restart.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use berth::{
    oci::Digest,
    registry::{EventBus, EventSink},
    scan::Scans,
    services,
    store::{
        BlobStore, ByteRange, ByteStream, MetadataStore, StoreError, UploadLease, UploadSession,
        scanning::{AdvisorySnapshot, ScanStore},
    },
};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Api, DEFAULT_LIMITS, Limits, OCI_MANIFEST, Scanning, Store, sha256};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata");
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const SCANNING: Limits = Limits { scanning: Scanning::Worker, ..DEFAULT_LIMITS };

/// The blob store the scanner reads through, counting the streams it opens (layer reads; manifests are `get`s).
pub struct CountingBlobs {
    inner: Arc<dyn BlobStore>,
    reads: AtomicUsize,
}

impl CountingBlobs {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl BlobStore for CountingBlobs {
    async fn read(&self, digest: &Digest, key: Option<&str>, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(digest, key, range).await
    }
    async fn download_url(&self, digest: &Digest, key: Option<&str>) -> Result<Option<String>, StoreError> {
        self.inner.download_url(digest, key).await
    }
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(digest, bytes).await
    }
    async fn get(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        self.inner.get(digest).await
    }
    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.inner.delete(digest).await
    }
    fn chunk_min_length(&self) -> Option<u64> {
        self.inner.chunk_min_length()
    }
    async fn lease_upload(&self, id: &str) -> Result<UploadLease, StoreError> {
        self.inner.lease_upload(id).await
    }
    async fn append_upload(&self, session: &mut UploadSession, data: ByteStream) -> Result<u64, StoreError> {
        self.inner.append_upload(session, data).await
    }
    async fn read_upload(&self, session: &mut UploadSession) -> Result<ByteStream, StoreError> {
        self.inner.read_upload(session).await
    }
    async fn commit_upload(&self, session: &UploadSession, digest: &Digest) -> Result<Option<String>, StoreError> {
        self.inner.commit_upload(session, digest).await
    }
    async fn abort_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.inner.abort_upload(session).await
    }
    async fn discard(&self, key: &str) -> Result<(), StoreError> {
        self.inner.discard(key).await
    }
}

/// The events the registry under test publishes to: its bus alone, or with scanning as `berth serve` wires it, the
/// scanning service going to `scans`.
pub(super) fn sink(
    mode: Scanning,
    scans: &mut Option<(Arc<Scans>, Arc<CountingBlobs>)>,
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<impl MetadataStore + ScanStore + 'static>,
    events: Arc<EventBus>,
) -> Arc<dyn EventSink> {
    if mode == Scanning::Off {
        return events;
    }
    let counting = Arc::new(CountingBlobs { inner: blobs, reads: AtomicUsize::new(0) });
    if mode == Scanning::Stream {
        *scans = Some((Arc::new(Scans::over(counting.clone(), metadata)), counting));
        return events;
    }
    let (service, trigger, sink) = services::scanning(counting.clone(), metadata, events);
    if mode == Scanning::Worker {
        trigger.spawn_worker(berth::scan::worker::DEFAULT_CONCURRENCY);
    }
    *scans = Some((service, counting));
    sink
}

/// A gzip-compressed tar layer of regular files.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, *contents).unwrap();
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar.into_inner().unwrap()).unwrap();
    gzip.finish().unwrap()
}

fn inventory(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/inventories/{name}")).unwrap()
}

const DEBIAN_12: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

/// Debian 12's minimal base: os-release and the dpkg database of `debootstrap --variant=minbase bookworm`.
fn debian_base() -> Vec<u8> {
    layer(&[("etc/os-release", DEBIAN_12), ("var/lib/dpkg/status", &inventory("debian12-minbase.status"))])
}

const SITE_PACKAGES: &str = "usr/local/lib/python3.11/site-packages";

/// Applications: a Rust lockfile and the Python distributions of `requirements.txt`, installed.
fn applications() -> Vec<u8> {
    let requirements = String::from_utf8(inventory("requirements.txt")).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![("app/Cargo.lock".to_owned(), inventory("Cargo.lock"))];
    for (name, version) in requirements.lines().filter_map(|line| line.split_once("==")) {
        let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        files.push((format!("{SITE_PACKAGES}/{name}-{version}.dist-info/METADATA"), metadata.into_bytes()));
    }
    layer(&files.iter().map(|(path, contents)| (path.as_str(), contents.as_slice())).collect::<Vec<_>>())
}

/// Every OSV record of the shared data whose id `keep` accepts, as the import endpoint takes them.
fn advisories(keep: impl Fn(&str) -> bool) -> Value {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(format!("{DATA}/osv")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "json") {
            let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if keep(record["id"].as_str().unwrap()) {
                records.push(record);
            }
        }
    }
    Value::Array(records)
}

/// (ecosystem, package, installed version, advisory id) of every finding.
type FindingKey = (String, String, String, String);

/// What `expected.json` says the entries `holds` accepts must be reported.
fn expected_findings(holds: impl Fn(&Value) -> bool) -> BTreeSet<FindingKey> {
    let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(format!("{DATA}/expected.json")).unwrap()).unwrap();
    let text = |entry: &Value, field: &str| entry[field].as_str().unwrap().to_owned();
    expected
        .iter()
        .filter(|entry| holds(entry))
        .flat_map(|entry| {
            entry["advisory_ids_expected"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |id| (text(entry, "ecosystem"), text(entry, "package"), text(entry, "version"), id.as_str().unwrap().to_owned()))
        })
        .collect()
}

/// The expected findings of an image of [`debian_base`] and [`applications`].
fn expected_for_base_and_applications() -> BTreeSet<FindingKey> {
    expected_findings(|entry| match entry["ecosystem"].as_str().unwrap() {
        "Debian:12" => entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"),
        ecosystem => ["crates.io", "PyPI"].contains(&ecosystem),
    })
}

fn findings_of(report: &Value) -> BTreeSet<FindingKey> {
    let text = |finding: &Value, field: &str| finding[field].as_str().unwrap().to_owned();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| (text(finding, "ecosystem"), text(finding, "package"), text(finding, "installed"), text(finding, "id")))
        .collect()
}

fn finding<'r>(report: &'r Value, id: &str, package: &str) -> &'r Value {
    let findings = report["findings"].as_array().unwrap();
    findings.iter().find(|finding| finding["id"] == id && finding["package"] == package).unwrap_or_else(|| panic!("no {id} for {package}"))
}

impl Api {
    async fn import_advisories(&self, records: &Value) -> Value {
        let reply = self.send(Method::POST, "/berth/v1/advisories", &[("content-type", "application/json")], records.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }

    /// Pushes an image of gzip `layers` (bottom first) under `tag`; returns the manifest's digest.
    async fn push_layers(&self, name: &str, tag: &str, layers: &[Vec<u8>]) -> Digest {
        let mut pushed = Vec::new();
        for layer in layers {
            pushed.push((GZIP_LAYER, self.push_blob(name, layer).await, layer.len()));
        }
        self.push_layers_of(name, tag, &pushed).await
    }

    /// Pushes an image of layers already pushed, each as (media type, digest, size), under `tag`; returns the
    /// manifest's digest.
    async fn push_layers_of(&self, name: &str, tag: &str, layers: &[(&str, Digest, usize)]) -> Digest {
        let config = self.push_blob(name, b"{}").await;
        let descriptors: Vec<Value> = layers
            .iter()
            .map(|(media_type, digest, size)| json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}))
            .collect();
        let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": descriptors}))
        .unwrap();
        let reply = self.put_manifest(name, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        sha256(&manifest)
    }

    /// The scan report of `name:reference` once its scan is no longer pending.
    async fn scanned(&self, name: &str, reference: &str) -> Value {
        for _ in 0..600 {
            let reply = self.get(&format!("/berth/v1/repositories/{name}/scans/{reference}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
            let report = reply.json();
            if report["status"] != "pending" {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name}:{reference} was not scanned within 30 s");
    }

    fn layer_reads(&self) -> usize {
        self.scans.as_ref().expect("the registry scans").1.reads()
    }
}

pub(super) async fn pushed_images_have_exactly_the_expected_findings(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    let imported = api.import_advisories(&advisories(|_| true)).await;
    assert_eq!(imported["imported"], 211);
    let digest = api.push_layers("scan/app", "v1", &[debian_base(), applications()]).await;
    let report = api.scanned("scan/app", "v1").await;
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["image"], format!("scan/app@{digest}"));
    assert_eq!(report["snapshot"]["id"], imported["snapshot"]["id"]);
    let expected = expected_for_base_and_applications();
    assert_eq!(findings_of(&report), expected);
    // 4 Debian (pcre2 twice, xz-utils, tzdata), 21 crates.io and 25 PyPI findings.
    assert_eq!(expected.len(), 50);
    assert_eq!(report["summary"]["total"], 50);
    let counted: u64 =
        ["critical", "high", "medium", "low", "unknown"].iter().map(|level| report["summary"][level].as_u64().unwrap()).sum();
    assert_eq!(counted, 50);

    let pcre2 = finding(&report, "DLA-4772-1", "pcre2");
    assert_eq!(pcre2["installed"], "10.42-1");
    assert_eq!(pcre2["fixed"], "10.42-1+deb12u1");
    assert_eq!(pcre2["severity"], "Unknown");
    assert_eq!(pcre2["remediation"], "upgrade pcre2 from 10.42-1 to 10.42-1+deb12u1 or later");
    assert_eq!(pcre2["path"], "var/lib/dpkg/status");
    let urllib3 = finding(&report, "PYSEC-2023-212", "urllib3");
    assert_eq!((&urllib3["fixed"], &urllib3["severity"]), (&json!("1.26.18"), &json!("Medium")));
    assert!(urllib3["aliases"].as_array().unwrap().contains(&json!("CVE-2023-45803")), "{urllib3}");
    let rsa = finding(&report, "RUSTSEC-2023-0071", "rsa");
    assert_eq!(rsa["fixed"], Value::Null);
    assert_eq!(rsa["severity"], "Medium");
    assert!(rsa["remediation"].as_str().unwrap().starts_with("no fix available yet; The only currently available workaround"), "{rsa}");
    // By digest, the same report.
    assert_eq!(api.scanned("scan/app", &digest.to_string()).await["findings"], report["findings"]);
}

/// On AWS the table's stream starts every scan: the records the emulator's stream holds after the pushes, handed to
/// the scan function's handler as Lambda hands them, scan each pushed manifest once and attach its report; a batch
/// Lambda delivers again (at least once) reads no layer again, and the report artifacts it now carries are not
/// scanned.
pub(super) async fn the_tables_stream_starts_scans() {
    let api = Api::with_limits(Store::Aws, Limits { scanning: Scanning::Stream, ..DEFAULT_LIMITS }).await;
    api.import_advisories(&advisories(|_| true)).await;
    // A base layer bigger than one upload part, so its bytes stay where its multipart upload completed (`data/`).
    let noise: Vec<u8> = (0..(7 << 20) / 16).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
    let base =
        layer(&[("etc/os-release", DEBIAN_12), ("var/lib/dpkg/status", &inventory("debian12-minbase.status")), ("opt/noise", &noise)]);
    let digest = api.push_layers("scan/stream", "v1", &[base.clone(), applications()]).await;
    // Tagged again: the same manifest, a modified item, no second scan.
    api.push_layers("scan/stream", "v1-again", &[base, applications()]).await;
    let garbage = api.push_blob("scan/stream", b"no gzip").await;
    let broken = api.push_layers_of("scan/stream", "broken", &[(GZIP_LAYER, garbage.clone(), 7)]).await;
    let unscanned = api.get("/berth/v1/repositories/scan/stream/scans/v1").await;
    unscanned.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(api.layer_reads(), 0, "a push scans nothing by itself");

    let scans = api.scans.as_ref().expect("the registry scans").0.clone();
    let event = berth::testing::stream_event(api.table.as_ref().expect("the AWS store has a table"));
    let pushes: Vec<(String, Digest)> =
        berth::stream::pushed_manifests(&event).into_iter().map(|pushed| (pushed.repository.to_string(), pushed.digest)).collect();
    assert_eq!(pushes, [("scan/stream".to_owned(), digest.clone()), ("scan/stream".to_owned(), broken.clone())]);
    let answer = berth::stream::scan_batch(&scans, &event).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let report = api.scanned("scan/stream", "v1").await;
    assert_eq!((&report["status"], &report["image"]), (&json!("done"), &json!(format!("scan/stream@{digest}"))));
    assert_eq!(findings_of(&report), expected_for_base_and_applications());
    let failed = api.scanned("scan/stream", "broken").await;
    assert_eq!(failed["status"], "failed", "a layer that does not read is the image's fault: reported, not retried");
    assert!(failed["error"].as_str().unwrap().contains(&garbage.to_string()), "{failed}");
    let reads = api.layer_reads();
    assert_eq!(reads, 3, "two layers of the image and the broken one");

    let attached = api.reports_of("scan/stream", &digest).await;
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(api.attached_report("scan/stream", &digest, &attached[0]).await, report);

    // Delivered again, now with the report artifact's own item in the stream: it is no image to scan.
    let event = berth::testing::stream_event(api.table.as_ref().expect("the AWS store has a table"));
    let artifact: Digest = attached[0]["digest"].as_str().unwrap().parse().unwrap();
    let pushed: Vec<Digest> = berth::stream::pushed_manifests(&event).into_iter().map(|pushed| pushed.digest).collect();
    assert_eq!(pushed, [digest.clone(), broken, artifact.clone()]);
    let again = berth::stream::scan_batch(&scans, &event).await;
    assert!(again.batch_item_failures.is_empty(), "{again:?}");
    assert_eq!(api.scanned("scan/stream", "v1").await["findings"], report["findings"]);
    assert_eq!(api.layer_reads(), reads + 1, "only the layer that never read is read again");
    let unscanned = api.get(&format!("/berth/v1/repositories/scan/stream/scans/{artifact}")).await;
    unscanned.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(api.reports_of("scan/stream", &digest).await.len(), 1, "the image keeps one report");
}

pub(super) async fn every_platform_of_an_index_is_scanned(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.import_advisories(&advisories(|_| true)).await;
    let amd64 = api.push_layers("scan/multi", "amd64", &[debian_base(), applications()]).await;
    let arm64 = api.push_layers("scan/multi", "arm64", &[debian_base()]).await;
    let entry = |digest: &Digest, architecture: &str| json!({"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": 1, "platform": {"os": "linux", "architecture": architecture}});
    // The sizes are not checked on push, and the scan reads each child by digest.
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": super::OCI_INDEX,
        "manifests": [entry(&amd64, "amd64"), entry(&arm64, "arm64")]}))
    .unwrap();
    assert_eq!(api.put_manifest("scan/multi", "v1", super::OCI_INDEX, &index).await.status, StatusCode::CREATED);
    let report = api.scanned("scan/multi", "v1").await;
    assert_eq!(report["status"], "done", "{report}");
    let on = |platform: &str| -> BTreeSet<FindingKey> {
        let only: Vec<Value> =
            report["findings"].as_array().unwrap().iter().filter(|finding| finding["platform"] == platform).cloned().collect();
        findings_of(&json!({ "findings": only }))
    };
    assert_eq!(on("linux/amd64"), expected_for_base_and_applications());
    assert_eq!(
        on("linux/arm64"),
        expected_findings(|entry| entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"))
    );
    assert_eq!(report["summary"]["total"], 54);
}

pub(super) async fn a_layer_that_is_no_tar_fails_its_scan_only(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.import_advisories(&advisories(|id| id.starts_with("DLA-"))).await;
    let garbage = api.push_blob("scan/broken", b"this is no zstd frame").await;
    api.push_layers_of("scan/broken", "v1", &[("application/vnd.oci.image.layer.v1.tar+zstd", garbage.clone(), 21)]).await;
    let report = api.scanned("scan/broken", "v1").await;
    assert_eq!(report["status"], "failed");
    assert!(report["error"].as_str().unwrap().contains(&garbage.to_string()), "{report}");
    assert_eq!(report["findings"], json!([]));
    // The registry still scans what comes next.
    api.push_layers("scan/broken", "v2", &[debian_base()]).await;
    assert_eq!(api.scanned("scan/broken", "v2").await["summary"]["total"], 4);
}

pub(super) async fn a_manifest_deleted_while_queued_fails_its_scan(store: Store) {
    let api = Api::with_limits(store, Limits { scanning: Scanning::QueueOnly, ..DEFAULT_LIMITS }).await;
    let digest = api.push_layers("scan/gone", "v1", &[debian_base()]).await;
    assert_eq!(api.send(Method::DELETE, &format!("/v2/scan/gone/manifests/{digest}"), &[], "").await.status, StatusCode::ACCEPTED);
    let scans = &api.scans.as_ref().expect("the registry scans").0;
    let queued = scans.store().queued_scans(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let report = scans.run(&queued[0]).await.unwrap().expect("an image is no report artifact");
    assert_eq!(report.status, berth::store::scanning::ScanStatus::Failed);
    assert_eq!(report.error.unwrap(), format!("manifest {digest} is no longer in scan/gone"));
    assert!(scans.store().queued_scans(10).await.unwrap().is_empty(), "a failed scan leaves the queue");
    assert_eq!(api.layer_reads(), 0);
}

pub(super) async fn a_whiteout_removes_a_packages_findings(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.import_advisories(&advisories(|_| true)).await;
    let removal = layer(&[(&format!("{SITE_PACKAGES}/.wh.urllib3-1.26.17.dist-info"), b"")]);
    api.push_layers("scan/slim", "v1", &[debian_base(), applications(), removal]).await;
    let report = api.scanned("scan/slim", "v1").await;
    let mut expected = expected_for_base_and_applications();
    expected.retain(|(_, package, ..)| package != "urllib3");
    assert_eq!(expected.len(), 49);
    assert_eq!(findings_of(&report), expected);
}

pub(super) async fn a_shared_base_layer_is_read_once(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.import_advisories(&advisories(|_| true)).await;
    api.push_layers("scan/first", "v1", &[debian_base(), applications()]).await;
    api.scanned("scan/first", "v1").await;
    assert_eq!(api.layer_reads(), 2);
    let tools = layer(&[("app/Cargo.lock", &inventory("Cargo.lock"))]);
    api.push_layers("scan/second", "v1", &[debian_base(), tools]).await;
    let report = api.scanned("scan/second", "v1").await;
    assert_eq!(api.layer_reads(), 3, "only the second image's own layer is read");
    let expected = expected_findings(|entry| {
        entry["ecosystem"] == "crates.io" || entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status")
    });
    assert_eq!(findings_of(&report), expected);
}

pub(super) async fn later_advisories_reevaluate_scanned_images(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.push_layers("scan/early", "v1", &[debian_base(), applications()]).await;
    let before = api.scanned("scan/early", "v1").await;
    assert_eq!(before["status"], "done");
    assert_eq!(before["snapshot"], Value::Null);
    assert_eq!(before["findings"], json!([]));
    let debian_only = api.import_advisories(&advisories(|id| id.starts_with("DLA-"))).await;
    let report = api.scanned("scan/early", "v1").await;
    assert_eq!(report["snapshot"]["id"], debian_only["snapshot"]["id"]);
    assert_eq!(
        findings_of(&report),
        expected_findings(|entry| entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"))
    );
    let everything = api.import_advisories(&advisories(|_| true)).await;
    assert_ne!(everything["snapshot"]["id"], debian_only["snapshot"]["id"]);
    let report = api.scanned("scan/early", "v1").await;
    assert_eq!(report["snapshot"]["id"], everything["snapshot"]["id"]);
    assert_eq!(findings_of(&report), expected_for_base_and_applications());
    assert_eq!(api.layer_reads(), 2, "re-evaluation reads no layer");
    let scans = &api.scans.as_ref().expect("the registry scans").0;
    assert_eq!(scans.reevaluate_stale().await.unwrap(), 0, "the import left no report on an older snapshot");
}

impl Api {
    /// The report artifacts attached to `image`, from the referrers API filtered to their type: their descriptors.
    async fn reports_of(&self, name: &str, image: &Digest) -> Vec<Value> {
        let path = format!("/v2/{name}/referrers/{image}?artifactType={}", berth::scan::REPORT_ARTIFACT_TYPE.replace('+', "%2B"));
        let reply = self.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["manifests"].as_array().unwrap().clone()
    }

    /// The report an attached artifact holds, read as a client pulls it: its manifest, then its one layer.
    async fn attached_report(&self, name: &str, image: &Digest, descriptor: &Value) -> Value {
        let path = format!("/v2/{name}/manifests/{}", descriptor["digest"].as_str().unwrap());
        let manifest = self.send(Method::GET, &path, &[("accept", OCI_MANIFEST)], "").await;
        assert_eq!(manifest.status, StatusCode::OK);
        assert_eq!(sha256(&manifest.body).to_string(), descriptor["digest"]);
        let manifest = manifest.json();
        assert_eq!(manifest["artifactType"], berth::scan::REPORT_ARTIFACT_TYPE);
        assert_eq!(manifest["subject"]["digest"], image.to_string());
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["annotations"]["org.opencontainers.image.title"], berth::scan::REPORT_FILE);
        let layer = self.get(&format!("/v2/{name}/blobs/{}", layers[0]["digest"].as_str().unwrap())).await;
        assert_eq!(layer.status, StatusCode::OK);
        assert_eq!(sha256(&layer.body).to_string(), layers[0]["digest"]);
        assert_eq!(manifest["annotations"], descriptor["annotations"], "the referrers API lists the artifact's annotations");
        layer.json()
    }
}

/// Every finished scan is attached to its image as an OCI referrer holding the report the API serves; when
/// advisories change, the re-evaluated report replaces it (one report per image, the old artifact gone); a scan that
/// failed attaches nothing, and a report artifact is never scanned itself.
pub(super) async fn reports_are_attached_to_their_images_as_referrers(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    let debian_only = api.import_advisories(&advisories(|id| id.starts_with("DLA-"))).await;
    let image = api.push_layers("scan/attached", "v1", &[debian_base()]).await;
    let report = api.scanned("scan/attached", "v1").await;
    let attached = api.reports_of("scan/attached", &image).await;
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0]["artifactType"], berth::scan::REPORT_ARTIFACT_TYPE);
    assert_eq!(attached[0]["annotations"][berth::scan::SNAPSHOT_ANNOTATION], debian_only["snapshot"]["id"]);
    assert_eq!(attached[0]["annotations"]["org.opencontainers.image.created"], report["scanned_at"]);
    assert_eq!(api.attached_report("scan/attached", &image, &attached[0]).await, report);
    assert_eq!(report["summary"]["total"], 4);
    let unfiltered = api.get(&format!("/v2/scan/attached/referrers/{image}")).await.json();
    assert_eq!(unfiltered["manifests"].as_array().unwrap().len(), 1);
    let artifact = attached[0]["digest"].as_str().unwrap().to_owned();
    let unscanned = api.get(&format!("/berth/v1/repositories/scan/attached/scans/{artifact}")).await;
    unscanned.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    let everything = api.import_advisories(&advisories(|_| true)).await;
    let reevaluated = api.scanned("scan/attached", "v1").await;
    assert_eq!(reevaluated["snapshot"]["id"], everything["snapshot"]["id"]);
    let replaced = api.reports_of("scan/attached", &image).await;
    assert_eq!(replaced.len(), 1, "the re-evaluated report replaces the old one: {replaced:?}");
    assert_ne!(replaced[0]["digest"], artifact);
    assert_eq!(replaced[0]["annotations"][berth::scan::SNAPSHOT_ANNOTATION], everything["snapshot"]["id"]);
    assert_eq!(api.attached_report("scan/attached", &image, &replaced[0]).await, reevaluated);
    let old = api.send(Method::GET, &format!("/v2/scan/attached/manifests/{artifact}"), &[("accept", OCI_MANIFEST)], "").await;
    old.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    // An image claiming the report type is still scanned: the type alone exempts nothing.
    let base = debian_base();
    let layer = api.push_blob("scan/attached", &base).await;
    let config = api.push_blob("scan/attached", b"{}").await;
    let disguised = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": berth::scan::REPORT_ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": GZIP_LAYER, "digest": layer.to_string(), "size": base.len()}]}))
    .unwrap();
    assert_eq!(api.put_manifest("scan/attached", "disguised", OCI_MANIFEST, &disguised).await.status, StatusCode::CREATED);
    let report = api.scanned("scan/attached", "disguised").await;
    assert_eq!((&report["status"], &report["summary"]["total"]), (&json!("done"), &json!(4)), "{report}");

    let broken = api.push_layers("scan/attached", "broken", &[b"no tar at all".to_vec()]).await;
    assert_eq!(api.scanned("scan/attached", "broken").await["status"], "failed");
    assert_eq!(api.reports_of("scan/attached", &broken).await, Vec::<Value>::new());
    let scans = &api.scans.as_ref().expect("the registry scans").0;
    assert!(scans.store().queued_scans(10).await.unwrap().is_empty(), "no report artifact was queued for a scan");
}

/// A zip of `files`, as OSV publishes its exports.
fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, contents) in files {
        writer.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(contents).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Serves `files` (path, body) over HTTP on loopback for as long as the test runs; answers 404 for other paths.
async fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let mut router = axum::Router::new();
    for (path, body) in files {
        router = router.route(path, axum::routing::get(move || async move { body }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// The advisories function's run: the OSV exports its sources name (zips served over HTTP by the test) are
/// downloaded and imported as one snapshot, which re-evaluates the images scanned before; a source that answers 404
/// or is no zip is named in the run's error while the other sources' records still count, and a file of an export
/// that is no OSV record is left out.
pub(super) async fn advisories_are_downloaded_from_their_sources(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    let image = api.push_layers("scan/daily", "v1", &[debian_base(), applications()]).await;
    assert_eq!(api.scanned("scan/daily", "v1").await["findings"], json!([]));
    let records = advisories(|_| true);
    let file = |record: &Value| (format!("{}.json", record["id"].as_str().unwrap()), record.to_string().into_bytes());
    let (debian, others): (Vec<&Value>, Vec<&Value>) =
        records.as_array().unwrap().iter().partition(|record| record["id"].as_str().unwrap().starts_with("DLA-"));
    let mut other_files: Vec<(String, Vec<u8>)> = others.iter().map(|record| file(record)).collect();
    other_files.push(("not-a-record.json".to_owned(), b"[1, 2, 3]".to_vec()));
    let debian_files: Vec<(String, Vec<u8>)> = debian.iter().map(|record| file(record)).collect();
    let url = serve_files(vec![
        ("/Debian/all.zip", zip_of(&debian_files)),
        ("/other/all.zip", zip_of(&other_files)),
        ("/broken/all.zip", b"no zip at all".to_vec()),
    ])
    .await;
    let source = |path: &str| format!("{url}{path}");
    let scans = &api.scans.as_ref().expect("the registry scans").0;
    let http = reqwest::Client::new();

    let sources = [source("/Debian/all.zip"), source("/missing/all.zip"), source("/broken/all.zip"), source("/other/all.zip")];
    let error = berth::scan::download::scheduled_import(scans, &http, &sources).await.unwrap_err();
    assert!(error.starts_with(&format!("imported {} advisories, but some sources failed", records.as_array().unwrap().len())), "{error}");
    assert!(error.contains(&format!("{}: the download answered 404 Not Found", sources[1])), "{error}");
    assert!(error.contains(&format!("{}: not a zip archive", sources[2])), "{error}");
    let report = api.scanned("scan/daily", "v1").await;
    assert_eq!(findings_of(&report), expected_for_base_and_applications(), "the sources that worked were imported");

    let sources = [source("/Debian/all.zip"), source("/other/all.zip")];
    let summary = berth::scan::download::scheduled_import(scans, &http, &sources).await.unwrap();
    let counts: Vec<(usize, usize)> = summary.sources.iter().map(|source| (source.records, source.skipped)).collect();
    assert_eq!(counts, [(debian.len(), 0), (others.len(), 1)]);
    assert!(summary.sources.iter().all(|source| source.error.is_none()));
    let import = summary.import.expect("the sources gave records");
    assert_eq!((import.imported, import.reevaluated), (debian.len() + others.len(), 1));
    let report = api.scanned("scan/daily", "v1").await;
    assert_eq!(report["snapshot"]["id"], import.snapshot.id);
    assert_eq!(findings_of(&report), expected_for_base_and_applications());
    assert_eq!(api.reports_of("scan/daily", &image).await.len(), 1, "the re-evaluated report replaced the attached one");

    // Every source down: no new snapshot.
    let error = berth::scan::download::scheduled_import(scans, &http, &[source("/missing/all.zip")]).await.unwrap_err();
    assert!(error.starts_with("no source gave an advisory, so the advisories stay as they were"), "{error}");
    assert_eq!(api.scanned("scan/daily", "v1").await["snapshot"]["id"], import.snapshot.id);
}

/// An import streamed as NDJSON (one OSV record per line, any number of them): stored as it arrives, one snapshot at
/// the end; a line that is no OSV record refuses the import, naming the line, and leaves every report as it was.
pub(super) async fn advisories_stream_in_one_record_per_line(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.push_layers("scan/lines", "v1", &[debian_base(), applications()]).await;
    api.scanned("scan/lines", "v1").await;
    let records = advisories(|_| true);
    let lines: Vec<String> = records.as_array().unwrap().iter().map(Value::to_string).collect();
    let ndjson = [("content-type", "application/x-ndjson")];
    let body = format!("{}\n\n{}", lines[..100].join("\n"), lines[100..].join("\n"));
    let reply = api.send(Method::POST, "/berth/v1/advisories", &ndjson, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let imported = reply.json();
    assert_eq!((&imported["imported"], &imported["reevaluated"]), (&json!(lines.len()), &json!(1)));
    let report = api.scanned("scan/lines", "v1").await;
    assert_eq!(report["snapshot"]["id"], imported["snapshot"]["id"]);
    assert_eq!(findings_of(&report), expected_for_base_and_applications());

    // A record given twice in one import is written once, the last copy.
    let twice = api.import_advisories(&json!([records[0], records[1], records[0]])).await;
    assert_eq!(twice["imported"], 2);

    let broken = format!("{}\n{}\n{{\"summary\": \"no id\"}}\n{}", lines[0], lines[1], lines[2]);
    let refused = api.send(Method::POST, "/berth/v1/advisories", &ndjson, broken).await;
    refused.assert_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    let message = refused.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("line 3: not an OSV record"), "{message}");
    assert_eq!(api.scanned("scan/lines", "v1").await["snapshot"]["id"], twice["snapshot"]["id"], "no report changed");
}

pub(super) async fn scan_endpoints_check_access_and_input(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.push_layers("scan/guarded", "v1", &[debian_base()]).await;
    let path = "/berth/v1/repositories/scan/guarded/scans/v1";
    let (reader, password) = api.principal("reader", &["acrpull"], Some("scan/guarded")).await;
    let token = api.token_for(&reader, &password, &["repository:scan/guarded:metadata_read"]).await;
    assert_eq!(api.send_with(&token, Method::GET, path, "").await.status, StatusCode::OK);
    let (outsider, password) = api.principal("outsider", &["acrpull"], Some("other/*")).await;
    let token = api.token_for(&outsider, &password, &["repository:scan/guarded:metadata_read"]).await;
    assert_eq!(api.send_with(&token, Method::GET, path, "").await.status, StatusCode::UNAUTHORIZED);
    let import = api.send_with(&token, Method::POST, "/berth/v1/advisories", "[]").await;
    assert_eq!(import.status, StatusCode::UNAUTHORIZED);

    api.get("/berth/v1/repositories/scan/guarded/scans/v2").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get("/berth/v1/repositories/scan/guarded/scans/-v2").await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    for body in ["not json", "{\"id\": \"x\"}", "[{\"id\": 5}]", "[{\"summary\": \"no id\"}]"] {
        let reply = api.send(Method::POST, "/berth/v1/advisories", &[("content-type", "application/json")], body).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    }
}

/// The pull policy: off by default; at a severity, an image with findings that severe is refused with 403 DENIED
/// naming them (by tag, by digest, HEAD too); allowing them, by id or by a CVE alias, lets it through; an image whose
/// scan did not finish is served; `none` turns the policy off, and a severity that is none is refused.
pub(super) async fn the_pull_policy_blocks_vulnerable_images(store: Store) {
    let api = Api::with_limits(store, SCANNING).await;
    api.import_advisories(&advisories(|_| true)).await;
    let digest = api.push_layers("scan/policy", "v1", &[debian_base(), applications()]).await;
    let report = api.scanned("scan/policy", "v1").await;
    let api = &api;
    let policy = |change: Value| async move {
        let reply = api.send(Method::PATCH, "/berth/v1/access/registry", &[("content-type", "application/json")], change.to_string()).await;
        (reply.status, reply.json())
    };
    let pull = |reference: String, method: Method| async move {
        api.send(method, &format!("/v2/scan/policy/manifests/{reference}"), &[("accept", OCI_MANIFEST)], "").await
    };
    assert_eq!(pull("v1".into(), Method::GET).await.status, StatusCode::OK, "off by default");

    let (status, shown) = policy(json!({"blockSeverity": "medium"})).await;
    assert_eq!((status, &shown["blockSeverity"], &shown["allowedAdvisories"]), (StatusCode::OK, &json!("Medium"), &json!([])));
    let blocking: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| ["Medium", "High", "Critical"].contains(&finding["severity"].as_str().unwrap()))
        .collect();
    assert!(blocking.len() > 5, "{} findings at Medium or above", blocking.len());
    let refused = pull("v1".into(), Method::GET).await;
    refused.assert_error(StatusCode::FORBIDDEN, "DENIED");
    let message = refused.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    let mut named: Vec<String> = blocking.iter().map(|finding| finding["id"].as_str().unwrap().to_owned()).collect();
    named.sort();
    assert!(message.contains("at or above Medium") && message.contains(&named[0]), "{message}");
    assert_eq!(pull(digest.to_string(), Method::GET).await.status, StatusCode::FORBIDDEN);
    assert_eq!(pull("v1".into(), Method::HEAD).await.status, StatusCode::FORBIDDEN);

    // Every blocking finding allowed, urllib3's by its CVE alias.
    let allowed: Vec<&str> = blocking
        .iter()
        .map(|finding| if finding["id"] == "PYSEC-2023-212" { "CVE-2023-45803" } else { finding["id"].as_str().unwrap() })
        .collect();
    assert!(allowed.contains(&"CVE-2023-45803"));
    let (status, shown) = policy(json!({"allowedAdvisories": allowed})).await;
    assert_eq!((status, &shown["blockSeverity"]), (StatusCode::OK, &json!("Medium")), "the severity stays");
    assert_eq!(pull("v1".into(), Method::GET).await.status, StatusCode::OK);
    let (_, shown) = policy(json!({"allowedAdvisories": [], "blockSeverity": "unknown"})).await;
    assert_eq!(shown["blockSeverity"], "Unknown");
    assert_eq!(pull("v1".into(), Method::GET).await.status, StatusCode::FORBIDDEN);

    // A scan that could not finish blocks nothing.
    api.push_layers("scan/policy", "broken", &[b"no tar at all".to_vec()]).await;
    assert_eq!(api.scanned("scan/policy", "broken").await["status"], "failed");
    assert_eq!(pull("broken".into(), Method::GET).await.status, StatusCode::OK);

    let (status, shown) = policy(json!({"blockSeverity": "none"})).await;
    assert_eq!((status, &shown["blockSeverity"]), (StatusCode::OK, &Value::Null));
    assert_eq!(pull("v1".into(), Method::GET).await.status, StatusCode::OK);
    let (status, refusal) = policy(json!({"blockSeverity": "severe"})).await;
    assert_eq!((status, &refusal["errors"][0]["code"]), (StatusCode::BAD_REQUEST, &json!("INVALID_REQUEST")));
}

/// A scan queued when the registry stopped runs when it starts again.
#[tokio::test]
async fn a_queued_scan_survives_a_restart() {
    let api = Api::with_limits(Store::Embedded, Limits { scanning: Scanning::QueueOnly, ..DEFAULT_LIMITS }).await;
    api.import_advisories(&advisories(|_| true)).await;
    api.push_layers("scan/restart", "v1", &[debian_base()]).await;
    let pending = api.get("/berth/v1/repositories/scan/restart/scans/v1").await.json();
    assert_eq!(pending["status"], "pending");
    assert_eq!(api.layer_reads(), 0);
    let dir = api.into_dir();

    let api = Api::in_dir(Store::Embedded, SCANNING, dir).await;
    let report = api.scanned("scan/restart", "v1").await;
    assert_eq!(report["status"], "done");
    assert_eq!(
        findings_of(&report),
        expected_findings(|entry| entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"))
    );
    assert_eq!(api.layer_reads(), 1);
}

/// An import whose re-evaluation a stop cut off (the advisories stored, the reports not yet matched against them) is
/// finished when the registry starts again.
#[tokio::test]
async fn a_reevaluation_cut_off_by_a_stop_finishes_at_the_next_start() {
    let api = Api::with_limits(Store::Embedded, Limits { scanning: Scanning::QueueOnly, ..DEFAULT_LIMITS }).await;
    api.push_layers("scan/resume", "v1", &[debian_base()]).await;
    let scans = api.scans.as_ref().expect("the registry scans").0.clone();
    let queued = scans.store().queued_scans(10).await.unwrap();
    assert_eq!(scans.run(&queued[0]).await.unwrap().expect("an image is no report artifact").findings, []);
    let records: Vec<_> = advisories(|id| id.starts_with("DLA-"))
        .as_array()
        .unwrap()
        .iter()
        .map(|record| berth::scan::import::checked_advisory(record.to_string().into_bytes()).unwrap())
        .collect();
    let snapshot = AdvisorySnapshot { id: "cut-off".to_owned(), imported_at: 1 };
    scans.store().import_advisories(&records, &snapshot).await.unwrap();
    drop(scans);
    let dir = api.into_dir();

    let api = Api::in_dir(Store::Embedded, SCANNING, dir).await;
    for _ in 0..600 {
        let report = api.get("/berth/v1/repositories/scan/resume/scans/v1").await.json();
        if report["snapshot"]["id"] == "cut-off" {
            let expected = expected_findings(|entry| entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"));
            assert_eq!(findings_of(&report), expected);
            assert_eq!(api.layer_reads(), 0, "re-evaluation reads no layer");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the report was not re-evaluated after the restart");
}
