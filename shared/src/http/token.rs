//! The token function's endpoints: the version check every client starts with, and docker's token endpoint
//! (distribution's token spec): `GET` with Basic credentials and repeated `scope`s, and the OAuth2 `POST` form with
//! `grant_type=password|refresh_token` and one space-joined `scope`; and the exchange of identity proofs (OIDC, AWS IAM)
//! for a login.

use std::time::{Duration, UNIX_EPOCH};

use axum::{
    Json,
    body::Body,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

use super::{Call, header_value, routes::Endpoint};
use crate::{
    error::Error,
    identity::{
        LoginError, TokenService,
        access::Scope,
        directory::Login,
        sts::{CallerIdentityProof, REGISTRY_HEADER, StsError},
        tokens::Issued,
    },
};

/// The largest token request form read; real ones are a few hundred bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(super) async fn handle(tokens: Option<&TokenService>, endpoint: Endpoint, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    match (endpoint, tokens) {
        (Endpoint::ApiVersion, _) => Ok(api_version()),
        (Endpoint::Token, Some(tokens)) => Ok(token(tokens, call, body).await),
        (Endpoint::TokenExchange, Some(tokens)) => Ok(exchange(tokens, call, body).await),
        (other, _) => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET /v2/` — 200 tells a client it speaks to a registry implementing the distribution API (once its token checks out).
fn api_version() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    token: &'a str,
    access_token: &'a str,
    expires_in: u64,
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    scope: String,
}

/// What a token request asks: the credentials it carries, the scopes, and whether it wants a refresh token.
struct TokenRequest {
    credentials: Credentials,
    service: Option<String>,
    scopes: Vec<String>,
    offline: bool,
}

enum Credentials {
    None,
    Password { username: String, password: String },
    RefreshToken(String),
}

/// `GET|POST /token` (also `/oauth2/token`).
async fn token(tokens: &TokenService, call: &Call<'_>, body: Body) -> Response {
    let request = match read_request(call, body).await {
        Ok(request) => request,
        Err(message) => return refusal(StatusCode::BAD_REQUEST, "UNSUPPORTED", message),
    };
    let registry = tokens.directory().registry();
    if let Some(service) = request.service.as_deref().filter(|service| *service != registry) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("tokens for service {service} are not issued here; this registry is {registry}"),
        );
    }
    let source = call.source();
    let login = match &request.credentials {
        Credentials::None => tokens.anonymous_login().await,
        Credentials::Password { username, password } => tokens.password_login(username, password, &source).await,
        Credentials::RefreshToken(refresh_token) => tokens.refresh_login(refresh_token).await,
    };
    let login = match login {
        Ok(login) => login,
        Err(error) => return login_refused(error, &request, &source),
    };
    let scopes = Scope::parse_all(request.scopes.iter().map(String::as_str));
    // A refresh token is given for a login with credentials, never renewed by a refresh: a login lasts 3 hours.
    let offline = request.offline
        && matches!(request.credentials, Credentials::Password { ref username, .. } if username != crate::identity::directory::REFRESH_TOKEN_USERNAME);
    let grant = tokens.grant(&login, &scopes, offline);
    audit_issued(&login, &grant.access, &source);
    respond(&grant.access, grant.refresh.as_ref())
}

/// `GET /oauth2/exchange` — which identity proofs this registry takes, and for AWS where to sign them: the STS
/// endpoint and region the token service checks with, and the registry name the proof's signed header carries.
fn exchange_options(tokens: &TokenService) -> Response {
    let aws = tokens.sts().map(|sts| {
        serde_json::json!({"sts_endpoint": sts.endpoint().as_str(), "region": sts.region(), "signed_header": REGISTRY_HEADER, "registry": tokens.directory().registry()})
    });
    let grant_types: Vec<&str> =
        [(tokens.accepts_oidc(), "id_token"), (aws.is_some(), "aws_iam")].into_iter().filter_map(|(on, name)| on.then_some(name)).collect();
    Json(serde_json::json!({"grant_types": grant_types, "aws_iam": aws})).into_response()
}

/// `POST /oauth2/exchange` — ACR's exchange of an identity proof for a refresh token (a 3-hour login): an OIDC ID
/// token (`grant_type=id_token`, `id_token`) or a signed sts:GetCallerIdentity (`grant_type=aws_iam`,
/// `authorization`, `x_amz_date`, optional `x_amz_security_token`: its signature headers).
async fn exchange(tokens: &TokenService, call: &Call<'_>, body: Body) -> Response {
    if call.parts.method == Method::GET {
        return exchange_options(tokens);
    }
    let source = call.source();
    let form = match axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .ok()
        .and_then(|bytes| serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).ok())
    {
        Some(form) => form,
        None => return refusal(StatusCode::BAD_REQUEST, "UNSUPPORTED", "the exchange takes a URL-encoded form"),
    };
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let (kind, login) = match (field("grant_type").as_deref(), field("id_token")) {
        (Some("id_token"), Some(id_token)) => ("oidc", tokens.oidc_login(&id_token).await),
        (Some("aws_iam"), _) => match (field("authorization"), field("x_amz_date")) {
            (Some(authorization), Some(amz_date)) => {
                let proof = CallerIdentityProof { authorization, amz_date, security_token: field("x_amz_security_token") };
                ("aws", tokens.aws_login(&proof).await)
            }
            _ => return refusal(StatusCode::BAD_REQUEST, "UNSUPPORTED", "grant_type=aws_iam takes authorization and x_amz_date"),
        },
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "the exchange takes grant_type=id_token with an id_token, or grant_type=aws_iam",
            );
        }
    };
    match login {
        Ok(login) => {
            let refresh = tokens.refresh_token_for(&login);
            tracing::info!(target: "berth::audit", identity = %login.subject, source, jti = %refresh.claims.jti, outcome = "issued", "refresh token");
            let issued_at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(refresh.claims.iat)).to_string();
            let body = serde_json::json!({"refresh_token": refresh.token, "expires_in": refresh.claims.exp - refresh.claims.iat, "issued_at": issued_at});
            let mut response = Json(body).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, header_value("no-store"));
            response
        }
        Err(error) => {
            tracing::info!(target: "berth::audit", identity = kind, source, outcome = %error, "login refused");
            login_refusal(error)
        }
    }
}

fn respond(access: &Issued, refresh: Option<&Issued>) -> Response {
    let issued_at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(access.claims.iat)).to_string();
    let scope = access
        .claims
        .access
        .iter()
        .map(|entry| format!("{}:{}:{}", entry.kind, entry.name, entry.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ");
    let body = TokenResponse {
        token: &access.token,
        access_token: &access.token,
        expires_in: access.claims.exp - access.claims.iat,
        issued_at,
        refresh_token: refresh.map(|issued| issued.token.as_str()),
        scope,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header_value("no-store"));
    response
}

async fn read_request(call: &Call<'_>, body: Body) -> Result<TokenRequest, String> {
    if call.parts.method == Method::POST {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| format!("the token form is larger than {MAX_FORM_BYTES} bytes"))?;
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|error| format!("the token form is not a URL-encoded form: {error}"))?;
        let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let scopes = form.iter().filter(|(key, _)| key == "scope").map(|(_, value)| value.clone()).collect();
        let credentials = match field("grant_type").as_deref() {
            Some("password") => Credentials::Password {
                username: field("username").ok_or("grant_type=password needs username")?,
                password: field("password").ok_or("grant_type=password needs password")?,
            },
            Some("refresh_token") => {
                Credentials::RefreshToken(field("refresh_token").ok_or("grant_type=refresh_token needs refresh_token")?)
            }
            Some(other) => return Err(format!("unsupported grant_type {other}: expected password or refresh_token")),
            None => return Err("the token form needs grant_type".to_owned()),
        };
        return Ok(TokenRequest {
            credentials,
            service: field("service"),
            scopes,
            offline: field("access_type").as_deref() == Some("offline"),
        });
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(call.parts.uri.query().unwrap_or_default()).unwrap_or_default();
    let scopes = pairs.iter().filter(|(key, _)| key == "scope").map(|(_, value)| value.clone()).collect();
    let credentials = match call.header(header::AUTHORIZATION) {
        None => Credentials::None,
        Some(value) => basic_credentials(value).ok_or("the Authorization header is not valid Basic credentials")?,
    };
    Ok(TokenRequest {
        credentials,
        service: call.query("service"),
        scopes,
        offline: call.query("offline_token").as_deref() == Some("true"),
    })
}

fn basic_credentials(value: &str) -> Option<Credentials> {
    basic_pair(value).map(|(username, password)| Credentials::Password { username, password })
}

/// The user name and password of a `Basic` authorization.
pub(super) fn basic_pair(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// The answer to a failed login, logged as an audit line (never with the secret).
fn login_refused(error: LoginError, request: &TokenRequest, source: &str) -> Response {
    let identity = match &request.credentials {
        Credentials::Password { username, .. } => username.as_str(),
        Credentials::RefreshToken(_) => "refresh token",
        Credentials::None => "anonymous",
    };
    tracing::info!(target: "berth::audit", identity, source, outcome = %error, "login refused");
    login_refusal(error)
}

/// The answer to a refused login: 429 when rate-limited, else 401 saying why.
pub(super) fn login_refusal(error: LoginError) -> Response {
    match error {
        LoginError::TooManyFailures(wait) => {
            let mut response = refusal(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", error.to_string());
            response.headers_mut().insert(header::RETRY_AFTER, header_value(wait.as_secs().max(1)));
            response
        }
        LoginError::Directory(crate::identity::directory::DirectoryError::Store(store)) => Error::Store(store).into_response(),
        LoginError::Sts(StsError::Unavailable(why)) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("STS cannot be reached to check the AWS login, retry later: {why}"),
        ),
        other => refusal(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", other.to_string()),
    }
}

fn audit_issued(login: &Login, access: &Issued, source: &str) {
    let granted: Vec<String> =
        access.claims.access.iter().map(|entry| format!("{}:{}:{}", entry.kind, entry.name, entry.actions.join(","))).collect();
    tracing::info!(target: "berth::audit", identity = %login.subject, source, granted = ?granted, jti = %access.claims.jti, outcome = "issued", "token");
}

fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"errors": [{"code": code, "message": message.into(), "detail": null}]}))).into_response()
}
