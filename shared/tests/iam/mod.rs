//! The SAM template's roles held to what the functions do: every S3 and DynamoDB action the requests of a function
//! had signed while the AWS half of this suite ran is granted to the role that function runs as, and every action a
//! role grants is one of them. The emulator enforces no IAM, so nothing else would notice a missing grant before a
//! deployment does.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use berth::{
    function::{self, FunctionConfig},
    http::routes::Function,
    store::resources::TEMPLATE,
    store::{aws, resources},
    telemetry::{
        self,
        signed::{self, Signed},
    },
    testing,
};
use serde_norway::Value;

/// What a policy statement grants an action on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Table,
    Bucket,
    /// The token signing key's secret.
    SigningKeySecret,
    /// The bucket's keys whose first segment is this (`blobs/*`).
    Keys(String),
    /// The table's streams.
    TableStreams,
    /// The SQS queue of this logical id.
    Queue(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    action: String,
    resource: Resource,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Resource::Table => write!(f, "{} on the table", self.action),
            Resource::Bucket => write!(f, "{} on the bucket", self.action),
            Resource::SigningKeySecret => write!(f, "{} on the signing key secret", self.action),
            Resource::Keys(prefix) => write!(f, "{} on {prefix}/*", self.action),
            Resource::TableStreams => write!(f, "{} on the table's streams", self.action),
            Resource::Queue(queue) => write!(f, "{} on the queue {queue}", self.action),
        }
    }
}

/// An action a role may grant although no request uses it, where the role also grants `beside`, for `why`.
struct KeptUnused {
    action: &'static str,
    beside: &'static str,
    why: &'static str,
}

const KEPT_UNUSED: &[KeptUnused] = &[KeptUnused {
    action: "s3:ListBucket",
    beside: "s3:GetObject",
    why: "without it S3 answers a read of a missing key with 403 AccessDenied instead of 404 NoSuchKey, so a vanished \
          object would look like a permissions problem, in the logs and to a client following a presigned URL",
}];

/// The IAM actions `signed` needs, as the service authorises it.
fn needs(signed: &Signed) -> Vec<Grant> {
    let keys = |prefix: &Option<String>| Resource::Keys(prefix.clone().unwrap_or_else(|| panic!("{signed:?} names no key")));
    let grant = |action: &str, resource| Grant { action: action.to_owned(), resource };
    let on_key = |action| vec![grant(action, keys(&signed.key_prefix))];
    let on_table = |action| vec![grant(action, Resource::Table)];
    match signed.operation.as_str() {
        "S3.GetObject" | "S3.HeadObject" => on_key("s3:GetObject"),
        "S3.PutObject" | "S3.CreateMultipartUpload" | "S3.UploadPart" | "S3.CompleteMultipartUpload" => on_key("s3:PutObject"),
        // A copy reads its source.
        "S3.CopyObject" | "S3.UploadPartCopy" => {
            vec![grant("s3:GetObject", keys(&signed.source_prefix)), grant("s3:PutObject", keys(&signed.key_prefix))]
        }
        "S3.AbortMultipartUpload" => on_key("s3:AbortMultipartUpload"),
        "S3.DeleteObject" => on_key("s3:DeleteObject"),
        "S3.ListParts" => on_key("s3:ListMultipartUploadParts"),
        "S3.ListObjectsV2" => vec![grant("s3:ListBucket", Resource::Bucket)],
        // No action of its own: its items are recorded too, and authorised one by one.
        "DynamoDB.TransactWriteItems" => vec![],
        "DynamoDB.TransactWriteItems.Put" => on_table("dynamodb:PutItem"),
        "DynamoDB.TransactWriteItems.Delete" => on_table("dynamodb:DeleteItem"),
        "DynamoDB.TransactWriteItems.Update" => on_table("dynamodb:UpdateItem"),
        "DynamoDB.TransactWriteItems.ConditionCheck" => on_table("dynamodb:ConditionCheckItem"),
        operation @ ("DynamoDB.GetItem"
        | "DynamoDB.PutItem"
        | "DynamoDB.UpdateItem"
        | "DynamoDB.DeleteItem"
        | "DynamoDB.Query"
        | "DynamoDB.Scan"
        | "DynamoDB.BatchGetItem"
        | "DynamoDB.BatchWriteItem") => on_table(&operation.replace("DynamoDB.", "dynamodb:")),
        "Secrets Manager.GetSecretValue" => vec![grant("secretsmanager:GetSecretValue", Resource::SigningKeySecret)],
        other => panic!("no IAM action is known for {other}: add it to needs()"),
    }
}

