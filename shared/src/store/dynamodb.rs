//! The DynamoDB metadata store: every port's records in one table (keys in [`layout::dynamo`]); changes touching
//! several items commit in one TransactWriteItems, tag moves and session progress with conditional writes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, WriteRequest},
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    BlobIndex, IdentityRecords, LinkedBlob, ManifestIndex, ManifestPage, ManifestRecord, PageRequest, RecordCondition, StoreError,
    TaggedManifest, UploadSession, UploadSessions,
    layout::dynamo::{self as keys, EXPIRES_AT, PK, SK},
    scanning::{AdvisorySnapshot, AdvisoryStore, LayerInventories, QueuedScan, ScanQueue, ScanReport, ScanReports, StoredAdvisory},
};
use crate::oci::{Digest, Reference, RepositoryName, Tag};

/// Manifests up to this size are kept in their manifest and tag items as well as in S3 (a consistent read of a
/// 16 KiB item costs 4 read units); nearly every image manifest and index is a few KiB.
pub const INLINE_MANIFEST_BYTES: usize = 16 * 1024;
/// The attribute holding a manifest's inline bytes.
const CONTENT: &str = "content";
/// The attribute naming the S3 key of a blob that is not at its content address.
const BLOB_KEY: &str = "key";

/// DynamoDB's limits on items per BatchWriteItem and keys per BatchGetItem.
const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_GET_LIMIT: usize = 100;
/// How many single-item writes (the advisory index's ADDs) an import keeps in flight.
const PARALLEL_WRITES: usize = 16;
/// The attribute of an `ADVISORIES-OF` item: the ids of the advisories affecting its package, a string set.
const ADVISORY_IDS: &str = "ids";
/// DynamoDB's limit on items per TransactWriteItems.
const TRANSACTION_LIMIT: usize = 100;
/// How often a delete whose tags moved under it is tried again with fresh tags.
const MAX_ATTEMPTS: u32 = 3;
/// How often a transaction that collided with a concurrent one on an item (TransactionConflict) is tried again, with
/// exponential backoff and jitter from 10 ms: concurrent pushes of one tag collide by design.
const MAX_CONFLICT_ATTEMPTS: u32 = 8;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoMetadata {
    client: Client,
    table: String,
}

fn dynamo_error<E: ProvideErrorMetadata + std::error::Error + 'static>(error: SdkError<E>) -> StoreError {
    match error.code() {
        Some("ConditionalCheckFailedException") => StoreError::Conflict,
        // Still throttled after the SDK's own retries, or a write colliding with a transaction in progress.
        Some(
            "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded" | "TransactionConflictException",
        ) => StoreError::Busy("DynamoDB"),
        _ => StoreError::Backend { service: "DynamoDB", message: DisplayErrorContext(&error).to_string() },
    }
}

/// Why a transaction was cancelled, as far as the caller cares.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// A condition of ours failed: the state the transaction was built from changed.
    Condition,
    /// Another transaction was writing one of its items at the same moment; trying again will do.
    Collision,
}

/// The cancellation reasons' verdict: a failed condition wins over a collision, since retrying the same items cannot
/// pass a condition that failed.
fn cancellation(reasons: &[Option<&str>]) -> Option<Cancellation> {
    if reasons.contains(&Some("ConditionalCheckFailed")) {
        Some(Cancellation::Condition)
    } else if reasons.iter().any(|code| matches!(code, Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))) {
        Some(Cancellation::Collision)
    } else {
        None
    }
}

fn transaction_cancellation(error: &SdkError<TransactWriteItemsError>) -> Option<Cancellation> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            let reasons: Vec<Option<&str>> =
                cancelled.cancellation_reasons.as_deref().unwrap_or_default().iter().map(|reason| reason.code.as_deref()).collect();
            cancellation(&reasons)
        }
        TransactWriteItemsError::TransactionInProgressException(_) => Some(Cancellation::Collision),
        _ => None,
    }
}

/// Exponential backoff from 10 ms with full jitter, the random bits taken from a v4 UUID.
fn backoff(attempt: u32) -> std::time::Duration {
    let ceiling_ms = 10u64 << attempt.min(6);
    std::time::Duration::from_millis((uuid::Uuid::new_v4().as_u128() % u128::from(ceiling_ms)) as u64 + 1)
}

fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([(PK.to_owned(), text(pk)), (SK.to_owned(), text(sk))])
}

fn item(pk: String, sk: String, attributes: impl IntoIterator<Item = (&'static str, AttributeValue)>) -> Item {
    let mut item = key(pk, sk);
    item.extend(attributes.into_iter().map(|(name, value)| (name.to_owned(), value)));
    item
}

fn text_of<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item without text attribute {name}")))
}

fn number_of(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item without number attribute {name}")))
}

fn json_of<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T, StoreError> {
    serde_json::from_str(text_of(item, name)?).map_err(|error| StoreError::Corrupt(format!("{name}: {error}")))
}

fn to_json<T: Serialize>(record: &T) -> AttributeValue {
    text(serde_json::to_string(record).expect("records serialize"))
}

/// A document's gzip-compressed JSON, or its first part.
const DATA: &str = "data";
/// How many parts a document has.
const CHUNKS: &str = "chunks";

fn binary(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

fn binary_of<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], StoreError> {
    item.get(name)
        .and_then(|value| value.as_b().ok())
        .map(Blob::as_ref)
        .ok_or_else(|| StoreError::Corrupt(format!("item without binary attribute {name}")))
}

fn compress(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json)?;
    Ok(encoder.finish()?)
}

fn decompress(compressed: &[u8]) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(compressed).read_to_end(&mut json).map_err(|error| StoreError::Corrupt(format!("document: {error}")))?;
    Ok(json)
}

/// The items of a document at (`pk`, `sk`): its parts past the first, and its head (the first part, with the count).
fn document_items(pk: String, sk: String, json: &[u8]) -> Result<(Vec<Item>, Item), StoreError> {
    let compressed = compress(json)?;
    let parts: Vec<&[u8]> = compressed.chunks(keys::DOCUMENT_CHUNK_BYTES).collect();
    let chunk_pk = keys::chunk_pk(&pk, &sk);
    let rest = parts.iter().enumerate().skip(1).map(|(number, part)| item(chunk_pk.clone(), number.to_string(), [(DATA, binary(part))]));
    // Even an empty input compresses to a gzip header, so there is always a first part.
    let head = item(pk, sk, [(DATA, binary(parts[0])), (CHUNKS, number(parts.len() as u64))]);
    Ok((rest.collect(), head))
}

fn put_request(item: Item) -> WriteRequest {
    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().expect("the item is set")).build()
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialize")
}

/// The part of a sort key after its kind prefix.
fn sk_suffix<'a>(item: &'a Item, prefix: &str) -> Result<&'a str, StoreError> {
    let sk = text_of(item, SK)?;
    sk.strip_prefix(prefix).ok_or_else(|| StoreError::Corrupt(format!("sort key {sk} outside {prefix}")))
}

