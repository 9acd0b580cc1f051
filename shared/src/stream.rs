//! The table's DynamoDB stream as Lambda delivers it to the scan function: which records are manifest pushes, and the
//! partial-batch answer that makes Lambda retry only from the first record that failed.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;

use crate::oci::{Digest, RepositoryName};
use crate::store::layout::dynamo;

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
pub async fn scan_pushed<F, Fut, E>(event: &Event, mut scan: F) -> DynamoDbEventResponse
where
    F: FnMut(PushedManifest) -> Fut,
    Fut: Future<Output = Result<(), E>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ManifestIndex, ManifestRecord};

    /// The stream records the emulator produced for the table `table`, wrapped as Lambda wraps them, read with
    /// boto3 (the emulator's own Python, `BERTH_TEST_PYTHON`) from the DynamoDB Streams API.
    fn lambda_event_from_stream(table: &str) -> Event {
        let python = std::env::var("BERTH_TEST_PYTHON").expect("BERTH_TEST_PYTHON: run the tests with tests/run");
        let endpoint = std::env::var("BERTH_TEST_AWS_ENDPOINT").expect("BERTH_TEST_AWS_ENDPOINT: run the tests with tests/run");
        let script = r#"
import base64, boto3, json, sys
endpoint, table = sys.argv[1], sys.argv[2]
options = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
arn = boto3.client("dynamodb", **options).describe_table(TableName=table)["Table"]["LatestStreamArn"]
streams = boto3.client("dynamodbstreams", **options)
records = []
for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records += streams.get_records(ShardIterator=iterator)["Records"]
for record in records:
    record["eventSourceARN"] = arn
# As Lambda's JSON has them: binary attributes in base64, times in epoch seconds.
def lambda_json(value):
    return base64.b64encode(value).decode() if isinstance(value, (bytes, bytearray)) else value.timestamp()
print(json.dumps({"Records": records}, default=lambda_json))
"#;
        let out = std::process::Command::new(python).args(["-c", script, &endpoint, table]).output().expect("run python");
        assert!(out.status.success(), "reading the stream: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&out.stdout)))
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
        let settings = crate::testing::fresh_aws_resources().await;
        let (s3, dynamodb) = crate::store::aws::clients_from(&crate::testing::emulator_config());
        let (_, metadata) = crate::store::aws::stores(s3, dynamodb, &settings);
        let repository = RepositoryName::parse("scan/app").unwrap();
        let (first, second) = (record("first"), record("second"));
        let tag = crate::oci::Tag::parse("v1").unwrap();
        metadata.put_manifest(&repository, &first, Some(&tag), b"first").await.unwrap();
        metadata.put_manifest(&repository, &second, None, b"second").await.unwrap();

        let event = lambda_event_from_stream(&settings.table);
        assert!(event.records.len() > 2, "the stream carries every write: {} records", event.records.len());
        let pushed = pushed_manifests(&event);
        let digests: Vec<&Digest> = pushed.iter().map(|pushed| &pushed.digest).collect();
        assert_eq!(digests, [&first.digest, &second.digest]);
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
