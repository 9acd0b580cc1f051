//! Running the registry's functions on AWS storage: configuration from the environment, the adapters, and either
//! the Lambda runtime (when `AWS_LAMBDA_RUNTIME_API` is set) or, outside Lambda, plain HTTP on `PORT` (containers,
//! local runs) — or, for the scan function, one stream event on stdin, and for the advisories function, one run.

use std::{
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use crate::{
    http::{self, PublicUrl, Services, routes::Function},
    identity::{
        ExternalLogins, Gate, TokenService,
        directory::{Directory, check_registry_name},
        keys::SigningKey,
        oidc::OidcConfig,
    },
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus},
    scan::{Scans, download},
    server,
    services::{self, AccessControl, Limits},
    store::{
        aws::{self, AwsSettings},
        dynamodb::DynamoMetadata,
        s3::S3Limits,
    },
    stream, telemetry,
    tier::Sku,
};

/// Presigned URLs die with the credentials that signed them and should not outlive a pull: at most 20 minutes.
const MAX_PRESIGN_TTL_SECS: u64 = 1200;
const DEFAULT_PRESIGN_TTL_SECS: u64 = 900;
const DEFAULT_PORT: u16 = 8080;
/// Lambda's 6 MB request payload carries binary bodies base64-encoded: about 4.5 MB of raw bytes.
pub const LAMBDA_MAX_REQUEST_BYTES: u64 = 4_500_000;

/// A function's configuration, read from `BERTH_*` variables.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The registry's name (`BERTH_REGISTRY_NAME`): the tokens' issuer and audience.
    pub registry_name: String,
    /// The table holding identities and published keys (`BERTH_TABLE`), which every function reads.
    pub table: String,
    /// Where the registry's content is; `None` for a function that reads none (the token function).
    pub aws: Option<AwsSettings>,
    /// The Secrets Manager secret holding the signing key seed (`BERTH_SIGNING_KEY_SECRET`): the token function's.
    pub signing_key_secret: Option<String>,
    /// The IAM principal ARN the deployment makes its first owner (`BERTH_OWNER`).
    pub owner: Option<String>,
    /// The token function's outside logins: the OIDC issuer whose ID tokens are logins (`BERTH_OIDC_ISSUER`,
    /// `BERTH_OIDC_AUDIENCE`), and the STS endpoint AWS IAM logins are checked with (`BERTH_STS_ENDPOINT`, by default
    /// the function's regional one).
    pub external: ExternalLogins,
    /// The origin header values CloudFront sends (`BERTH_ORIGIN_SECRET`, and `BERTH_PREVIOUS_ORIGIN_SECRET` during a
    /// rotation); requests without one are refused. None: every request is served (local runs).
    pub origin_secrets: Vec<String>,
    pub limits: Limits,
    /// The registry's public base URL, where a proxy hides the host clients use (`BERTH_PUBLIC_URL`).
    pub public_url: Option<PublicUrl>,
    /// The deployment's tier (`BERTH_SKU`, the template's `Sku`), where the registry's settings choose none.
    pub default_sku: Option<Sku>,
    /// How long a stopping process lets requests in flight finish (`BERTH_SHUTDOWN_GRACE_SECONDS`, default 5): the
    /// upload service's container gets as long as ECS waits before it kills it.
    pub drain: Duration,
    /// Where plain HTTP listens: all interfaces by default, as a container needs.
    pub host: IpAddr,
    pub port: u16,
}

