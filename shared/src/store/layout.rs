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
//! manifests     (<repo>, <digest>)                  -> ManifestRecord (JSON)
//! tags          (<repo>, <tag>)                     -> <digest>
//! referrers     (<repo>, <subject>, <digest>)       -> ()            manifests whose `subject` is <subject>
//! uploads       <session-id>                        -> UploadSession (JSON)
//! ```

use std::path::PathBuf;

use redb::TableDefinition;

use crate::oci::Digest;

pub const BLOBS_DIR: &str = "blobs";
pub const UPLOADS_DIR: &str = "uploads";
pub const TMP_DIR: &str = "tmp";
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

/// Session ids are UUIDs; anything else (a `..`, a slash) is refused before it can reach a path.
pub fn is_upload_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|parsed| parsed.hyphenated().to_string() == id)
}

pub const REPOSITORIES: TableDefinition<&str, ()> = TableDefinition::new("repositories");
pub const BLOB_LINKS: TableDefinition<(&str, &str), u64> = TableDefinition::new("blob_links");
pub const MANIFESTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("manifests");
pub const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tags");
pub const REFERRERS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("referrers");
pub const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");

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
    fn upload_ids_are_canonical_uuids_only() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(upload_path(&id), PathBuf::from(format!("uploads/{id}")));
        for bad in ["", "..", "../x", "a/b", "not-a-uuid", &id.to_uppercase(), &id.replace('-', "")] {
            assert!(!is_upload_id(bad), "{bad} should be refused");
        }
    }
}
