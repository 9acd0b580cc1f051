//! The token function's endpoints: the version check every client starts with, and docker's token endpoint, which
//! until access control exists hands out tokens for anonymous access.

use std::time::SystemTime;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::routes::Endpoint;
use crate::error::Error;

/// Docker wants at least 60 s; an anonymous token grants nothing a request without one would not get.
const ANONYMOUS_TOKEN_SECONDS: u64 = 3600;
const ANONYMOUS_TOKEN: &str = "anonymous";

pub(super) fn handle(endpoint: Endpoint) -> Result<Response, Error> {
    match endpoint {
        Endpoint::ApiVersion => Ok(api_version()),
        Endpoint::Token => Ok(anonymous_token()),
        other => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET /v2/` — 200 tells a client it speaks to a registry implementing the distribution API.
fn api_version() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}

#[derive(Serialize)]
struct TokenResponse {
    token: &'static str,
    access_token: &'static str,
    expires_in: u64,
    issued_at: String,
}

/// `GET|POST /token` — docker's token endpoint (distribution's token spec): an anonymous token, since the registry
/// has no access control yet.
fn anonymous_token() -> Response {
    let issued_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    Json(TokenResponse { token: ANONYMOUS_TOKEN, access_token: ANONYMOUS_TOKEN, expires_in: ANONYMOUS_TOKEN_SECONDS, issued_at })
        .into_response()
}
