//! `--create-resources`: the bucket and table made as `infra/template.yaml` makes them, every setting read from the
//! template itself (built in), so that an emulator gets what a deployment gets and the two cannot drift.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification, ScalarAttributeType, SseSpecification,
    SseType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_s3::{
    error::DisplayErrorContext,
    types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    },
};
use serde::Deserialize;

use super::{StoreError, aws::AwsSettings};

/// The SAM template that deploys Berth.
pub const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

// The template's properties in CloudFormation's names. Unknown ones are refused: a setting added to the template that
// is not applied here fails the tests instead of being left out.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Template {
    resources: TemplateResources,
}

#[derive(Debug, Deserialize)]
struct TemplateResources {
    #[serde(rename = "RegistryBucket")]
    bucket: Resource<BucketProperties>,
    #[serde(rename = "RegistryTable")]
    table: Resource<TableProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource<P> {
    properties: P,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BucketProperties {
    bucket_encryption: BucketEncryption,
    public_access_block_configuration: PublicAccessBlock,
    ownership_controls: Ownership,
    lifecycle_configuration: Lifecycle,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BucketEncryption {
    server_side_encryption_configuration: Vec<EncryptionRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EncryptionRule {
    server_side_encryption_by_default: EncryptionByDefault,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionByDefault {
    #[serde(rename = "SSEAlgorithm")]
    sse_algorithm: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PublicAccessBlock {
    block_public_acls: bool,
    block_public_policy: bool,
    ignore_public_acls: bool,
    restrict_public_buckets: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Ownership {
    rules: Vec<OwnershipRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OwnershipRule {
    object_ownership: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Lifecycle {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Rule {
    id: String,
    status: String,
    /// None: every key.
    prefix: Option<String>,
    expiration_in_days: Option<i32>,
    abort_incomplete_multipart_upload: Option<AbortIncomplete>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AbortIncomplete {
    days_after_initiation: i32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TableProperties {
    billing_mode: String,
    attribute_definitions: Vec<Attribute>,
    key_schema: Vec<Key>,
    time_to_live_specification: TimeToLive,
    point_in_time_recovery_specification: PointInTimeRecovery,
    #[serde(rename = "SSESpecification")]
    sse_specification: TableEncryption,
    stream_specification: Stream,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Stream {
    stream_view_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Attribute {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Key {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TimeToLive {
    attribute_name: String,
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PointInTimeRecovery {
    point_in_time_recovery_enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEncryption {
    #[serde(rename = "SSEEnabled")]
    enabled: bool,
    /// None: the AWS managed key (KMS).
    #[serde(rename = "SSEType")]
    sse_type: Option<String>,
}

/// The bucket's and table's properties in the built-in template, which the tests check are all read.
fn template() -> TemplateResources {
    serde_norway::from_str::<Template>(TEMPLATE).expect("the built-in template's bucket and table are readable (tested)").resources
}

fn s3_failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { service: "S3", message: error.to_string() }
}

/// A failed S3 call, with the causes the SDK error's own message leaves out.
fn s3_call_failed(error: impl std::error::Error) -> StoreError {
    s3_failed(DisplayErrorContext(error))
}

fn dynamodb_failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { service: "DynamoDB", message: error.to_string() }
}

fn dynamodb_call_failed(error: impl std::error::Error) -> StoreError {
    dynamodb_failed(DisplayErrorContext(error))
}

/// Creates the bucket and table if missing, configured as the SAM template configures them. An existing bucket gets
/// the settings again (each is a replace); an existing table is left as it is, since TTL cannot be set twice.
pub async fn create_resources(
    s3: &aws_sdk_s3::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    settings: &AwsSettings,
) -> Result<(), StoreError> {
    create_resources_with(s3, dynamodb, settings, TableStream::FromTemplate).await
}

/// Whether a created table has the template's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableStream {
    FromTemplate,
    /// None: for tests that do not read it (see `crate::testing::fresh_aws_resources`).
    Off,
}

/// [`create_resources`], the table's stream as `stream` says.
pub async fn create_resources_with(
    s3: &aws_sdk_s3::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    settings: &AwsSettings,
    stream: TableStream,
) -> Result<(), StoreError> {
    let TemplateResources { bucket, table } = template();
    create_bucket(s3, &settings.bucket, bucket.properties).await?;
    create_table(dynamodb, &settings.table, table.properties, stream).await
}

/// Creates secret `name` holding a random signing key seed unless it exists: what the template's
/// `SigningKeySecret` (64 generated letters and digits) is on AWS.
pub async fn create_signing_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> Result<(), StoreError> {
    let seed = crate::identity::secrets::generate(0).0;
    match client.create_secret().name(name).secret_string(seed).send().await {
        Ok(_) => Ok(()),
        Err(error) if matches!(error.as_service_error(), Some(service) if service.is_resource_exists_exception()) => Ok(()),
        Err(error) => Err(StoreError::Backend {
            service: "Secrets Manager",
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&error).to_string(),
        }),
    }
}

async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str, properties: BucketProperties) -> Result<(), StoreError> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(error) if matches!(error.as_service_error(), Some(service) if service.is_bucket_already_owned_by_you()) => {}
        Err(error) => return Err(s3_call_failed(error)),
    }
    let mut encryption = ServerSideEncryptionConfiguration::builder();
    for rule in properties.bucket_encryption.server_side_encryption_configuration {
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::from(rule.server_side_encryption_by_default.sse_algorithm.as_str()))
            .build()
            .map_err(s3_failed)?;
        encryption = encryption.rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build());
    }
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption.build().map_err(s3_failed)?)
        .send()
        .await
        .map_err(s3_call_failed)?;

    let block = properties.public_access_block_configuration;
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(block.block_public_acls)
        .block_public_policy(block.block_public_policy)
        .ignore_public_acls(block.ignore_public_acls)
        .restrict_public_buckets(block.restrict_public_buckets)
        .build();
    s3.put_public_access_block().bucket(bucket).public_access_block_configuration(block).send().await.map_err(s3_call_failed)?;

    let mut ownership = OwnershipControls::builder();
    for rule in properties.ownership_controls.rules {
        let rule = OwnershipControlsRule::builder().object_ownership(ObjectOwnership::from(rule.object_ownership.as_str()));
        ownership = ownership.rules(rule.build().map_err(s3_failed)?);
    }
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(ownership.build().map_err(s3_failed)?)
        .send()
        .await
        .map_err(s3_call_failed)?;

    let mut lifecycle = BucketLifecycleConfiguration::builder();
    for rule in properties.lifecycle_configuration.rules {
        let built = LifecycleRule::builder()
            .id(rule.id)
            .status(ExpirationStatus::from(rule.status.as_str()))
            .filter(LifecycleRuleFilter::builder().prefix(rule.prefix.unwrap_or_default()).build())
            .set_expiration(rule.expiration_in_days.map(|days| LifecycleExpiration::builder().days(days).build()))
            .set_abort_incomplete_multipart_upload(
                rule.abort_incomplete_multipart_upload
                    .map(|abort| AbortIncompleteMultipartUpload::builder().days_after_initiation(abort.days_after_initiation).build()),
            )
            .build()
            .map_err(s3_failed)?;
        lifecycle = lifecycle.rules(built);
    }
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle.build().map_err(s3_failed)?)
        .send()
        .await
        .map_err(s3_call_failed)?;
    Ok(())
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    properties: TableProperties,
    stream: TableStream,
) -> Result<(), StoreError> {
    let attributes = properties.attribute_definitions.into_iter().map(|attribute| {
        AttributeDefinition::builder()
            .attribute_name(attribute.attribute_name)
            .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
            .build()
    });
    let keys = properties
        .key_schema
        .into_iter()
        .map(|key| KeySchemaElement::builder().attribute_name(key.attribute_name).key_type(KeyType::from(key.key_type.as_str())).build());
    let encryption = properties.sse_specification;
    let created = dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(properties.billing_mode.as_str()))
        .set_attribute_definitions(Some(attributes.collect::<Result<_, _>>().map_err(dynamodb_failed)?))
        .set_key_schema(Some(keys.collect::<Result<_, _>>().map_err(dynamodb_failed)?))
        .sse_specification(
            SseSpecification::builder().enabled(encryption.enabled).set_sse_type(encryption.sse_type.as_deref().map(SseType::from)).build(),
        )
        .set_stream_specification(match stream {
            TableStream::FromTemplate => Some(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(properties.stream_specification.stream_view_type.as_str()))
                    .build()
                    .map_err(dynamodb_failed)?,
            ),
            TableStream::Off => None,
        })
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error) if matches!(error.as_service_error(), Some(service) if service.is_resource_in_use_exception()) => return Ok(()),
        Err(error) => return Err(dynamodb_call_failed(error)),
    }
    let ttl = properties.time_to_live_specification;
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().attribute_name(ttl.attribute_name).enabled(ttl.enabled).build().map_err(dynamodb_failed)?,
        )
        .send()
        .await
        .map_err(dynamodb_call_failed)?;
    let recovery = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(properties.point_in_time_recovery_specification.point_in_time_recovery_enabled)
        .build()
        .map_err(dynamodb_failed)?;
    dynamodb
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(recovery)
        .send()
        .await
        .map_err(dynamodb_call_failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{PointInTimeRecoveryStatus, SseStatus, TimeToLiveStatus};
    use serde_json::{Value, json};

    use super::*;
    use crate::store::{
        UPLOAD_MAX_AGE_SECS,
        layout::{self, dynamo},
    };

    const DAY_SECS: u64 = 24 * 3600;

    /// What the adapters write must be what the template sets up: its keys, its TTL attribute, and lifecycle rules
    /// that leave live uploads alone.
    #[test]
    fn the_template_keeps_what_the_code_writes() {
        let TemplateResources { bucket, table } = template();
        let table = table.properties;
        let keys: Vec<_> = table.key_schema.iter().map(|key| (key.attribute_name.as_str(), key.key_type.as_str())).collect();
        assert_eq!(keys, [(dynamo::PK, "HASH"), (dynamo::SK, "RANGE")]);
        let types: Vec<_> =
            table.attribute_definitions.iter().map(|key| (key.attribute_name.as_str(), key.attribute_type.as_str())).collect();
        assert_eq!(types, [(dynamo::PK, "S"), (dynamo::SK, "S")]);
        assert_eq!(table.time_to_live_specification.attribute_name, dynamo::EXPIRES_AT);

        let rules = bucket.properties.lifecycle_configuration.rules;
        let staging =
            rules.iter().find(|rule| rule.prefix.as_deref() == Some(&format!("{}/", layout::UPLOADS_DIR))).expect("a rule on uploads/");
        let aborting = rules.iter().find_map(|rule| rule.abort_incomplete_multipart_upload.as_ref()).expect("a rule aborting uploads");
        for days in [staging.expiration_in_days.expect("uploads/ expires"), aborting.days_after_initiation] {
            assert!(days as u64 * DAY_SECS > UPLOAD_MAX_AGE_SECS, "a lifecycle rule of {days} days would take a live upload's bytes");
        }
    }

    /// The bucket's and table's settings as the emulator reports them, in the template's terms.
    async fn read_back(s3: &aws_sdk_s3::Client, dynamodb: &aws_sdk_dynamodb::Client, settings: &AwsSettings) -> (Value, Value) {
        let bucket = &settings.bucket;
        let encryption = s3.get_bucket_encryption().bucket(bucket).send().await.unwrap();
        let encryption: Vec<_> = encryption
            .server_side_encryption_configuration()
            .map(ServerSideEncryptionConfiguration::rules)
            .unwrap_or_default()
            .iter()
            .map(|rule| {
                let algorithm = rule.apply_server_side_encryption_by_default().map(|by_default| by_default.sse_algorithm().as_str());
                json!({"ServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}})
            })
            .collect();
        let block = s3.get_public_access_block().bucket(bucket).send().await.unwrap();
        let block = block.public_access_block_configuration().expect("a public access block");
        let ownership = s3.get_bucket_ownership_controls().bucket(bucket).send().await.unwrap();
        let ownership: Vec<_> = ownership
            .ownership_controls()
            .map(OwnershipControls::rules)
            .unwrap_or_default()
            .iter()
            .map(|rule| json!({"ObjectOwnership": rule.object_ownership().as_str()}))
            .collect();
        let lifecycle = s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
        let lifecycle: Vec<_> = lifecycle
            .rules()
            .iter()
            .map(|rule| {
                let mut read = json!({"Id": rule.id(), "Status": rule.status().as_str()});
                // A filter on the empty prefix is CloudFormation's rule without a Prefix: every key.
                if let Some(prefix) = rule.filter().and_then(LifecycleRuleFilter::prefix).filter(|prefix| !prefix.is_empty()) {
                    read["Prefix"] = json!(prefix);
                }
                if let Some(expiration) = rule.expiration() {
                    read["ExpirationInDays"] = json!(expiration.days());
                }
                if let Some(abort) = rule.abort_incomplete_multipart_upload() {
                    read["AbortIncompleteMultipartUpload"] = json!({"DaysAfterInitiation": abort.days_after_initiation()});
                }
                read
            })
            .collect();
        let bucket = json!({
            "BucketEncryption": {"ServerSideEncryptionConfiguration": encryption},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": block.block_public_acls(),
                "BlockPublicPolicy": block.block_public_policy(),
                "IgnorePublicAcls": block.ignore_public_acls(),
                "RestrictPublicBuckets": block.restrict_public_buckets(),
            },
            "OwnershipControls": {"Rules": ownership},
            "LifecycleConfiguration": {"Rules": lifecycle},
        });

        let table = &settings.table;
        let described = dynamodb.describe_table().table_name(table).send().await.unwrap();
        let described = described.table().expect("a table description");
        let ttl = dynamodb.describe_time_to_live().table_name(table).send().await.unwrap();
        let ttl = ttl.time_to_live_description().expect("a TTL description");
        let backups = dynamodb.describe_continuous_backups().table_name(table).send().await.unwrap();
        let recovery = backups
            .continuous_backups_description()
            .and_then(|backups| backups.point_in_time_recovery_description())
            .and_then(|recovery| recovery.point_in_time_recovery_status());
        let table = json!({
            "BillingMode": described.billing_mode_summary().and_then(|summary| summary.billing_mode()).map(BillingMode::as_str),
            "AttributeDefinitions": described.attribute_definitions().iter()
                .map(|attribute| json!({"AttributeName": attribute.attribute_name(), "AttributeType": attribute.attribute_type().as_str()}))
                .collect::<Vec<_>>(),
            "KeySchema": described.key_schema().iter()
                .map(|key| json!({"AttributeName": key.attribute_name(), "KeyType": key.key_type().as_str()}))
                .collect::<Vec<_>>(),
            "TimeToLiveSpecification": {
                "AttributeName": ttl.attribute_name(),
                "Enabled": ttl.time_to_live_status() == Some(&TimeToLiveStatus::Enabled),
            },
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": recovery == Some(&PointInTimeRecoveryStatus::Enabled)},
            "SSESpecification": {"SSEEnabled": described.sse_description().and_then(|sse| sse.status()) == Some(&SseStatus::Enabled)},
            "StreamSpecification": {
                "StreamViewType": described.stream_specification().filter(|stream| stream.stream_enabled())
                    .and_then(|stream| stream.stream_view_type()).map(StreamViewType::as_str),
            },
        });
        (bucket, table)
    }

    /// The template's `Properties` of `resource`, read as plain YAML, apart from the parsing `create_resources` does.
    fn template_properties(resource: &str) -> Value {
        let template: serde_norway::Value = serde_norway::from_str(TEMPLATE).unwrap();
        serde_json::to_value(&template["Resources"][resource]["Properties"]).unwrap()
    }

    #[tokio::test]
    async fn created_resources_have_every_setting_of_the_template() {
        let settings = crate::testing::fresh_aws_resources_with(TableStream::FromTemplate).await;
        let (s3, dynamodb) = super::super::aws::clients_from(&crate::testing::emulator_config());
        // Creating what exists already changes nothing and fails nothing.
        create_resources(&s3, &dynamodb, &settings).await.unwrap();
        let (bucket, table) = read_back(&s3, &dynamodb, &settings).await;
        assert_eq!(bucket, template_properties("RegistryBucket"));
        assert_eq!(table, template_properties("RegistryTable"));
    }
}