/// Every problem with the environment, reported together so one deployment fixes them all.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl FunctionConfig {
    /// Reads the configuration of a process serving `serve` through `lookup` (the process environment in
    /// production); the bucket and table are required only where a function reads them. On Lambda the request size
    /// defaults to Lambda's payload limit.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>, on_lambda: bool, serve: &[Function]) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let reads_storage = serve.iter().any(|function| *function != Function::Token);
        let issues_tokens = serve.contains(&Function::Token);
        let mut required = |name: &str, needed: bool| {
            let value = lookup(name).filter(|value| !value.is_empty());
            if value.is_none() && needed {
                problems.push(format!("{name} is not set"));
            }
            value
        };
        let (bucket, table) = (required("BERTH_BUCKET", reads_storage), required("BERTH_TABLE", true));
        let signing_key_secret = required("BERTH_SIGNING_KEY_SECRET", issues_tokens);
        let registry_name = required("BERTH_REGISTRY_NAME", true).unwrap_or_default();
        if !registry_name.is_empty()
            && let Err(error) = check_registry_name(&registry_name)
        {
            problems.push(format!("BERTH_REGISTRY_NAME: {error}"));
        }
        let owner = lookup("BERTH_OWNER").filter(|value| !value.is_empty());
        let (issuer, audience) =
            (lookup("BERTH_OIDC_ISSUER").filter(|v| !v.is_empty()), lookup("BERTH_OIDC_AUDIENCE").filter(|v| !v.is_empty()));
        if issuer.is_some() != audience.is_some() {
            problems.push("BERTH_OIDC_ISSUER and BERTH_OIDC_AUDIENCE go together".to_owned());
        }
        let oidc = issuer.zip(audience).map(|(issuer, audience)| OidcConfig { issuer, audience });
        let sts_endpoint = lookup("BERTH_STS_ENDPOINT")
            .filter(|value| !value.is_empty())
            .or_else(|| {
                lookup("AWS_REGION").filter(|region| !region.is_empty()).map(|region| format!("https://sts.{region}.amazonaws.com"))
            })
            .filter(|_| issues_tokens)
            .and_then(|text| reqwest::Url::parse(&text).map_err(|error| problems.push(format!("BERTH_STS_ENDPOINT={text}: {error}"))).ok());
        let origin_secrets: Vec<String> = ["BERTH_ORIGIN_SECRET", "BERTH_PREVIOUS_ORIGIN_SECRET"]
            .iter()
            .filter_map(|name| lookup(name).filter(|value| !value.is_empty()))
            .collect();
        let mut number = |name: &str, default: Option<u64>| match lookup(name) {
            None => default,
            Some(text) => text.parse::<u64>().map(Some).unwrap_or_else(|_| {
                problems.push(format!("{name}={text} is not a number"));
                default
            }),
        };
        let presign_ttl = number("BERTH_PRESIGN_TTL_SECONDS", Some(DEFAULT_PRESIGN_TTL_SECS)).unwrap_or(DEFAULT_PRESIGN_TTL_SECS);
        let max_manifest_bytes = number("BERTH_MAX_MANIFEST_BYTES", Some(DEFAULT_MAX_MANIFEST_BYTES)).unwrap_or(DEFAULT_MAX_MANIFEST_BYTES);
        let max_request_bytes = number("BERTH_MAX_REQUEST_BYTES", on_lambda.then_some(LAMBDA_MAX_REQUEST_BYTES));
        let defaults = S3Limits::default();
        let part_size = number("BERTH_PART_SIZE_BYTES", Some(defaults.part_size)).unwrap_or(defaults.part_size);
        let port = number("PORT", Some(DEFAULT_PORT.into())).unwrap_or(DEFAULT_PORT.into());
        let drain = Duration::from_secs(number("BERTH_SHUTDOWN_GRACE_SECONDS", Some(server::DRAIN_TIMEOUT.as_secs())).unwrap_or_default());
        if !(1..=MAX_PRESIGN_TTL_SECS).contains(&presign_ttl) {
            problems.push(format!("BERTH_PRESIGN_TTL_SECONDS={presign_ttl} must be between 1 and {MAX_PRESIGN_TTL_SECS}"));
        }
        if part_size < 5 << 20 {
            problems.push(format!("BERTH_PART_SIZE_BYTES={part_size} is below S3's 5 MiB minimum part size"));
        }
        let host = lookup("BERTH_HOST").map_or(Ok(IpAddr::from([0, 0, 0, 0])), |text| text.parse::<IpAddr>().map_err(|_| text));
        let host = host.unwrap_or_else(|text| {
            problems.push(format!("BERTH_HOST={text} is not an IP address"));
            IpAddr::from([0, 0, 0, 0])
        });
        let default_sku = lookup("BERTH_SKU")
            .filter(|text| !text.is_empty())
            .and_then(|text| text.parse::<Sku>().map_err(|error| problems.push(format!("BERTH_SKU: {error}"))).ok());
        let public_url = lookup("BERTH_PUBLIC_URL")
            .filter(|text| !text.is_empty())
            .and_then(|text| PublicUrl::parse(&text).map_err(|error| problems.push(format!("BERTH_PUBLIC_URL={error}"))).ok());
        let port = u16::try_from(port).unwrap_or_else(|_| {
            problems.push(format!("PORT={port} is not a port"));
            DEFAULT_PORT
        });
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let limits = S3Limits { part_size, ..defaults };
        let table = table.unwrap_or_default();
        let aws = bucket.filter(|_| reads_storage).map(|bucket| AwsSettings {
            bucket,
            table: table.clone(),
            presign_ttl: Duration::from_secs(presign_ttl),
            limits,
        });
        Ok(Self {
            registry_name,
            table,
            aws,
            signing_key_secret: signing_key_secret.filter(|_| issues_tokens),
            owner,
            external: ExternalLogins { oidc, sts_endpoint },
            origin_secrets,
            limits: Limits { max_manifest_bytes, max_request_bytes },
            public_url,
            default_sku,
            drain,
            host,
            port,
        })
    }
}