fn parse_stored<T>(text: &str, parse: impl FnOnce(&str) -> Result<T, crate::error::Error>) -> Result<T, StoreError> {
    parse(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// An upload session's item; DynamoDB's TTL removes it once the session expires.
fn session_item(session: &UploadSession) -> Item {
    item(
        keys::upload_pk(&session.id),
        keys::UPLOAD_SK.to_owned(),
        [("session", to_json(session)), ("size", number(session.size)), (EXPIRES_AT, number(session.expires_at()))],
    )
}

fn put(table: &str, item: Item) -> TransactWriteItem {
    TransactWriteItem::builder().put(Put::builder().table_name(table).set_item(Some(item)).build().expect("table and item are set")).build()
}

/// Deletes a tag only while it still points at `digest`.
fn delete_if_pointing(table: &str, key: Item, digest: &Digest) -> TransactWriteItem {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression("#digest = :digest")
        .expression_attribute_names("#digest", "digest")
        .expression_attribute_values(":digest", text(digest.to_string()))
        .build()
        .expect("table and key are set");
    TransactWriteItem::builder().delete(delete).build()
}

fn delete(table: &str, key: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .delete(Delete::builder().table_name(table).set_key(Some(key)).build().expect("table and key are set"))
        .build()
}

impl DynamoMetadata {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(output.item)
    }

    /// Deletes one item; `true` when it existed.
    async fn delete(&self, pk: String, sk: String) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(output.attributes.is_some())
    }

    /// Items of partition `pk` whose sort key starts with `prefix` (any, when empty), in order, strictly after
    /// `prefix + after`, at most `limit`.
    async fn query(&self, pk: String, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.query_where(pk, prefix, after, limit, None).await
    }

    /// [`Self::query`] of only the items whose text attribute `only.0` is `only.1`. DynamoDB filters after reading,
    /// and a read that kept too few goes on from where it stopped, so the result is short only at the end.
    async fn query_where(
        &self,
        pk: String,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        only: Option<(&str, &str)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut start = after.map(|after| key(pk.clone(), format!("{prefix}{after}")));
        let mut items = Vec::new();
        while items.len() < limit {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", text(pk.clone()));
            // DynamoDB refuses an empty string in a key condition, so "every sort key" has no begins_with.
            let request = if prefix.is_empty() {
                request.key_condition_expression("#pk = :pk")
            } else {
                request
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":prefix", text(prefix))
            };
            let request = match only {
                Some((name, value)) => request
                    .filter_expression("#only = :only")
                    .expression_attribute_names("#only", name)
                    .expression_attribute_values(":only", text(value)),
                None => request,
            };
            let output = request
                .set_exclusive_start_key(start)
                .limit((limit - items.len()).min(1000) as i32)
                .consistent_read(true)
                .send()
                .await
                .map_err(dynamo_error)?;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// Which of `digests` have no item `(repository, sort_key(digest))` (manifests may name one digest twice: the
    /// empty config as config and layer).
    async fn missing(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        sort_key: fn(&Digest) -> String,
    ) -> Result<Vec<Digest>, StoreError> {
        let pk = keys::repository_pk(repository);
        let wanted = digests.iter().map(|digest| key(pk.clone(), sort_key(digest))).collect();
        let mut found = HashSet::new();
        for item in self.batch_get(wanted, &[SK]).await? {
            found.insert(text_of(&item, SK)?.to_owned());
        }
        Ok(digests.iter().filter(|digest| !found.contains(&sort_key(digest))).cloned().collect())
    }

    /// The items of `wanted` (keys) that exist, with only the attributes `projection` names: BatchGetItem, 100
    /// distinct keys a call (it refuses a key twice), asking again for the keys DynamoDB leaves for later under load.
    async fn batch_get(&self, mut wanted: Vec<Item>, projection: &[&str]) -> Result<Vec<Item>, StoreError> {
        wanted.sort_by(|a, b| (text_of(a, PK).ok(), text_of(a, SK).ok()).cmp(&(text_of(b, PK).ok(), text_of(b, SK).ok())));
        wanted.dedup();
        let names: Vec<String> = (0..projection.len()).map(|position| format!("#a{position}")).collect();
        let mut found = Vec::new();
        for batch in wanted.chunks(BATCH_GET_LIMIT) {
            let mut request = KeysAndAttributes::builder().set_keys(Some(batch.to_vec())).consistent_read(true);
            if !projection.is_empty() {
                request = request.projection_expression(names.join(", "));
                for (name, attribute) in names.iter().zip(projection) {
                    request = request.expression_attribute_names(name, *attribute);
                }
            }
            let mut request = Some(request.build().expect("keys are set"));
            while let Some(keys_and_attributes) = request {
                let output =
                    self.client.batch_get_item().request_items(&self.table, keys_and_attributes).send().await.map_err(dynamo_error)?;
                found.extend(output.responses.and_then(|mut responses| responses.remove(&self.table)).unwrap_or_default());
                request = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .filter(|left| !left.keys.is_empty());
            }
        }
        Ok(found)
    }

    /// Commits `items` in one transaction, trying again while it collides with concurrent ones; a failed condition is
    /// [`StoreError::Conflict`], collisions past the last attempt [`StoreError::Busy`].
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            let error = match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            match transaction_cancellation(&error) {
                Some(Cancellation::Condition) => return Err(StoreError::Conflict),
                Some(Cancellation::Collision) if attempt + 1 < MAX_CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Some(Cancellation::Collision) => return Err(StoreError::Busy("DynamoDB")),
                None => return Err(dynamo_error(error)),
            }
        }
    }

    /// Sends `requests` in batches of [`BATCH_WRITE_LIMIT`], resending what DynamoDB leaves for later under load.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for batch in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut batch = batch.to_vec();
            while !batch.is_empty() {
                let output = self.client.batch_write_item().request_items(&self.table, batch).send().await.map_err(dynamo_error)?;
                batch = output.unprocessed_items.and_then(|mut unprocessed| unprocessed.remove(&self.table)).unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Stores `json` as a document at (`pk`, `sk`) (see [`keys::DOCUMENT_CHUNK_BYTES`]): the parts past the first go
    /// first, so the head never counts a part that is not there.
    async fn put_document(&self, pk: String, sk: String, json: &[u8]) -> Result<(), StoreError> {
        let (parts, head) = document_items(pk, sk, json)?;
        for part in parts {
            self.put_item(part).await?;
        }
        self.put_item(head).await
    }

    /// The JSON of the document whose head item is `head`, its other parts read from their own items.
    async fn document_json(&self, head: &Item) -> Result<Vec<u8>, StoreError> {
        let mut compressed = binary_of(head, DATA)?.to_vec();
        let chunk_pk = keys::chunk_pk(text_of(head, PK)?, text_of(head, SK)?);
        for number in 1..number_of(head, CHUNKS)? {
            let part = self
                .get(chunk_pk.clone(), number.to_string())
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("{chunk_pk}: part {number} is missing")))?;
            compressed.extend_from_slice(binary_of(&part, DATA)?);
        }
        decompress(&compressed)
    }

    /// The document at (`pk`, `sk`), decoded.
    async fn document<T: DeserializeOwned>(&self, pk: String, sk: String) -> Result<Option<T>, StoreError> {
        let Some(head) = self.get(pk, sk).await? else { return Ok(None) };
        let json = self.document_json(&head).await?;
        serde_json::from_slice(&json).map(Some).map_err(|error| StoreError::Corrupt(format!("document: {error}")))
    }

    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(dynamo_error)?;
        Ok(())
    }

    /// Lists the repository in the catalog. A plain, idempotent write outside every transaction: the catalog item is
    /// shared by every push to the repository, and in transactions it would make them collide. Written before the
    /// items it lists, so a crash between leaves a listed repository with less in it, never hidden items.
    async fn list_in_catalog(&self, repository: &RepositoryName) -> Result<(), StoreError> {
        self.put_item(key(keys::CATALOG_PK.to_owned(), repository.to_string())).await
    }
}

