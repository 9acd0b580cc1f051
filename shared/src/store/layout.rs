//! Every key Berth's stores write, in one place.
//!
//! Filesystem blob store, under `<data-dir>/`:
//! ```text
//! blobs/<algorithm>/<hex[0..2]>/<hex>   a blob's bytes (layers, configs, manifests); complete and fsynced before
//!                                       the rename that makes them appear here
//! uploads/<session-id>                  an unfinished upload; only the first `size` bytes of its session count
//! tmp/<random>                          a small write on its way to blobs/
//! ```
//! Embedded metadata, `<data-dir>/metadata.redb`, one redb table per record kind:
//! ```text
//! repositories  <repo>                              -> ()            catalog
//! blob_links    (<repo>, <digest>)                  -> size          which repository may read which blob
//! blob_keys     <digest>                            -> key           where a blob not at its content address is
//! manifests     (<repo>, <digest>)                  -> ManifestRecord (JSON)
//! tags          (<repo>, <tag>)                     -> <digest>
//! referrers     (<repo>, <subject>, <digest>)       -> ()            manifests whose `subject` is <subject>
//! uploads       <session-id>                        -> UploadSession (JSON)
//! identity      (<kind>, <key>)                     -> record (JSON)  identities, settings, signing keys
//! advisories    <advisory-id>                       -> OSV record (JSON, as imported)
//! advisory_packages (<package-key>, <advisory-id>)  -> ()            which advisories affect a package (scans read these)
//! scan_state    "snapshot"                          -> AdvisorySnapshot (JSON)  the last import
//! inventories   <layer-digest>                      -> LayerInventory (JSON)
//! scan_reports  <manifest-digest>                   -> ScanReport (JSON)
//! scan_queue    (<repo>, <manifest-digest>)         -> QueuedScan (JSON)  manifests waiting for a scan
//! ```
//! Shared counters (failed logins) of the embedded store live in its process's memory: redb lets one process open
//! the database, so that process sees every login.
//! S3, one bucket:
//! ```text
//! blobs/<algorithm>/<hex[0..2]>/<hex>   a blob's bytes, as on the filesystem; written (copied) only after verification
//! data/<session-id>                     a session's multipart upload, completed here; a blob bigger than one part
//!                                       stays here (its links name the key: never copied), smaller ones go to blobs/
//! uploads/<session-id>/tail/<gen>       bytes not yet filling a part; a fresh <gen> each time (see s3.rs)
//! ```
//! DynamoDB, one table with string keys `pk` (partition) and `sk` (sort); every listing is a Query on one pk:
//! ```text
//! pk              sk                            attributes
//! REPOS           <repo>                        -                              catalog
//! REPO#<repo>     BLOB#<digest>                 size, key                      blob link; key: where its bytes are, if not blobs/
//! BLOB#<digest>   BLOB                          size, key                      the one key of a blob kept at its own key
//! REPO#<repo>     MANIFEST#<digest>             record (JSON), content             content: the bytes when ≤ 16 KiB
//! REPO#<repo>     REFERRER#<subject>#<digest>   record (JSON), artifact_type   referrer entry; artifact_type if it has one
//! REPO#<repo>     TAG#<tag>                     digest, record (JSON), content     (so a pull by tag is one read)
//! UPLOAD#<id>     UPLOAD                        session (JSON), size, expires_at (TTL, epoch seconds)
//! IDENTITY#<kind> <key>                         record (JSON)                  identity record (identity/directory.rs)
//! COUNTER#<name>  COUNTER                       count, expires_at (TTL)        shared counter (failed logins per window)
//! ADVISORY        <advisory-id>                 document                       OSV record as imported
//! ADVISORIES-OF   <package-key>                 ids (string set)               the advisories affecting a package
//! SCAN-STATE      SNAPSHOT                      snapshot (JSON)                the last advisory import
//! LAYER#<digest>  INVENTORY                     document                       a layer's inventory
//! SCAN#<digest>   REPORT                        document                       a manifest's scan report
//! SCANS           <digest>                      -                              every reported manifest (re-evaluation)
//! SCAN-QUEUE      <repo>#<digest>               scan (JSON)                    manifests waiting for a scan
//! CHUNK#<pk>#<sk> <n>                           data                           part n ≥ 1 of a long document
//! ```
//! A document is gzip-compressed JSON in `data` with its part count in `chunks`: when compressed it outgrows
//! [`dynamo::DOCUMENT_CHUNK_BYTES`] (an item holds 400 KB), parts 1… go to their own `CHUNK#` items, written
//! before the head that counts them.
//! Identity record kinds and keys (both stores): `principal/<id>`, `principal-name/<name>` (-> id),
//! `assignment/<assignee>\n<role>\n<scope>`, `admin/admin`, `scope-map/<name>`, `token/<name>`,
//! `settings/settings`, `signing-key/<kid>` (a public JWK).