/// The services among `serve` a function's process runs, over its configured AWS storage reached with `sdk`. The
/// token function reads its signing key and publishes the public half for the others, which load it now and on
/// unknown key ids.
pub async fn services(config: &FunctionConfig, serve: &[Function], sdk: &aws_config::SdkConfig) -> Result<Services, String> {
    let (s3, dynamodb) = aws::clients_from(sdk);
    let directory =
        Directory::new(Arc::new(DynamoMetadata::new(dynamodb.clone(), &config.table)), config.registry_name.clone(), config.owner.clone())
            .with_default_sku(config.default_sku);
    let access = match &config.signing_key_secret {
        Some(secret) => {
            let seed = aws::signing_seed(&aws::secrets_client(sdk), secret)
                .await
                .map_err(|error| format!("cannot read the signing key: {error}"))?;
            let key = SigningKey::from_seed(&seed).map_err(|error| format!("secret {secret}: {error}"))?;
            directory.publish_key(key.public_key()).await.map_err(|error| format!("cannot publish the signing key: {error}"))?;
            AccessControl::issuing(TokenService::new(directory, key, &config.external))
        }
        None => AccessControl { gate: Arc::new(Gate::published(directory).await), tokens: None },
    };
    let mut services = match &config.aws {
        None => Services {
            gate: access.gate,
            tokens: access.tokens,
            manifests: None,
            blobs: None,
            scans: None,
            public_url: config.public_url.clone(),
            origin_secrets: Vec::new(),
        },
        // Nothing in a function's process subscribes yet: events are logged.
        Some(settings) => {
            let events = Arc::new(EventBus::new(64));
            let mut services =
                services::over_aws(settings, s3.clone(), dynamodb.clone(), serve, config.limits, events, config.public_url.clone(), access);
            // On AWS the table's stream starts every scan (the scan function) and a schedule the advisory downloads
            // (the advisories function); the manifests function serves the reports, advisory imports and the pull
            // policy.
            if serve.iter().any(|function| matches!(function, Function::Manifests | Function::Scan | Function::Advisories)) {
                let (blobs, metadata) = aws::stores(s3, dynamodb, settings);
                services.scans = Some(Arc::new(Scans::over(Arc::new(blobs), Arc::new(metadata))));
            }
            services
        }
    };
    services.origin_secrets = config.origin_secrets.clone();
    Ok(services)
}

/// A function's process up to serving: tracing, its configuration and its services; `None` once the reason it
/// cannot start is logged.
async fn start(functions: &[Function]) -> Option<(FunctionConfig, Services, bool)> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    telemetry::init_tracing(on_lambda || std::env::var_os("BERTH_LOG_JSON").is_some());
    let started = match FunctionConfig::from_env(|name| std::env::var(name).ok(), on_lambda, functions) {
        Ok(config) => services(&config, functions, &aws::sdk_config(None).await).await.map(|services| (config, services)),
        Err(error) => Err(error.to_string()),
    };
    match started {
        Ok((config, services)) => Some((config, services, on_lambda)),
        Err(error) => {
            tracing::error!(%error, "cannot start");
            eprintln!("{error}");
            None
        }
    }
}

/// The exit of a process that stopped with `result`, the error logged.
fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "function stopped");
            ExitCode::FAILURE
        }
    }
}

/// The whole life of one HTTP function's process: the `main` of `functions/<name>`. A function may serve more than
/// its own endpoints (see `functions/blobs`).
pub async fn run(functions: &[Function]) -> ExitCode {
    let Some((config, services, on_lambda)) = start(functions).await else { return ExitCode::FAILURE };
    let router = http::router(services);
    let result = if on_lambda {
        lambda_http::run(router).await.map_err(|error| error.to_string())
    } else {
        let addr = SocketAddr::new(config.host, config.port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, ?functions, "serving over HTTP");
                server::serve(listener, router, None, config.drain).await.map_err(|error| error.to_string())
            }
            Err(error) => Err(format!("cannot listen on {addr}: {error}")),
        }
    };
    exit_code(result)
}