/// Identity records: one item each under `IDENTITY#<kind>`, the JSON in `record` as a string so a condition can
/// compare it byte for byte.
#[async_trait]
impl IdentityRecords for DynamoMetadata {
    async fn record(&self, kind: &'static str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let item = self.get(keys::identity_pk(kind), key.to_owned()).await?;
        item.map(|item| text_of(&item, "record").map(|record| record.as_bytes().to_vec())).transpose()
    }

    async fn put_record(&self, kind: &'static str, key: &str, value: Vec<u8>, condition: RecordCondition) -> Result<(), StoreError> {
        let record = String::from_utf8(value).map_err(|_| StoreError::Corrupt("identity record is not UTF-8".to_owned()))?;
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item(
            keys::identity_pk(kind),
            key.to_owned(),
            [("record", text(record))],
        )));
        let request = match condition {
            RecordCondition::None => request,
            RecordCondition::Absent => request.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK),
            RecordCondition::Equals(old) => request
                .condition_expression("#record = :old")
                .expression_attribute_names("#record", "record")
                .expression_attribute_values(":old", text(String::from_utf8_lossy(&old).into_owned())),
        };
        request.send().await.map_err(dynamo_error)?;
        Ok(())
    }

    async fn delete_record(&self, kind: &'static str, key: &str) -> Result<bool, StoreError> {
        self.delete(keys::identity_pk(kind), key.to_owned()).await
    }

    async fn records(&self, kind: &'static str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let items = self.query(keys::identity_pk(kind), "", None, usize::MAX).await?;
        items.iter().map(|item| Ok((text_of(item, SK)?.to_owned(), text_of(item, "record")?.as_bytes().to_vec()))).collect()
    }

    async fn increment_counter(&self, counter: &str, expires_at: u64) -> Result<u64, StoreError> {
        // ADD is atomic in DynamoDB: concurrent increments from any number of functions all count.
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::counter_pk(counter), keys::COUNTER_SK.to_owned())))
            .update_expression("ADD #count :one SET #expires = :expires")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":expires", number(expires_at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(dynamo_error)?;
        number_of(&updated.attributes.unwrap_or_default(), "count")
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        match self.get(keys::counter_pk(key), keys::COUNTER_SK.to_owned()).await? {
            Some(item) => number_of(&item, "count"),
            None => Ok(0),
        }
    }
}

