//! The table's DynamoDB stream as Lambda delivers it to the scan function: which records are manifest pushes, their
//! scans, and the partial-batch answer that makes Lambda retry only from the first record that failed.

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

pub use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;

use crate::oci::{Digest, RepositoryName};
use crate::scan::Scans;
use crate::store::layout::dynamo;
use crate::telemetry;

/// A manifest written to the table, as one stream record tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub repository: RepositoryName,
    pub digest: Digest,
    /// The record's sequence number: what a partial-batch failure names.
    pub sequence_number: String,
}

/// The manifest pushes among `event`'s records, in stream order: items newly written under a `MANIFEST#` key (a
/// modified manifest item is the same manifest again). Every other record is none of the scan function's business.
pub fn pushed_manifests(event: &Event) -> Vec<PushedManifest> {
    event.records.iter().filter(|record| record.event_name == "INSERT").filter_map(pushed_manifest).collect()
}

fn pushed_manifest(record: &EventRecord) -> Option<PushedManifest> {
    let key = |name| match record.change.keys.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    let (repository, digest) = dynamo::manifest_of(key(dynamo::PK)?, key(dynamo::SK)?)?;
    Some(PushedManifest { repository, digest, sequence_number: record.change.sequence_number.clone()? })
}

/// Runs `scan` on every manifest push of `event`, in order, and stops at the first that fails: Lambda then retries
/// the batch from that record on (later ones were not tried, so they must come again), and after its retries sends
/// it to the dead-letter queue.
pub async fn scan_pushed<F, Fut, T, E>(event: &Event, mut scan: F) -> DynamoDbEventResponse
where
    F: FnMut(PushedManifest) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut response = DynamoDbEventResponse::default();
    for pushed in pushed_manifests(event) {
        let sequence_number = pushed.sequence_number.clone();
        let (repository, digest) = (pushed.repository.clone(), pushed.digest.clone());
        if let Err(error) = scan(pushed).await {
            tracing::warn!(%repository, %digest, %error, "scan failed; Lambda retries from this record");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

/// The scan function's work on one batch: every manifest push in it scanned and its report stored, logged as one
/// line with the backend calls made, as a request is.
pub async fn scan_batch(scans: &Scans, event: &Event) -> DynamoDbEventResponse {
    let started = Instant::now();
    let (response, calls) = telemetry::count_backend_calls(scan_pushed(event, |pushed| async move {
        scans.scan_and_store(&pushed.repository, &pushed.digest).await
    }))
    .await;
    #[cfg(feature = "test-support")]
    telemetry::signed::add(crate::http::routes::Function::Scan, calls.signed);
    let calls = calls.sent;
    let backend_calls: u32 = calls.values().sum();
    let (records, failed) = (event.records.len(), response.batch_item_failures.len());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(records, failed, elapsed_ms, backend_calls, ?calls, "stream batch scanned");
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ManifestIndex, ManifestRecord};

    /// The event filter of the scan function's stream source in the SAM template.
    fn template_filter() -> serde_json::Value {
        let template: serde_norway::Value = serde_norway::from_str(crate::store::resources::TEMPLATE).unwrap();
        let source = &template["Resources"]["ScanFunction"]["Properties"]["Events"]["ManifestPushes"]["Properties"];
        let filters = source["FilterCriteria"]["Filters"].as_sequence().expect("the stream source filters");
        assert_eq!(filters.len(), 1);
        serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap()
    }

    /// Whether `record` matches the Lambda event filter `pattern`, for the parts of the syntax the template uses:
    /// nested fields, lists of alternatives, exact strings and `{"prefix": …}`.
    fn matches(pattern: &serde_json::Value, record: &serde_json::Value) -> bool {
        use serde_json::Value;
        match pattern {
            Value::Object(fields) => fields.iter().all(|(name, pattern)| record.get(name).is_some_and(|value| matches(pattern, value))),
            Value::Array(alternatives) => alternatives.iter().any(|alternative| match alternative {
                Value::String(exact) => record.as_str() == Some(exact),
                Value::Object(rule) => match (rule.get("prefix").and_then(Value::as_str), record.as_str()) {
                    (Some(prefix), Some(value)) => rule.len() == 1 && value.starts_with(prefix),
                    _ => panic!("a filter rule this test does not read: {alternative}"),
                },
                other => panic!("a filter rule this test does not read: {other}"),
            }),
            other => panic!("a filter pattern this test does not read: {other}"),
        }
    }

    fn record(seed: &str) -> ManifestRecord {
        ManifestRecord {
            digest: Digest::of(crate::oci::Algorithm::Sha256, seed.as_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: seed.len() as u64,
            artifact_type: None,
            subject: None,
            annotations: None,
            annotations_not_indexed: false,
            pushed_at: 0,
        }
    }

    /// Two manifests pushed (one tagged, so the stream also carries tag, catalog and blob-free items) come out of the
    /// emulator's real stream as exactly two pushes, in order; the scan of the second failing names its record, and
    /// only it, for Lambda to retry from.
    #[tokio::test]
    async fn manifest_pushes_come_from_the_tables_stream() {
        let settings = crate::testing::fresh_aws_resources_with(crate::store::resources::TableStream::FromTemplate).await;
        let (s3, dynamodb) = crate::store::aws::clients_from(&crate::testing::emulator_config());
        let (_, metadata) = crate::store::aws::stores(s3, dynamodb, &settings);
        let repository = RepositoryName::parse("scan/app").unwrap();
        let (first, second) = (record("first"), record("second"));
        let tag = crate::oci::Tag::parse("v1").unwrap();
        metadata.put_manifest(&repository, &first, Some(&tag), b"first").await.unwrap();
        metadata.put_manifest(&repository, &second, None, b"second").await.unwrap();

        let event = crate::testing::stream_event(&settings.table);
        assert!(event.records.len() > 2, "the stream carries every write: {} records", event.records.len());
        let pushed = pushed_manifests(&event);
        let digests: Vec<&Digest> = pushed.iter().map(|pushed| &pushed.digest).collect();
        assert_eq!(digests, [&first.digest, &second.digest]);
        let filter = template_filter();
        let passed: Vec<String> = event
            .records
            .iter()
            .filter(|record| matches(&filter, &serde_json::to_value(record).unwrap()))
            .filter_map(|record| record.change.sequence_number.clone())
            .collect();
        let sequence_numbers: Vec<String> = pushed.iter().map(|pushed| pushed.sequence_number.clone()).collect();
        assert_eq!(passed, sequence_numbers, "the template's filter lets through exactly the manifest pushes");
        assert!(pushed.iter().all(|pushed| pushed.repository == repository));

        let mut scanned = Vec::new();
        let response = scan_pushed(&event, |pushed| {
            scanned.push(pushed.digest.clone());
            let failed = pushed.digest == second.digest;
            async move { if failed { Err("layer unreadable") } else { Ok(()) } }
        })
        .await;
        assert_eq!(scanned, [first.digest.clone(), second.digest.clone()]);
        let failed: Vec<Option<String>> = response.batch_item_failures.iter().map(|failure| failure.item_identifier.clone()).collect();
        assert_eq!(failed, [Some(pushed[1].sequence_number.clone())]);
        let answer = serde_json::to_value(&response).unwrap();
        assert_eq!(answer, serde_json::json!({"batchItemFailures": [{"itemIdentifier": pushed[1].sequence_number}]}));
    }
}