/// The whole life of the scan function's process: the table's stream batches from the Lambda runtime; outside
/// Lambda, one batch read from stdin and its answer printed on stdout, which is how the tests and the benchmark invoke
/// it with the records the emulator's stream holds.
pub async fn run_scan() -> ExitCode {
    let Some((_, services, on_lambda)) = start(&[Function::Scan]).await else { return ExitCode::FAILURE };
    let scans = services.scans.expect("the scan function's services scan");
    let result = if on_lambda {
        let handler = lambda_runtime::service_fn(|event: lambda_runtime::LambdaEvent<stream::Event>| {
            let scans = scans.clone();
            async move { Ok::<_, std::convert::Infallible>(stream::scan_batch(&scans, &event.payload).await) }
        });
        lambda_runtime::run(handler).await.map_err(|error| error.to_string())
    } else {
        let mut input = Vec::new();
        match std::io::Read::read_to_end(&mut std::io::stdin(), &mut input) {
            Err(error) => Err(format!("cannot read the event from stdin: {error}")),
            Ok(_) => match serde_json::from_slice::<stream::Event>(&input) {
                Err(error) => Err(format!("stdin is not a DynamoDB stream event: {error}")),
                Ok(event) => {
                    let answer = stream::scan_batch(&scans, &event).await;
                    println!("{}", serde_json::to_string(&answer).expect("the answer serializes"));
                    Ok(())
                }
            },
        }
    };
    exit_code(result)
}

