//! Connecting the AWS adapters: SDK clients from the standard AWS environment, and `--create-resources`, which makes
//! the bucket and table with the settings `infra/template.yaml` gives them (for emulators; on AWS the template does).

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
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};

use super::{
    StoreError,
    dynamodb::DynamoMetadata,
    layout::{self, dynamo},
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
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let loader = match region {
        Some(region) => loader.region(aws_config::Region::new(region)),
        None => loader,
    };
    clients_from(&loader.load().await)
}

pub fn clients_from(config: &aws_config::SdkConfig) -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
    let path_style = config.endpoint_url().is_some();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).interceptor(CallCounter).build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(config).interceptor(CallCounter).build());
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

/// The S3 blob store and DynamoDB metadata store for `settings`.
pub fn stores(s3: aws_sdk_s3::Client, dynamodb: aws_sdk_dynamodb::Client, settings: &AwsSettings) -> (S3BlobStore, DynamoMetadata) {
    (S3BlobStore::new(s3, &settings.bucket, settings.presign_ttl, settings.limits), DynamoMetadata::new(dynamodb, &settings.table))
}

fn backend(service: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { service, message: error.to_string() }
}

/// Creates the bucket and table if missing, configured as the SAM template configures them.
pub async fn create_resources(
    s3: &aws_sdk_s3::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    settings: &AwsSettings,
) -> Result<(), StoreError> {
    match s3.create_bucket().bucket(&settings.bucket).send().await {
        Ok(_) => {}
        Err(error) if matches!(error.as_service_error(), Some(service) if service.is_bucket_already_owned_by_you()) => {}
        Err(error) => return Err(backend("S3", aws_sdk_s3::error::DisplayErrorContext(error))),
    }
    let abandoned_uploads = LifecycleRule::builder()
        .id("abort-incomplete-multipart-uploads")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()
        .map_err(|error| backend("S3", error))?;
    let upload_leftovers = LifecycleRule::builder()
        .id("expire-upload-staging")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(format!("{}/", layout::UPLOADS_DIR)).build())
        .expiration(LifecycleExpiration::builder().days(2).build())
        .build()
        .map_err(|error| backend("S3", error))?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(abandoned_uploads)
        .rules(upload_leftovers)
        .build()
        .map_err(|error| backend("S3", error))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(&settings.bucket)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(|error| backend("S3", aws_sdk_s3::error::DisplayErrorContext(error)))?;

    let key =
        |name: &str, key_type| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("name and type are set");
    let text_attribute = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().expect("name and type are set")
    };
    let created = dynamodb
        .create_table()
        .table_name(&settings.table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(text_attribute(dynamo::PK))
        .attribute_definitions(text_attribute(dynamo::SK))
        .key_schema(key(dynamo::PK, KeyType::Hash))
        .key_schema(key(dynamo::SK, KeyType::Range))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error) if matches!(error.as_service_error(), Some(service) if service.is_resource_in_use_exception()) => return Ok(()),
        Err(error) => return Err(backend("DynamoDB", aws_sdk_dynamodb::error::DisplayErrorContext(error))),
    }
    dynamodb
        .update_time_to_live()
        .table_name(&settings.table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(dynamo::EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(|error| backend("DynamoDB", error))?,
        )
        .send()
        .await
        .map_err(|error| backend("DynamoDB", aws_sdk_dynamodb::error::DisplayErrorContext(error)))?;
    dynamodb
        .update_continuous_backups()
        .table_name(&settings.table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|error| backend("DynamoDB", error))?,
        )
        .send()
        .await
        .map_err(|error| backend("DynamoDB", aws_sdk_dynamodb::error::DisplayErrorContext(error)))?;
    Ok(())
}