/// A value or a list of them, as policies write actions and resources.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(values) => values.iter().collect(),
        value => vec![value],
    }
}

/// A statement's resource, in the forms the template uses: the table's or bucket's ARN, or the bucket's keys under one
/// first segment.
fn resource(value: &Value) -> Resource {
    let Value::Tagged(tagged) = value else { panic!("a resource that is no !GetAtt, !Ref or !Sub: {value:?}") };
    if tagged.tag == "Ref" && tagged.value == "SigningKeySecret" {
        return Resource::SigningKeySecret;
    }
    if tagged.tag == "GetAtt" && tagged.value == "RegistryTable.Arn" {
        return Resource::Table;
    }
    if tagged.tag == "GetAtt" && tagged.value == "RegistryBucket.Arn" {
        return Resource::Bucket;
    }
    if tagged.tag == "Sub" && tagged.value == "${RegistryTable.Arn}/stream/*" {
        return Resource::TableStreams;
    }
    if let Some(queue) = tagged.value.as_str().and_then(|value| value.strip_suffix(".Arn")).filter(|_| tagged.tag == "GetAtt")
        && queue.ends_with("Queue")
    {
        return Resource::Queue(queue.to_owned());
    }
    let prefix = tagged.value.as_str().and_then(|arn| arn.strip_prefix("${RegistryBucket.Arn}/")?.strip_suffix("/*"));
    match prefix {
        Some(prefix) if tagged.tag == "Sub" && !prefix.is_empty() && !prefix.contains(['/', '*', '$']) => Resource::Keys(prefix.to_owned()),
        _ => panic!("a resource this test cannot read: {value:?}"),
    }
}

/// What role `name` grants of S3 and DynamoDB.
fn granted(template: &Value, name: &str) -> BTreeSet<Grant> {
    let properties = &template["Resources"][name]["Properties"];
    assert!(properties.is_mapping(), "the template has no role {name}");
    // A managed policy could grant what the inline ones do not; the basic execution role grants logging only.
    for managed in one_or_many(&properties["ManagedPolicyArns"]) {
        let Value::Tagged(arn) = managed else { panic!("{name}: managed policy {managed:?}") };
        assert!(
            arn.value == "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "{name}: managed policy {managed:?}, whose actions this test cannot check"
        );
    }
    let mut grants = BTreeSet::new();
    for policy in properties["Policies"].as_sequence().into_iter().flatten() {
        for statement in one_or_many(&policy["PolicyDocument"]["Statement"]) {
            assert!(statement["Effect"] == "Allow", "{name}: statement {statement:?} is not an Allow");
            for action in one_or_many(&statement["Action"]) {
                let action = action.as_str().unwrap_or_else(|| panic!("{name}: action {action:?}"));
                assert!(
                    ["s3:", "dynamodb:", "secretsmanager:", "sqs:"].iter().any(|service| action.starts_with(service))
                        && !action.contains('*'),
                    "{name} grants {action}: this test checks S3, DynamoDB, Secrets Manager and SQS actions, named one by one"
                );
                for resource in one_or_many(&statement["Resource"]) {
                    grants.insert(Grant { action: action.to_owned(), resource: self::resource(resource) });
                }
            }
        }
    }
    grants
}

/// What Lambda itself does with the role of the function `name` for the function's event sources: it reads the
/// table's stream (as AWSLambdaDynamoDBExecutionRole grants), and reports failed batches to an on-failure queue; a
/// schedule needs nothing of it.
fn event_source_needs(template: &Value, name: &str) -> BTreeSet<Grant> {
    let grant = |action: &str, resource| Grant { action: action.to_owned(), resource };
    let mut needs = BTreeSet::new();
    let events = template["Resources"][name]["Properties"]["Events"].as_mapping().into_iter().flatten();
    for (event, source) in events {
        // EventBridge invokes a scheduled function with its own permission (SAM adds it): nothing for the role.
        if source["Type"] == "Schedule" {
            continue;
        }
        assert_eq!(source["Type"], "DynamoDB", "{name}: event {event:?} is of a type this test does not know");
        let properties = &source["Properties"];
        let Value::Tagged(stream) = &properties["Stream"] else { panic!("{name}: stream {:?}", properties["Stream"]) };
        assert!(stream.tag == "GetAtt" && stream.value == "RegistryTable.StreamArn", "{name}: the stream of {stream:?}");
        for action in ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"] {
            needs.insert(grant(action, Resource::TableStreams));
        }
        let destination = &properties["DestinationConfig"]["OnFailure"];
        if !destination.is_null() {
            assert_eq!(destination["Type"], "SQS", "{name}: on-failure destination {destination:?}");
            needs.insert(grant("sqs:SendMessage", resource(&destination["Destination"])));
        }
    }
    needs
}