/// The whole life of the advisories function's process: each invocation (EventBridge's daily schedule) downloads
/// the OSV exports `BERTH_ADVISORY_SOURCES` names and imports them as one snapshot, answering with the run's summary,
/// or with an error naming the sources that failed once the others are imported. Outside Lambda, one run, its summary
/// printed on stdout.
pub async fn run_advisories() -> ExitCode {
    let Some((_, services, on_lambda)) = start(&[Function::Advisories]).await else { return ExitCode::FAILURE };
    let scans = services.scans.expect("the advisories function's services scan");
    let sources = download::sources(std::env::var(download::SOURCES_VARIABLE).ok().as_deref());
    // A source that stalls fails on its own, leaving the run the time for the others.
    let client = reqwest::Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60));
    let http = match client.build() {
        Ok(http) => http,
        Err(error) => return exit_code(Err(format!("cannot make an HTTP client: {error}"))),
    };
    let result = if on_lambda {
        let handler = lambda_runtime::service_fn(|_: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (scans, http, sources) = (scans.clone(), http.clone(), sources.clone());
            async move { download::scheduled_import(&scans, &http, &sources).await }
        });
        lambda_runtime::run(handler).await.map_err(|error| error.to_string())
    } else {
        download::scheduled_import(&scans, &http, &sources)
            .await
            .map(|summary| println!("{}", serde_json::to_string(&summary).expect("the summary serializes")))
    };
    exit_code(result)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(variables: &[(&str, &str)], on_lambda: bool) -> Result<FunctionConfig, ConfigError> {
        let variables: HashMap<String, String> = variables.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        FunctionConfig::from_env(|name| variables.get(name).cloned(), on_lambda, &[Function::Blobs])
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let wrong =
            [("BERTH_PRESIGN_TTL_SECONDS", "3600"), ("PORT", "x"), ("BERTH_HOST", "localhost"), ("BERTH_PUBLIC_URL", "example.com")];
        let error = config(&wrong, false).unwrap_err();
        assert_eq!(error.0.len(), 7, "{error}");
        let expected = [
            "BERTH_BUCKET is not set",
            "BERTH_TABLE is not set",
            "BERTH_REGISTRY_NAME is not set",
            "BERTH_PRESIGN_TTL_SECONDS=3600",
            "PORT=x",
            "BERTH_HOST=localhost",
            "BERTH_PUBLIC_URL=",
        ];
        for expected in expected {
            assert!(error.to_string().contains(expected), "{error} should mention {expected}");
        }
    }

    #[test]
    fn the_tier_is_read_in_any_case_and_checked() {
        let required = [("BERTH_BUCKET", "b"), ("BERTH_TABLE", "t"), ("BERTH_REGISTRY_NAME", "reg")];
        assert_eq!(config(&required, true).unwrap().default_sku, None);
        assert_eq!(
            config(&[required[0], required[1], required[2], ("BERTH_SKU", "Premium")], true).unwrap().default_sku,
            Some(Sku::Premium)
        );
        let wrong = config(&[required[0], required[1], required[2], ("BERTH_SKU", "gold")], true).unwrap_err();
        assert!(wrong.to_string().contains("BERTH_SKU: unknown tier \"gold\""), "{wrong}");
    }

    #[test]
    fn defaults_follow_the_runtime() {
        let required = [("BERTH_BUCKET", "b"), ("BERTH_TABLE", "t"), ("BERTH_REGISTRY_NAME", "reg")];
        let local = config(&required, false).unwrap();
        assert_eq!((local.limits.max_request_bytes, local.port, local.aws.unwrap().presign_ttl), (None, 8080, Duration::from_secs(900)));
        assert_eq!(config(&required, true).unwrap().limits.max_request_bytes, Some(LAMBDA_MAX_REQUEST_BYTES));
        let tuned = config(
            &[required[0], required[1], required[2], ("BERTH_MAX_REQUEST_BYTES", "1000"), ("BERTH_PART_SIZE_BYTES", "10485760")],
            true,
        )
        .unwrap();
        assert_eq!((tuned.limits.max_request_bytes, tuned.aws.unwrap().limits.part_size), (Some(1000), 10 << 20));
    }

    #[test]
    fn only_the_token_function_reads_the_signing_key_and_only_the_others_the_bucket() {
        let variables =
            |name: &str| ["BERTH_TABLE", "BERTH_REGISTRY_NAME", "BERTH_SIGNING_KEY_SECRET"].contains(&name).then(|| "x".to_owned());
        let token = FunctionConfig::from_env(variables, true, &[Function::Token]).unwrap();
        assert!(token.aws.is_none());
        assert_eq!(token.signing_key_secret.as_deref(), Some("x"));
        let manifests = FunctionConfig::from_env(variables, true, &[Function::Manifests]).unwrap_err();
        assert!(manifests.to_string().contains("BERTH_BUCKET is not set"), "{manifests}");
        let no_secret =
            FunctionConfig::from_env(|name| (name != "BERTH_SIGNING_KEY_SECRET").then(|| "x".to_owned()), true, &[Function::Token]);
        assert!(no_secret.unwrap_err().to_string().contains("BERTH_SIGNING_KEY_SECRET is not set"));
        let bad_name = FunctionConfig::from_env(
            |name| Some(if name == "BERTH_REGISTRY_NAME" { "a:b".to_owned() } else { "x".to_owned() }),
            true,
            &[Function::Blobs],
        );
        assert!(bad_name.unwrap_err().to_string().contains("invalid registry name"));
    }

    #[test]
    fn the_token_function_checks_aws_logins_with_its_regional_sts() {
        let variables = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                let base =
                    [("BERTH_TABLE", "t"), ("BERTH_REGISTRY_NAME", "reg"), ("BERTH_SIGNING_KEY_SECRET", "s"), ("AWS_REGION", "eu-west-1")];
                base.iter().chain(extra).find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
            }
        };
        let regional = FunctionConfig::from_env(variables(&[]), true, &[Function::Token]).unwrap();
        assert_eq!(regional.external.sts_endpoint.unwrap().as_str(), "https://sts.eu-west-1.amazonaws.com/");
        let chosen =
            FunctionConfig::from_env(variables(&[("BERTH_STS_ENDPOINT", "http://127.0.0.1:4566")]), true, &[Function::Token]).unwrap();
        assert_eq!(chosen.external.sts_endpoint.unwrap().as_str(), "http://127.0.0.1:4566/");
        let manifests = FunctionConfig::from_env(variables(&[("BERTH_BUCKET", "b")]), true, &[Function::Manifests]).unwrap();
        assert!(manifests.external.sts_endpoint.is_none(), "only the token function checks logins");
        let wrong = FunctionConfig::from_env(variables(&[("BERTH_STS_ENDPOINT", "not a url")]), true, &[Function::Token]);
        assert!(wrong.unwrap_err().to_string().contains("BERTH_STS_ENDPOINT"));
    }
}