#[async_trait]
impl UploadSessions for DynamoMetadata {
    async fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.put_item(session_item(session)).await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError> {
        self.get(keys::upload_pk(id), keys::UPLOAD_SK.to_owned()).await?.map(|item| json_of(&item, "session")).transpose()
    }

    async fn save_upload(&self, session: &UploadSession, previous_size: u64) -> Result<(), StoreError> {
        let item = session_item(session);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#size = :previous")
            .expression_attribute_names("#size", "size")
            .expression_attribute_values(":previous", number(previous_size))
            .send()
            .await
            .map_err(dynamo_error)?;
        Ok(())
    }

    async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        self.delete(keys::upload_pk(id), keys::UPLOAD_SK.to_owned()).await.map(drop)
    }
}

#[async_trait]
impl BlobIndex for DynamoMetadata {
    async fn linked_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<LinkedBlob>, StoreError> {
        let Some(link) = self.get(keys::repository_pk(repository), keys::blob_sk(digest)).await? else {
            return Ok(None);
        };
        let key = link.get(BLOB_KEY).map(|_| text_of(&link, BLOB_KEY).map(str::to_owned)).transpose()?;
        Ok(Some(LinkedBlob { size: number_of(&link, "size")?, key }))
    }

    async fn missing_blobs(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
        self.missing(repository, digests, keys::blob_sk).await
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        blob_key: Option<&str>,
        finished_upload: Option<&str>,
    ) -> Result<(), StoreError> {
        self.list_in_catalog(repository).await?;
        let key_attribute = blob_key.map(|blob_key| (BLOB_KEY, text(blob_key)));
        let link =
            item(keys::repository_pk(repository), keys::blob_sk(digest), [("size", number(size))].into_iter().chain(key_attribute.clone()));
        if blob_key.is_none() && finished_upload.is_none() {
            return self.put_item(link).await;
        }
        let mut items = vec![put(&self.table, link)];
        if let Some(blob_key) = blob_key {
            // One key per digest in the whole registry: the first upload to record its key wins, a racing one links that.
            let record = item(
                keys::stored_blob_pk(digest),
                keys::STORED_BLOB_SK.to_owned(),
                [("size", number(size))].into_iter().chain(key_attribute),
            );
            let unless_recorded = TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(record))
                        .condition_expression("attribute_not_exists(#pk) OR #key = :key")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_names("#key", BLOB_KEY)
                        .expression_attribute_values(":key", text(blob_key))
                        .build()
                        .expect("table and item are set"),
                )
                .build();
            items.push(unless_recorded);
        }
        if let Some(id) = finished_upload {
            items.push(delete(&self.table, key(keys::upload_pk(id), keys::UPLOAD_SK.to_owned())));
        }
        match (self.transact(items).await, blob_key) {
            (Err(StoreError::Conflict), Some(_)) => {
                let recorded =
                    self.get(keys::stored_blob_pk(digest), keys::STORED_BLOB_SK.to_owned()).await?.ok_or(StoreError::Conflict)?;
                Err(StoreError::StoredAt(text_of(&recorded, BLOB_KEY)?.to_owned()))
            }
            (written, _) => written,
        }
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError> {
        self.delete(keys::repository_pk(repository), keys::blob_sk(digest)).await
    }
}