fn listed<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> String {
    grants.into_iter().map(Grant::to_string).collect::<Vec<_>>().join(", ")
}

/// Starts each function as a deployment does (over fresh resources on the emulator), recording what its start-up
/// calls as that function's: the token function reads its signing key and publishes it, the others read it.
async fn start_each_function() {
    let settings = testing::fresh_aws_resources().await;
    let sdk = testing::emulator_config();
    let secret = format!("{}-signing-key", settings.table);
    resources::create_signing_secret(&aws::secrets_client(&sdk), &secret).await.unwrap();
    let variables = [
        ("BERTH_BUCKET", settings.bucket.as_str()),
        ("BERTH_TABLE", settings.table.as_str()),
        ("BERTH_SIGNING_KEY_SECRET", secret.as_str()),
        ("BERTH_REGISTRY_NAME", "iam-test"),
    ];
    for serve in [Function::Token, Function::Manifests, Function::Blobs, Function::Scan, Function::Advisories] {
        let config = FunctionConfig::from_env(
            |name| variables.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()),
            true,
            &[serve],
        )
        .unwrap();
        let (started, calls) = telemetry::count_backend_calls(function::services(&config, &[serve], &sdk)).await;
        assert!(started.is_ok(), "{serve:?} did not start");
        signed::add(serve, calls.signed);
    }
}

/// Runs every AWS test of the suite in turn, and each function's start-up: the IAM actions are those they had signed.
#[tokio::test]
async fn each_role_grants_exactly_what_its_function_calls() {
    let template: Value = serde_norway::from_str(TEMPLATE).expect("the template is YAML");
    start_each_function().await;
    super::every_aws_test().await;
    let used: BTreeMap<Function, BTreeSet<Grant>> =
        signed::by_function().into_iter().map(|(function, operations)| (function, operations.iter().flat_map(needs).collect())).collect();
    let using = |functions: &[Function]| -> BTreeSet<Grant> {
        functions.iter().flat_map(|function| used.get(function).into_iter().flatten().cloned()).collect()
    };
    let roles = [
        ("TokenRole", using(&[Function::Token])),
        ("ManifestsRole", using(&[Function::Manifests])),
        // The blobs binary also serves the manifests endpoints of repositories with a path component named `blobs`
        // (routing at the top of the template).
        ("BlobsRole", using(&[Function::Blobs, Function::Manifests])),
        ("ScanRole", using(&[Function::Scan]).union(&event_source_needs(&template, "ScanFunction")).cloned().collect()),
        ("AdvisoriesRole", using(&[Function::Advisories]).union(&event_source_needs(&template, "AdvisoriesFunction")).cloned().collect()),
    ];
    let (mut problems, mut kept_unused) = (Vec::new(), Vec::new());
    for (role, needed) in roles {
        let granted = granted(&template, role);
        let missing: Vec<_> = needed.difference(&granted).collect();
        let kept = |grant: &Grant| {
            KEPT_UNUSED.iter().find(|kept| kept.action == grant.action && granted.iter().any(|other| other.action == kept.beside))
        };
        let mut unused = Vec::new();
        for grant in granted.difference(&needed) {
            match kept(grant) {
                Some(kept) => kept_unused.push(format!("{role}: {grant}, because {}", kept.why)),
                None => unused.push(grant),
            }
        }
        if !missing.is_empty() {
            problems.push(format!("{role} lacks {}", listed(missing)));
        }
        if !unused.is_empty() {
            problems.push(format!("{role} grants what no request uses: {}", listed(unused)));
        }
    }
    let report: Vec<_> = used.iter().map(|(function, grants)| format!("{function:?}: {}", listed(grants))).collect();
    assert!(
        problems.is_empty(),
        "infra/template.yaml's roles do not match what the functions call:\n  {}\n\nwhat the requests of each function use:\n  {}\n\n\
         granted unused on purpose:\n  {}",
        problems.join("\n  "),
        report.join("\n  "),
        kept_unused.join("\n  ")
    );
}
