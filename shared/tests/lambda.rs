//! The Lambda entry point: real function URL (API Gateway v2) event JSON through the adapter `lambda_http::run`
//! uses, to the response JSON Lambda returns — binary bodies base64-encoded both ways, over the AWS adapters.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use berth::{
    function::LAMBDA_MAX_REQUEST_BYTES,
    http::{router, routes::Function},
    identity::{
        Gate, TokenService,
        access::{Permissions, Scope},
        directory::{Directory, Login, Subject},
        keys::SigningKey,
    },
    oci::{Algorithm, Digest},
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus},
    services::{self, AccessControl, Limits},
    store::{aws, dynamodb::DynamoMetadata},
    testing,
};
use lambda_http::{Adapter, Context, LambdaEvent, Service, request::LambdaRequest};
use serde_json::{Value, json};

/// One registry function as Lambda runs it, answering event JSON with response JSON, with a token of an owner.
struct LambdaFunction {
    adapter: Adapter<'static, axum::response::Response, axum::Router>,
    token: String,
}

impl LambdaFunction {
    /// The function verifies tokens as deployed: with the keys a token service published in the table.
    async fn new(functions: &[Function]) -> Self {
        let settings = testing::fresh_aws_resources().await;
        let limits = Limits { max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES, max_request_bytes: Some(LAMBDA_MAX_REQUEST_BYTES) };
        let (s3, dynamodb) = aws::clients_from(&testing::emulator_config());
        let directory = Directory::new(Arc::new(DynamoMetadata::new(dynamodb.clone(), &settings.table)), "lambda-test".into(), None);
        let tokens = TokenService::new(
            directory.clone(),
            SigningKey::from_seed(uuid::Uuid::new_v4().as_bytes().repeat(2).as_slice()).unwrap(),
            &Default::default(),
        );
        directory.publish_key(tokens.public_key()).await.unwrap();
        let owner = Login { subject: Subject::Admin, permissions: Permissions::everything(), credential: None };
        let scopes = Scope::parse_all(["repository:lambda/app:* repository:lambda/web:* repository:lambda/big:*"]);
        let token = tokens.grant(&owner, &scopes, false).access.token;
        let access = AccessControl { gate: Arc::new(Gate::published(directory).await), tokens: None };
        let services = services::over_aws(&settings, s3, dynamodb, functions, limits, Arc::new(EventBus::new(8)), None, access);
        Self { adapter: Adapter::from(router(services)), token }
    }

    async fn invoke(&mut self, mut event: Value) -> Value {
        event["headers"]["authorization"] = json!(format!("Bearer {}", self.token));
        let request: LambdaRequest = serde_json::from_value(event).expect("a valid function URL event");
        let response = self.adapter.call(LambdaEvent::new(request, Context::default())).await.unwrap();
        serde_json::to_value(response).unwrap()
    }
}

/// A function URL event as Lambda delivers it (payload format 2.0); bodies that are not UTF-8 arrive base64-encoded.
fn event(method: &str, path: &str, query: &str, headers: Value, body: &[u8]) -> Value {
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (BASE64.encode(body), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "berthtest", "domainName": "berthtest.lambda-url.us-east-1.on.aws", "domainPrefix": "berthtest",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "docker/28.2.2"},
            "requestId": "b3c5e6a8-0000-4000-8000-000000000001", "routeKey": "$default", "stage": "$default",
            "time": "26/Nov/2026:15:00:00 +0000", "timeEpoch": 1_795_705_200_000_u64
        },
        "isBase64Encoded": encoded
    });
    if !body.is_empty() {
        event["body"] = json!(body);
    }
    event
}

fn body_of(response: &Value) -> Vec<u8> {
    let body = response["body"].as_str().unwrap_or_default();
    if response["isBase64Encoded"] == json!(true) { BASE64.decode(body).unwrap() } else { body.as_bytes().to_vec() }
}