#[async_trait]
impl ManifestIndex for DynamoMetadata {
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        content: &[u8],
    ) -> Result<(), StoreError> {
        self.list_in_catalog(repository).await?;
        let pk = keys::repository_pk(repository);
        // Small manifests (nearly all) ride in their manifest and tag items, so a pull by tag or digest is one read.
        let inline = (content.len() <= INLINE_MANIFEST_BYTES).then(|| (CONTENT, AttributeValue::B(Blob::new(content))));
        let mut items = vec![put(
            &self.table,
            item(pk.clone(), keys::manifest_sk(&record.digest), [("record", to_json(record))].into_iter().chain(inline.clone())),
        )];
        if let Some(tag) = tag {
            let attributes = [("digest", text(record.digest.to_string())), ("record", to_json(record))].into_iter().chain(inline);
            items.push(put(&self.table, item(pk.clone(), keys::tag_sk(tag), attributes)));
        }
        if let Some(subject) = &record.subject {
            // The referrer entry carries the record and its artifact type, so a page of referrers, filtered or not, is
            // one Query.
            let artifact_type = record.artifact_type.as_ref().map(|artifact_type| ("artifact_type", text(artifact_type)));
            let attributes = [("record", to_json(record))].into_iter().chain(artifact_type);
            items.push(put(&self.table, item(pk, keys::referrer_sk(subject, &record.digest), attributes)));
        }
        self.transact(items).await
    }

    async fn manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        self.get(keys::repository_pk(repository), keys::manifest_sk(digest)).await?.map(|item| json_of(&item, "record")).transpose()
    }

    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>, StoreError> {
        // The tag item carries its manifest's record, so a pull by tag starts with one read.
        self.get(keys::repository_pk(repository), keys::tag_sk(tag)).await?.map(|item| json_of(&item, "record")).transpose()
    }

    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<(ManifestRecord, Option<Bytes>)>, StoreError> {
        let sk = match reference {
            Reference::Digest(digest) => keys::manifest_sk(digest),
            Reference::Tag(tag) => keys::tag_sk(tag),
        };
        let Some(item) = self.get(keys::repository_pk(repository), sk).await? else {
            return Ok(None);
        };
        let content = match item.get(CONTENT) {
            Some(AttributeValue::B(blob)) => Some(Bytes::copy_from_slice(blob.as_ref())),
            _ => None,
        };
        Ok(Some((json_of(&item, "record")?, content)))
    }

    async fn missing_manifests(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
        self.missing(repository, digests, keys::manifest_sk).await
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError> {
        let pk = keys::repository_pk(repository);
        // A tag found pointing here may move before the transaction commits; its delete is conditional on still
        // pointing here, and a lost race is tried again with fresh tags.
        let mut attempts = 0;
        loop {
            let Some(found) = self.get(pk.clone(), keys::manifest_sk(digest)).await? else {
                return Ok(false);
            };
            let record: ManifestRecord = json_of(&found, "record")?;
            let mut items = vec![delete(&self.table, key(pk.clone(), keys::manifest_sk(digest)))];
            if let Some(subject) = &record.subject {
                items.push(delete(&self.table, key(pk.clone(), keys::referrer_sk(subject, digest))));
            }
            let mut tags = Vec::new();
            for tag in self.query(pk.clone(), keys::TAG_PREFIX, None, usize::MAX).await? {
                if text_of(&tag, "digest")? == digest.to_string() {
                    tags.push(delete_if_pointing(&self.table, key(pk.clone(), text_of(&tag, SK)?.to_owned()), digest));
                }
            }
            // More tags than one transaction takes go first, in transactions of their own; the manifest goes last,
            // so a failure midway leaves it with fewer tags, never tags without their manifest.
            let last_batch = tags.split_off(tags.len().saturating_sub(TRANSACTION_LIMIT - items.len()));
            items.extend(last_batch);
            let mut committed = Ok(());
            for batch in tags.chunks(TRANSACTION_LIMIT).map(<[_]>::to_vec).chain([items]) {
                committed = self.transact(batch).await;
                if committed.is_err() {
                    break;
                }
            }
            attempts += 1;
            match committed {
                Err(StoreError::Conflict) if attempts < MAX_ATTEMPTS => continue,
                Err(StoreError::Conflict) => return Err(StoreError::Busy("DynamoDB")),
                result => return result.map(|()| true),
            }
        }
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool, StoreError> {
        self.delete(keys::repository_pk(repository), keys::tag_sk(tag)).await
    }

    async fn list_tags(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<Tag>, StoreError> {
        let items = self.query(keys::repository_pk(repository), keys::TAG_PREFIX, page.after.as_deref(), page.limit).await?;
        items.iter().map(|item| parse_stored(sk_suffix(item, keys::TAG_PREFIX)?, Tag::parse)).collect()
    }

    async fn list_manifests(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<TaggedManifest>, StoreError> {
        let pk = keys::repository_pk(repository);
        let manifests = self.query(pk.clone(), keys::MANIFEST_PREFIX, page.after.as_deref(), page.limit).await?;
        let mut listed = ManifestPage::new(manifests.iter().map(|item| json_of(item, "record")).collect::<Result<_, _>>()?);
        if !listed.is_empty() {
            for item in self.query(pk, keys::TAG_PREFIX, None, usize::MAX).await? {
                listed.offer(text_of(&item, "digest")?, parse_stored(sk_suffix(&item, keys::TAG_PREFIX)?, Tag::parse)?);
            }
        }
        Ok(listed.into_listing())
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ManifestRecord>, StoreError> {
        let only = artifact_type.map(|wanted| ("artifact_type", wanted));
        let entries = self
            .query_where(keys::repository_pk(repository), &keys::referrers_of(subject), page.after.as_deref(), page.limit, only)
            .await?;
        entries.iter().map(|entry| json_of(entry, "record")).collect()
    }

    async fn catalog(&self, page: &PageRequest) -> Result<Vec<RepositoryName>, StoreError> {
        let items = self.query(keys::CATALOG_PK.to_owned(), "", page.after.as_deref(), page.limit).await?;
        items.iter().map(|item| parse_stored(text_of(item, SK)?, RepositoryName::parse)).collect()
    }

    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool, StoreError> {
        Ok(self.get(keys::CATALOG_PK.to_owned(), repository.to_string()).await?.is_some())
    }

    async fn delete_repository(&self, repository: &RepositoryName) -> Result<bool, StoreError> {
        if !self.repository_exists(repository).await? {
            return Ok(false);
        }
        let pk = keys::repository_pk(repository);
        let items = self.query(pk.clone(), "", None, usize::MAX).await?;
        let requests = items
            .iter()
            .map(|item| {
                let sk = text_of(item, SK)?.to_owned();
                Ok(WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(key(pk.clone(), sk))).build().expect("key is set"))
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await?;
        // The catalog entry goes last: a crash midway leaves a listed repository with less in it, never hidden items.
        self.delete(keys::CATALOG_PK.to_owned(), repository.to_string()).await?;
        Ok(true)
    }
}

/// Advisories: one document each under `ADVISORY`, written in batches (every part past the first, then the heads),
/// and under `ADVISORIES-OF` the ids affecting each package, which a scan reads for its packages alone; an import
/// writes the snapshot last.
#[async_trait]
impl AdvisoryStore for DynamoMetadata {
    async fn put_advisories(&self, advisories: &[StoredAdvisory]) -> Result<(), StoreError> {
        let (mut parts, mut heads) = (Vec::new(), Vec::new());
        let mut affecting: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for advisory in advisories {
            let (rest, head) = document_items(keys::ADVISORY_PK.to_owned(), advisory.id.clone(), &advisory.json)?;
            parts.extend(rest.into_iter().map(put_request));
            heads.push(put_request(head));
            for package in &advisory.packages {
                affecting.entry(package.clone()).or_default().insert(advisory.id.clone());
            }
        }
        self.batch_write(parts).await?;
        self.batch_write(heads).await?;
        // Then each package's set of ids grows, with ADD: atomic, so concurrent imports both count. The records go
        // first, so a package never names an advisory that is not stored.
        futures_util::stream::iter(affecting)
            .map(|(package, ids)| async move {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(keys::ADVISORIES_OF_PK.to_owned(), package)))
                    .update_expression("ADD #ids :ids")
                    .expression_attribute_names("#ids", ADVISORY_IDS)
                    .expression_attribute_values(":ids", AttributeValue::Ss(ids.into_iter().collect()))
                    .send()
                    .await
                    .map_err(dynamo_error)
            })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn put_advisory_snapshot(&self, snapshot: &AdvisorySnapshot) -> Result<(), StoreError> {
        self.put_item(item(keys::SCAN_STATE_PK.to_owned(), keys::SNAPSHOT_SK.to_owned(), [("snapshot", to_json(snapshot))])).await
    }

    async fn advisory(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(keys::ADVISORY_PK.to_owned(), id.to_owned()).await? {
            Some(head) => self.document_json(&head).await.map(Some),
            None => Ok(None),
        }
    }

    async fn advisories_of(&self, packages: &[String]) -> Result<Vec<Vec<u8>>, StoreError> {
        let wanted = packages.iter().map(|package| key(keys::ADVISORIES_OF_PK.to_owned(), package.clone())).collect();
        let mut ids = BTreeSet::new();
        for item in self.batch_get(wanted, &[ADVISORY_IDS]).await? {
            if let Some(AttributeValue::Ss(affecting)) = item.get(ADVISORY_IDS) {
                ids.extend(affecting.iter().cloned());
            }
        }
        let heads = ids.into_iter().map(|id| key(keys::ADVISORY_PK.to_owned(), id)).collect();
        let mut advisories = Vec::new();
        for head in self.batch_get(heads, &[]).await? {
            advisories.push(self.document_json(&head).await?);
        }
        Ok(advisories)
    }

    async fn advisory_snapshot(&self) -> Result<Option<AdvisorySnapshot>, StoreError> {
        let item = self.get(keys::SCAN_STATE_PK.to_owned(), keys::SNAPSHOT_SK.to_owned()).await?;
        item.map(|item| json_of(&item, "snapshot")).transpose()
    }
}

#[async_trait]
impl LayerInventories for DynamoMetadata {
    async fn layer_inventory(&self, layer: &Digest) -> Result<Option<scanner::inventory::LayerInventory>, StoreError> {
        self.document(keys::layer_pk(layer), keys::INVENTORY_SK.to_owned()).await
    }

    async fn put_layer_inventory(&self, layer: &Digest, inventory: &scanner::inventory::LayerInventory) -> Result<(), StoreError> {
        self.put_document(keys::layer_pk(layer), keys::INVENTORY_SK.to_owned(), &encode(inventory)).await
    }
}

/// Reports: a document per manifest, listed under `SCANS` once stored, for re-evaluation to find them all.
#[async_trait]
impl ScanReports for DynamoMetadata {
    async fn scan_report(&self, manifest: &Digest) -> Result<Option<ScanReport>, StoreError> {
        self.document(keys::report_pk(manifest), keys::REPORT_SK.to_owned()).await
    }

    async fn put_scan_report(&self, report: &ScanReport) -> Result<(), StoreError> {
        self.put_document(keys::report_pk(&report.manifest), keys::REPORT_SK.to_owned(), &encode(report)).await?;
        self.put_item(key(keys::REPORTED_PK.to_owned(), report.manifest.to_string())).await
    }

    async fn reported_manifests(&self, page: &PageRequest) -> Result<Vec<Digest>, StoreError> {
        let items = self.query(keys::REPORTED_PK.to_owned(), "", page.after.as_deref(), page.limit).await?;
        items.iter().map(|item| parse_stored(text_of(item, SK)?, Digest::parse)).collect()
    }
}

#[async_trait]
impl ScanQueue for DynamoMetadata {
    async fn enqueue_scan(&self, scan: &QueuedScan) -> Result<(), StoreError> {
        let sk = keys::queued_scan_sk(&scan.repository, &scan.manifest);
        self.put_item(item(keys::SCAN_QUEUE_PK.to_owned(), sk, [("scan", to_json(scan))])).await
    }

    async fn queued_scans(&self, limit: usize) -> Result<Vec<QueuedScan>, StoreError> {
        let items = self.query(keys::SCAN_QUEUE_PK.to_owned(), "", None, limit).await?;
        items.iter().map(|item| json_of(item, "scan")).collect()
    }

    async fn finish_scan(&self, repository: &RepositoryName, manifest: &Digest) -> Result<(), StoreError> {
        self.delete(keys::SCAN_QUEUE_PK.to_owned(), keys::queued_scan_sk(repository, manifest)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emulator never collides two transactions, so the verdicts on DynamoDB's documented reasons are checked here.
    #[test]
    fn cancellations_tell_failed_conditions_from_collisions() {
        assert_eq!(cancellation(&[Some("None"), Some("ConditionalCheckFailed")]), Some(Cancellation::Condition));
        assert_eq!(cancellation(&[Some("TransactionConflict"), Some("None")]), Some(Cancellation::Collision));
        assert_eq!(cancellation(&[Some("TransactionConflict"), Some("ConditionalCheckFailed")]), Some(Cancellation::Condition));
        assert_eq!(cancellation(&[Some("ThrottlingError")]), Some(Cancellation::Collision));
        assert_eq!(cancellation(&[Some("ValidationError")]), None);
        assert_eq!(cancellation(&[]), None);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let wait = backoff(attempt);
            assert!(wait >= std::time::Duration::from_millis(1) && wait <= std::time::Duration::from_millis(641), "{wait:?}");
        }
    }
}