use std::path::PathBuf;

use redb::TableDefinition;

use crate::oci::{Digest, is_upload_id};

pub const BLOBS_DIR: &str = "blobs";
pub const UPLOADS_DIR: &str = "uploads";
pub const TMP_DIR: &str = "tmp";
/// S3 only: big blobs, completed where they were uploaded (see [`s3_upload_data_key`]).
pub const DATA_DIR: &str = "data";
pub const METADATA_FILE: &str = "metadata.redb";

/// A blob's path relative to the data directory; two hex characters fan it out so no directory grows huge.
pub fn blob_path(digest: &Digest) -> PathBuf {
    [BLOBS_DIR, digest.algorithm().as_str(), &digest.hex()[..2], digest.hex()].iter().collect()
}

/// An upload's path relative to the data directory, for ids that [`is_upload_id`] accepts.
pub fn upload_path(id: &str) -> PathBuf {
    debug_assert!(is_upload_id(id));
    [UPLOADS_DIR, id].iter().collect()
}

/// A blob's S3 key: the filesystem layout with `/` separators.
pub fn s3_blob_key(digest: &Digest) -> String {
    format!("{BLOBS_DIR}/{}/{}/{}", digest.algorithm().as_str(), &digest.hex()[..2], digest.hex())
}

/// Where an upload's multipart upload is completed, and where a big blob then stays (its link names this key): not
/// under `uploads/`, which the bucket's lifecycle rule empties.
pub fn s3_upload_data_key(id: &str) -> String {
    format!("{DATA_DIR}/{id}")
}

pub fn s3_upload_tail_key(id: &str, generation: &str) -> String {
    format!("{UPLOADS_DIR}/{id}/tail/{generation}")
}

/// DynamoDB keys. Sort-key prefixes sort BLOB# < MANIFEST# < REFERRER# < TAG#, and each listing asks for one prefix.
pub mod dynamo {
    use crate::oci::{Digest, RepositoryName, Tag};

    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    /// The TTL attribute: DynamoDB deletes abandoned upload sessions after this epoch second.
    pub const EXPIRES_AT: &str = "expires_at";
    pub const CATALOG_PK: &str = "REPOS";
    pub const UPLOAD_SK: &str = "UPLOAD";
    pub const BLOB_PREFIX: &str = "BLOB#";
    pub const MANIFEST_PREFIX: &str = "MANIFEST#";
    pub const REFERRER_PREFIX: &str = "REFERRER#";
    pub const TAG_PREFIX: &str = "TAG#";

    /// Every repository's partition key starts so; [`manifest_of`] reads the name back from it.
    const REPOSITORY_PREFIX: &str = "REPO#";

    pub fn repository_pk(repository: &RepositoryName) -> String {
        format!("{REPOSITORY_PREFIX}{repository}")
    }

    pub fn blob_sk(digest: &Digest) -> String {
        format!("{BLOB_PREFIX}{digest}")
    }

    pub fn manifest_sk(digest: &Digest) -> String {
        format!("{MANIFEST_PREFIX}{digest}")
    }

    /// The repository and digest a manifest item's keys name, or `None` for any other item (what the table's stream
    /// delivers to the scan function).
    pub fn manifest_of(pk: &str, sk: &str) -> Option<(RepositoryName, Digest)> {
        let repository = RepositoryName::parse(pk.strip_prefix(REPOSITORY_PREFIX)?).ok()?;
        let digest = Digest::parse(sk.strip_prefix(MANIFEST_PREFIX)?).ok()?;
        Some((repository, digest))
    }

    pub fn tag_sk(tag: &Tag) -> String {
        format!("{TAG_PREFIX}{tag}")
    }

