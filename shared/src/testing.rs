//! Test support shared by every test tier: an AWS environment on the emulator with a fresh bucket and table per test.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;

use crate::store::{
    aws::{self, AwsSettings},
    dynamodb::DynamoMetadata,
    resources,
    s3::{S3BlobStore, S3Limits},
};

/// Where the emulator listens; `tests/run` starts the moto server and sets it (LocalStack works the same way).
pub const ENDPOINT_VARIABLE: &str = "BERTH_TEST_AWS_ENDPOINT";

/// S3's limits lowered as far as S3 (and so the emulator) allows: 5 MiB parts, and copies above 6 MiB done in parts,
/// so a few MiB of test data exercise the paths real layers take above 5 GiB.
pub const TEST_LIMITS: S3Limits = S3Limits { part_size: 5 << 20, max_single_copy: 6 << 20, copy_part_size: 5 << 20, max_parts: 10_000 };

/// The SDK configuration for the emulator, with its fixed test credentials.
pub fn emulator_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(ENDPOINT_VARIABLE)
        .unwrap_or_else(|_| panic!("{ENDPOINT_VARIABLE} is not set: run the tests with tests/run, which starts the AWS emulator"));
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(Credentials::new(
            "test",
            "test",
            None,
            None,
            "berth-tests",
        )))
        .build()
}

/// A bucket and table no other test uses, created with the template's settings, the table without its stream: the
/// emulator copies the whole table, stream records included, once per item of every TransactWriteItems (moto's
/// rollback copy), so a long stream slows transactions past the SDK's attempt timeout, and the retry races the first
/// attempt. Only the tests that read the stream keep it.
pub async fn fresh_aws_resources() -> AwsSettings {
    fresh_aws_resources_with(resources::TableStream::Off).await
}

/// A bucket and table no other test uses, created with the template's settings, the stream as `stream` says.
pub async fn fresh_aws_resources_with(stream: resources::TableStream) -> AwsSettings {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let settings = AwsSettings {
        bucket: format!("berth-test-{suffix}"),
        table: format!("berth-test-{suffix}"),
        presign_ttl: Duration::from_secs(900),
        limits: TEST_LIMITS,
    };
    let (s3, dynamodb) = aws::clients_from(&emulator_config());
    resources::create_resources_with(&s3, &dynamodb, &settings, stream).await.expect("the emulator creates the bucket and table");
    settings
}

/// The AWS adapters over a fresh bucket and table.
pub async fn fresh_aws_stores() -> (S3BlobStore, DynamoMetadata) {
    let settings = fresh_aws_resources().await;
    let (s3, dynamodb) = aws::clients_from(&emulator_config());
    aws::stores(s3, dynamodb, &settings)
}

/// Every record the emulator's stream of the table `table` holds, wrapped as Lambda delivers them to the scan
/// function, read with boto3 (the emulator's own Python, `BERTH_TEST_PYTHON`) from the DynamoDB Streams API.
pub fn stream_event(table: &str) -> crate::stream::Event {
    let python = std::env::var("BERTH_TEST_PYTHON").expect("BERTH_TEST_PYTHON: run the tests with tests/run");
    let endpoint = std::env::var(ENDPOINT_VARIABLE).unwrap_or_else(|_| panic!("{ENDPOINT_VARIABLE}: run the tests with tests/run"));
    let script = r#"
import base64, boto3, json, sys
endpoint, table = sys.argv[1], sys.argv[2]
options = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
arn = boto3.client("dynamodb", **options).describe_table(TableName=table)["Table"]["LatestStreamArn"]
streams = boto3.client("dynamodbstreams", **options)
records = []
for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    # A page holds at most 1,000 records: read until a page comes back empty.
    while iterator:
        page = streams.get_records(ShardIterator=iterator)
        if not page["Records"]:
            break
        records += page["Records"]
        iterator = page.get("NextShardIterator")
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