#[tokio::test]
async fn binary_upload_and_redirected_download_through_function_url_events() {
    let mut blobs = LambdaFunction::new(&[Function::Blobs]).await;
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let digest = Digest::of(Algorithm::Sha256, &content);
    let pushed = blobs
        .invoke(event(
            "POST",
            "/v2/lambda/app/blobs/uploads/",
            &format!("digest={digest}"),
            json!({"content-type": "application/octet-stream", "content-length": content.len().to_string()}),
            &content,
        ))
        .await;
    assert_eq!(pushed["statusCode"], 201, "{pushed}");
    assert_eq!(pushed["headers"]["docker-content-digest"], digest.to_string());

    let fetched = blobs.invoke(event("GET", &format!("/v2/lambda/app/blobs/{digest}"), "", json!({}), b"")).await;
    assert_eq!(fetched["statusCode"], 307, "{fetched}");
    let presigned = fetched["headers"]["location"].as_str().unwrap();
    assert!(presigned.contains("X-Amz-Signature=") && presigned.contains("X-Amz-Expires=900"), "{presigned}");
    assert_eq!(reqwest::get(presigned).await.unwrap().bytes().await.unwrap().as_ref(), content.as_slice());
}

#[tokio::test]
async fn manifests_as_text_bodies() {
    let mut both = LambdaFunction::new(&[Function::Blobs, Function::Manifests]).await;
    let upload = |content: &'static [u8]| {
        let digest = Digest::of(Algorithm::Sha256, content);
        (digest.clone(), event("POST", "/v2/lambda/web/blobs/uploads/", &format!("digest={digest}"), json!({}), content))
    };
    let (config, config_event) = upload(b"{}");
    let (layer, layer_event) = upload(b"layer bytes");
    for upload in [config_event, layer_event] {
        assert_eq!(both.invoke(upload).await["statusCode"], 201);
    }
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 11}]}))
    .unwrap();
    let put = both
        .invoke(event(
            "PUT",
            "/v2/lambda/web/manifests/v1",
            "",
            json!({"content-type": "application/vnd.oci.image.manifest.v1+json"}),
            &manifest,
        ))
        .await;
    assert_eq!(put["statusCode"], 201, "{put}");
    let got = both
        .invoke(event("GET", "/v2/lambda/web/manifests/v1", "", json!({"accept": "application/vnd.oci.image.manifest.v1+json"}), b""))
        .await;
    assert_eq!((got["statusCode"].clone(), body_of(&got)), (json!(200), manifest.clone()));
    assert_eq!(got["headers"]["content-type"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(got["headers"]["docker-content-digest"], Digest::of(Algorithm::Sha256, &manifest).to_string());
}

#[tokio::test]
async fn bodies_over_the_lambda_payload_get_413_with_advice() {
    let mut blobs = LambdaFunction::new(&[Function::Blobs]).await;
    let started = blobs.invoke(event("POST", "/v2/lambda/big/blobs/uploads/", "", json!({}), b"")).await;
    assert_eq!(started["statusCode"], 202);
    assert_eq!(started["headers"]["oci-chunk-max-length"], LAMBDA_MAX_REQUEST_BYTES.to_string());
    assert_eq!(started["headers"]["oci-chunk-min-length"], (5 << 20).to_string());
    let location = started["headers"]["location"].as_str().unwrap().to_owned();

    // What docker sends: one PATCH with the whole layer, as large as Lambda still delivers (6 MB of base64).
    let layer = vec![0xA5u8; LAMBDA_MAX_REQUEST_BYTES as usize + 1];
    let refused = blobs.invoke(event("PATCH", &location, "", json!({"content-type": "application/octet-stream"}), &layer)).await;
    assert_eq!(refused["statusCode"], 413, "{}", refused["body"]);
    let error: Value = serde_json::from_slice(&body_of(&refused)).unwrap();
    assert_eq!(error["errors"][0]["code"], "SIZE_INVALID");
    let message = error["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&LAMBDA_MAX_REQUEST_BYTES.to_string()) && message.contains("Lambda") && message.contains("berth serve"),
        "{message}"
    );

    let status = blobs.invoke(event("GET", &location, "", json!({}), b"")).await;
    assert_eq!(
        (status["statusCode"].clone(), status["headers"]["range"].clone()),
        (json!(204), json!("0-0")),
        "nothing of the refused body counts"
    );
}
