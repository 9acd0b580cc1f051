//! Connecting the AWS adapters: SDK clients from the standard AWS environment, counting their calls, and the stores
//! over them. `--create-resources` is in [`super::resources`].

use std::time::Duration;

use aws_sdk_s3::config::ConfigBag;
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{Intercept, context::BeforeDeserializationInterceptorContextRef},
        orchestrator::Metadata,
        runtime_components::RuntimeComponents,
    },
};
#[cfg(feature = "test-support")]
use {
    crate::telemetry::signed,
    aws_smithy_runtime_api::client::interceptors::context::{
        BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    },
};

use aws_config::BehaviorVersion;

use super::{
    StoreError,
    dynamodb::DynamoMetadata,
    s3::{S3BlobStore, S3Limits},
};

/// Where the registry keeps its data on AWS.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub bucket: String,
    pub table: String,
    pub presign_ttl: Duration,
    pub limits: S3Limits,
}

/// SDK clients configured from the standard environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain). With
/// a custom endpoint (an emulator) S3 is addressed path-style, which emulators serve without DNS tricks.
/// `region`, when given, wins over the environment's.
pub async fn clients(region: Option<String>) -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
    clients_from(&sdk_config(region).await)
}

/// The SDK configuration from the standard environment, `region` winning over it when given.
pub async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let loader = match region {
        Some(region) => loader.region(aws_config::Region::new(region)),
        None => loader,
    };
    loader.load().await
}

/// How long one attempt, and one operation with its retries, may take. DynamoDB answers in milliseconds, so a stalled
/// call fails fast; S3 copies up to 5 GiB server-side in one call, which can take minutes.
const DYNAMODB_TIMEOUTS: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(12));
const S3_TIMEOUTS: (Duration, Duration) = (Duration::from_secs(240), Duration::from_secs(600));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Every call is tried at most this often (the SDK's standard retries: throttling and transient errors, with backoff).
const MAX_ATTEMPTS: u32 = 3;

fn timeouts((attempt, operation): (Duration, Duration)) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

pub fn clients_from(config: &aws_config::SdkConfig) -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
    let path_style = config.endpoint_url().is_some();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .timeout_config(timeouts(S3_TIMEOUTS))
            .retry_config(retries.clone())
            .interceptor(CallCounter)
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .timeout_config(timeouts(DYNAMODB_TIMEOUTS))
            .retry_config(retries)
            .interceptor(CallCounter)
            .build(),
    );
    (s3, dynamodb)
}

/// Counts each request the SDK sends and gets an answer to (every attempt, retries included: each is billed) for the
/// request log. Presigning never transmits, so it is not counted. With `test-support`, also records every operation
/// signed, presigned ones included, for the IAM tests.
#[derive(Debug)]
struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "berth::CallCounter"
    }

    /// A transaction's items, from its input: IAM authorises each as the single-item action of its kind.
    #[cfg(feature = "test-support")]
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
        for item in context.input().downcast_ref::<TransactWriteItemsInput>().map_or(&[][..], TransactWriteItemsInput::transact_items) {
            let kinds = [
                ("Put", item.put().is_some()),
                ("Delete", item.delete().is_some()),
                ("Update", item.update().is_some()),
                ("ConditionCheck", item.condition_check().is_some()),
            ];
            for (kind, _) in kinds.into_iter().filter(|(_, present)| *present) {
                signed::record(signed::Signed {
                    operation: format!("DynamoDB.TransactWriteItems.{kind}"),
                    key_prefix: None,
                    source_prefix: None,
                });
            }
        }
        Ok(())
    }

    /// Every operation once, as serialized: presigning runs this far too. S3's key is the request path here (the
    /// bucket joins it later, in the endpoint), a copy's source is `bucket/key` in its header.
    #[cfg(feature = "test-support")]
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let first_segment = |path: &str| path.split('/').find(|segment| !segment.is_empty()).map(str::to_owned);
        if let Some(operation) = config.load::<Metadata>() {
            let request = context.request();
            signed::record(signed::Signed {
                operation: format!("{}.{}", operation.service(), operation.name()),
                key_prefix: first_segment(request.uri().split('?').next().unwrap_or_default()),
                source_prefix: request.headers().get("x-amz-copy-source").and_then(|source| first_segment(source.split_once('/')?.1)),
            });
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(operation) = config.load::<Metadata>() {
            crate::telemetry::backend_call(|| format!("{}.{}", operation.service(), operation.name()));
        }
        Ok(())
    }
}

/// A Secrets Manager client, for the token function's signing key seed (read once per process).
pub fn secrets_client(config: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(config)
            .timeout_config(timeouts(DYNAMODB_TIMEOUTS))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .interceptor(CallCounter)
            .build(),
    )
}

/// The signing key seed held in secret `secret_id`: the bytes of its string value.
pub async fn signing_seed(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<Vec<u8>, StoreError> {
    let output = client.get_secret_value().secret_id(secret_id).send().await.map_err(|error| StoreError::Backend {
        service: "Secrets Manager",
        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&error).to_string(),
    })?;
    output.secret_string.map(String::into_bytes).ok_or_else(|| StoreError::Corrupt(format!("secret {secret_id} holds no string")))
}

/// The S3 blob store and DynamoDB metadata store for `settings`.
pub fn stores(s3: aws_sdk_s3::Client, dynamodb: aws_sdk_dynamodb::Client, settings: &AwsSettings) -> (S3BlobStore, DynamoMetadata) {
    (S3BlobStore::new(s3, &settings.bucket, settings.presign_ttl, settings.limits), DynamoMetadata::new(dynamodb, &settings.table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UploadSessions;

    /// A DynamoDB endpoint that accepts connections and never answers: the call fails once the operation timeout is up,
    /// instead of holding its request forever.
    #[tokio::test]
    async fn a_silent_backend_fails_calls_within_the_operation_timeout() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((connection, _)) = silent.accept().await {
                open.push(connection);
            }
        });
        let config = crate::testing::emulator_config().to_builder().endpoint_url(endpoint).build();
        let (_, dynamodb) = clients_from(&config);
        let started = std::time::Instant::now();
        let result = DynamoMetadata::new(dynamodb, "silent").upload("00000000-0000-4000-8000-000000000000").await;
        let elapsed = started.elapsed();
        held.abort();
        assert!(result.is_err(), "a silent backend cannot answer");
        let (attempt, operation) = DYNAMODB_TIMEOUTS;
        assert!(elapsed >= attempt && elapsed < operation + Duration::from_secs(2), "failed after {elapsed:?}");
    }
}