    /// The prefix of every referrer entry of one subject.
    pub fn referrers_of(subject: &Digest) -> String {
        format!("{REFERRER_PREFIX}{subject}#")
    }

    pub fn referrer_sk(subject: &Digest, digest: &Digest) -> String {
        format!("{}{digest}", referrers_of(subject))
    }

    pub fn upload_pk(id: &str) -> String {
        format!("UPLOAD#{id}")
    }

    pub fn identity_pk(kind: &str) -> String {
        format!("IDENTITY#{kind}")
    }

    /// The registry-wide record of a blob kept at its own key, so that one digest has one key.
    pub fn stored_blob_pk(digest: &Digest) -> String {
        format!("BLOB#{digest}")
    }

    pub const STORED_BLOB_SK: &str = "BLOB";

    /// A shared counter's item (failed logins of one identity or source in one window).
    pub fn counter_pk(counter: &str) -> String {
        format!("COUNTER#{counter}")
    }

    pub const COUNTER_SK: &str = "COUNTER";

    /// The most compressed bytes one item of a document holds, well within DynamoDB's 400 KB per item.
    pub const DOCUMENT_CHUNK_BYTES: usize = 350 * 1024;
    pub const ADVISORY_PK: &str = "ADVISORY";
    /// Package keys (`<ecosystem>\t<name>`, see `crate::scan::package_key`) to the advisories affecting them, so a
    /// scan reads only the records of the packages it found, in batches of 100 keys.
    pub const ADVISORIES_OF_PK: &str = "ADVISORIES-OF";
    pub const SCAN_STATE_PK: &str = "SCAN-STATE";
    pub const SNAPSHOT_SK: &str = "SNAPSHOT";
    pub const INVENTORY_SK: &str = "INVENTORY";
    pub const REPORT_SK: &str = "REPORT";
    pub const REPORTED_PK: &str = "SCANS";
    pub const SCAN_QUEUE_PK: &str = "SCAN-QUEUE";

    pub fn layer_pk(layer: &Digest) -> String {
        format!("LAYER#{layer}")
    }

    pub fn report_pk(manifest: &Digest) -> String {
        format!("SCAN#{manifest}")
    }

    /// `#` appears in no repository name, so the two parts split apart again unambiguously.
    pub fn queued_scan_sk(repository: &RepositoryName, manifest: &Digest) -> String {
        format!("{repository}#{manifest}")
    }

    /// The partition holding parts 1… of the document at (`pk`, `sk`); each part's sort key is its number.
    pub fn chunk_pk(pk: &str, sk: &str) -> String {
        format!("CHUNK#{pk}#{sk}")
    }
}

