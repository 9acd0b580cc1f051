//! The token function's endpoints. Until access control exists it answers the version check every client starts with.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::routes::Endpoint;
use crate::error::Error;

pub(super) fn handle(endpoint: Endpoint) -> Result<Response, Error> {
    match endpoint {
        Endpoint::ApiVersion => Ok(api_version()),
        other => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET /v2/` — 200 tells a client it speaks to a registry implementing the distribution API.
fn api_version() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}
