//! The wire form of errors: each domain error's OCI code and HTTP status, in the spec's `{"errors": [...]}` body.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{header_value, upload_range};
use crate::{error::Error, registry::REQUEST_BODY, store::StoreError};

/// What a client hears when one request carries more than the deployment takes (a Lambda function's payload).
const REQUEST_LIMIT_ADVICE: &str = ": a registry function on AWS Lambda takes at most that much per request (Lambda's 6 MB payload \
     limit). Upload in chunks no larger than the limit (PATCH with Content-Range), or deploy the registry with \
     UploadService=Container (its upload service takes requests of any size), or use `berth serve`";

#[derive(Serialize)]
struct ErrorBody {
    errors: [ErrorEntry; 1],
}

#[derive(Serialize)]
struct ErrorEntry {
    code: &'static str,
    message: String,
    detail: serde_json::Value,
}

impl Error {
    /// The OCI error code and HTTP status this error is reported with.
    pub fn wire(&self) -> (&'static str, StatusCode) {
        match self {
            Self::NameInvalid(_) => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            Self::NameUnknown(_) => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
            Self::TagInvalid(_) | Self::ManifestInvalid(_) => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            Self::DigestInvalid(_) | Self::DigestMismatch { .. } => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            Self::ManifestUnknown(_) => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            Self::ManifestBlobUnknown { .. } => ("MANIFEST_BLOB_UNKNOWN", StatusCode::BAD_REQUEST),
            Self::BlobUnknown(_) => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            Self::BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
            Self::BlobUploadInvalid(_) => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            Self::ChunkOutOfOrder { .. } => ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
            Self::RangeNotSatisfiable { .. } => ("UNSUPPORTED", StatusCode::RANGE_NOT_SATISFIABLE),
            Self::TooLarge { .. } => ("SIZE_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
            Self::PaginationInvalid(_) => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
            Self::EndpointUnknown(_) => ("UNSUPPORTED", StatusCode::NOT_FOUND),
            Self::Unsupported(_) => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            Self::Denied(_) => ("DENIED", StatusCode::FORBIDDEN),
            // The management API's code for a malformed request, as its identity endpoints answer.
            Self::InvalidRequest(_) => ("INVALID_REQUEST", StatusCode::BAD_REQUEST),
            // A race the store could not settle in time: nothing changed, and the same request can succeed shortly.
            Self::Store(StoreError::Busy(_) | StoreError::Conflict) => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
            Self::Store(_) => ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    fn detail(&self) -> serde_json::Value {
        match self {
            Self::DigestMismatch { expected, actual } => serde_json::json!({ "expected": expected, "actual": actual }),
            Self::TooLarge { size, limit, .. } => serde_json::json!({ "size": size, "limit": limit }),
            Self::ChunkOutOfOrder { uploaded, start } => serde_json::json!({ "uploaded": uploaded, "start": start }),
            _ => serde_json::Value::Null,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.wire();
        let message = match &self {
            Self::Store(error @ (StoreError::Busy(_) | StoreError::Conflict)) => {
                tracing::info!(%error, "request lost a race in storage");
                "the registry is busy with concurrent changes to the same items; retry shortly".to_owned()
            }
            // Storage failures are logged once here and never described to clients.
            Self::Store(error) => {
                tracing::error!(%error, "request failed in storage");
                "internal storage error".to_owned()
            }
            // Only Lambda caps a request below what a blob may be; the edge tells the client how to get past it.
            Self::TooLarge { what: REQUEST_BODY, .. } => format!("{self}{REQUEST_LIMIT_ADVICE}"),
            other => other.to_string(),
        };
        let body = ErrorBody { errors: [ErrorEntry { code, message, detail: self.detail() }] };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::ChunkOutOfOrder { uploaded, .. } => {
                headers.insert(header::RANGE, upload_range(uploaded));
            }
            Self::RangeNotSatisfiable { size } => {
                headers.insert(header::CONTENT_RANGE, header_value(format!("bytes */{size}")));
            }
            Self::Store(StoreError::Busy(_) | StoreError::Conflict) => {
                headers.insert(header::RETRY_AFTER, header_value(1));
            }
            _ => {}
        }
        response
    }
}