pub const REPOSITORIES: TableDefinition<&str, ()> = TableDefinition::new("repositories");
pub const BLOB_LINKS: TableDefinition<(&str, &str), u64> = TableDefinition::new("blob_links");
pub const BLOB_KEYS: TableDefinition<&str, &str> = TableDefinition::new("blob_keys");
pub const MANIFESTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("manifests");
pub const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tags");
pub const REFERRERS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("referrers");
pub const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
pub const IDENTITY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("identity");
pub const ADVISORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("advisories");
pub const ADVISORY_PACKAGES: TableDefinition<(&str, &str), ()> = TableDefinition::new("advisory_packages");
pub const SCAN_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_state");
pub const SNAPSHOT_KEY: &str = "snapshot";
pub const INVENTORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("inventories");
pub const SCAN_REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_reports");
pub const SCAN_QUEUE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("scan_queue");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_fan_out_by_algorithm_and_prefix() {
        let sha256 = Digest::parse(&format!("sha256:ab{}", "0".repeat(62))).unwrap();
        assert_eq!(blob_path(&sha256), PathBuf::from(format!("blobs/sha256/ab/ab{}", "0".repeat(62))));
        let sha512 = Digest::parse(&format!("sha512:cd{}", "1".repeat(126))).unwrap();
        assert_eq!(blob_path(&sha512), PathBuf::from(format!("blobs/sha512/cd/cd{}", "1".repeat(126))));
    }

    #[test]
    fn s3_keys() {
        let digest = Digest::parse(&format!("sha256:ab{}", "0".repeat(62))).unwrap();
        assert_eq!(s3_blob_key(&digest), format!("blobs/sha256/ab/ab{}", "0".repeat(62)));
        assert_eq!(s3_upload_data_key("u1"), "data/u1");
        assert_eq!(s3_upload_tail_key("u1", "g2"), "uploads/u1/tail/g2");
    }

    #[test]
    fn dynamo_keys_sort_by_kind() {
        use crate::oci::{RepositoryName, Tag};
        let digest = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        let subject = Digest::parse(&format!("sha256:{}", "2".repeat(64))).unwrap();
        let repository = RepositoryName::parse("team/app").unwrap();
        assert_eq!(dynamo::repository_pk(&repository), "REPO#team/app");
        assert_eq!(dynamo::blob_sk(&digest), format!("BLOB#{digest}"));
        assert_eq!(dynamo::manifest_sk(&digest), format!("MANIFEST#{digest}"));
        assert_eq!(dynamo::manifest_of("REPO#team/app", &format!("MANIFEST#{digest}")), Some((repository.clone(), digest.clone())));
        assert_eq!(dynamo::manifest_of("REPO#team/app", &format!("TAG#{digest}")), None);
        assert_eq!(dynamo::manifest_of(&format!("BLOB#{digest}"), "BLOB"), None);
        assert_eq!(dynamo::tag_sk(&Tag::parse("v1").unwrap()), "TAG#v1");
        assert_eq!(dynamo::referrer_sk(&subject, &digest), format!("REFERRER#{subject}#{digest}"));
        assert!(dynamo::referrer_sk(&subject, &digest).starts_with(&dynamo::referrers_of(&subject)));
        assert_eq!(dynamo::upload_pk("u1"), "UPLOAD#u1");
        assert_eq!(dynamo::identity_pk("principal"), "IDENTITY#principal");
        assert_eq!(dynamo::counter_pk("failed-login/user:sp-1/29500000"), "COUNTER#failed-login/user:sp-1/29500000");
        let digest = Digest::parse(&format!("sha256:ab{}", "0".repeat(62))).unwrap();
        assert_eq!(dynamo::stored_blob_pk(&digest), format!("BLOB#sha256:ab{}", "0".repeat(62)));
        assert_eq!(dynamo::STORED_BLOB_SK, "BLOB");
        assert_eq!(dynamo::layer_pk(&digest), format!("LAYER#{digest}"));
        assert_eq!(dynamo::report_pk(&digest), format!("SCAN#{digest}"));
        assert_eq!(dynamo::queued_scan_sk(&repository, &digest), format!("team/app#{digest}"));
        assert_eq!(dynamo::chunk_pk(&dynamo::report_pk(&digest), dynamo::REPORT_SK), format!("CHUNK#SCAN#{digest}#REPORT"));
        assert!(!dynamo::stored_blob_pk(&digest).starts_with("REPO#"), "a registry-wide item, in no repository's partition");
        // The roles may update only counters and the advisory index (a dynamodb:LeadingKeys condition in the
        // template, which the emulator does not enforce): the condition's patterns must be their keys' prefixes.
        let pattern = format!("\"{}*\"", dynamo::counter_pk(""));
        assert_eq!(crate::store::resources::TEMPLATE.matches(&pattern).count(), 3, "each role's condition names {pattern}");
        // And the advisory index, whose items all share one partition key.
        let pattern = format!("- \"{}\"\n", dynamo::ADVISORIES_OF_PK);
        assert_eq!(crate::store::resources::TEMPLATE.matches(&pattern).count(), 3, "the importing roles' conditions name {pattern}");
        let mut prefixes = [dynamo::TAG_PREFIX, dynamo::REFERRER_PREFIX, dynamo::BLOB_PREFIX, dynamo::MANIFEST_PREFIX];
        prefixes.sort();
        assert_eq!(prefixes, [dynamo::BLOB_PREFIX, dynamo::MANIFEST_PREFIX, dynamo::REFERRER_PREFIX, dynamo::TAG_PREFIX]);
    }

    #[test]
    fn upload_ids_are_canonical_uuids_only() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(upload_path(&id), PathBuf::from(format!("uploads/{id}")));
        for bad in ["", "..", "../x", "a/b", "not-a-uuid", &id.to_uppercase(), &id.replace('-', "")] {
            assert!(!is_upload_id(bad), "{bad} should be refused");
        }
    }
}
