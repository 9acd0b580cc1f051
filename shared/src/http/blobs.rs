//! The blobs function's endpoints: blob downloads and deletes, and the upload protocol.

use axum::{
    body::Body,
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::ranges::{chunk_span, parse_range};
use super::{CONTENT_DIGEST, Call, UPLOAD_UUID, header_value, routes::Endpoint, upload_range};
use crate::{
    identity::access::Action,
    error::Error,
    oci::{Digest, RepositoryName},
    registry::{BlobDownload, Blobs, Chunk},
    store::UploadSession,
};

const CHUNK_MIN_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-min-length");
/// Not in the spec yet: the most one request may carry where the runtime caps it (Lambda), for clients that size
/// their chunks.
const CHUNK_MAX_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-max-length");

pub(super) async fn handle(blobs: &Blobs, endpoint: Endpoint, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    match endpoint {
        Endpoint::GetBlob { name, digest, head } => get_blob(blobs, &name, &digest, head, call).await,
        Endpoint::DeleteBlob { name, digest } => delete_blob(blobs, &name, &digest).await,
        Endpoint::StartUpload { name } => start_upload(blobs, &name, call, body).await,
        Endpoint::UploadStatus { name, id } => upload_status(blobs, &name, &id, call).await,
        Endpoint::PatchUpload { name, id } => patch_upload(blobs, &name, &id, call, body).await,
        Endpoint::FinishUpload { name, id } => finish_upload(blobs, &name, &id, call, body).await,
        Endpoint::CancelUpload { name, id } => cancel_upload(blobs, &name, &id).await,
        other => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET|HEAD /v2/<name>/blobs/<digest>` — the blob (or the `Range` asked for, 206), or a 307 to the backend's URL.
async fn get_blob(blobs: &Blobs, name: &RepositoryName, digest: &Digest, head: bool, call: &Call<'_>) -> Result<Response, Error> {
    let blob = blobs.linked(name, digest).await?;
    let size = blob.size;
    let range = match call.header(header::RANGE) {
        Some(range) if !head => parse_range(range, size)?,
        _ => None,
    };
    let mut response = if head {
        StatusCode::OK.into_response()
    } else {
        match blobs.download(digest, &blob, range).await? {
            BlobDownload::Redirect(url) => {
                return Ok((
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, header_value(url)), (CONTENT_DIGEST, header_value(digest))],
                )
                    .into_response());
            }
            BlobDownload::Stream(bytes) => Body::from_stream(bytes).into_response(),
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header_value("application/octet-stream"));
    headers.insert(header::ACCEPT_RANGES, header_value("bytes"));
    headers.insert(CONTENT_DIGEST, header_value(digest));
    headers.insert(header::ETAG, header_value(format!("\"{digest}\"")));
    match range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            response.headers_mut().insert(header::CONTENT_LENGTH, header_value(range.len()));
            response.headers_mut().insert(header::CONTENT_RANGE, header_value(format!("bytes {}-{}/{size}", range.first, range.last)));
        }
        None => {
            response.headers_mut().insert(header::CONTENT_LENGTH, header_value(size));
        }
    }
    Ok(response)
}

/// `DELETE /v2/<name>/blobs/<digest>` — unlinks the blob from the repository; 202.
async fn delete_blob(blobs: &Blobs, name: &RepositoryName, digest: &Digest) -> Result<Response, Error> {
    blobs.delete(name, digest).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /v2/<name>/blobs/uploads/` — `?mount=<digest>&from=<repo>` links a blob from another repository (201, or
/// 202 with a new session when it cannot); `?digest=<digest>` takes the whole blob in this request (201); otherwise
/// opens an upload session (202).
async fn start_upload(blobs: &Blobs, name: &RepositoryName, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    if let Some(mount) = call.query("mount") {
        // A mount the registry cannot make (an invalid or missing `from` or digest, or a source the caller may not
        // pull from) falls back to an upload session, as the spec asks.
        let source = call.query("from").and_then(|from| RepositoryName::parse(&from).ok());
        if let (Ok(digest), Some(from)) = (Digest::parse(&mount), source)
            && call.granted.allows_repository(&from, Action::Pull)
            && blobs.mount(name, &digest, &from).await?
        {
            return Ok(blob_created(call, name, &digest));
        }
    } else if let Some(digest) = call.query("digest") {
        let digest = Digest::parse(&digest)?;
        blobs.upload_whole(name, &digest, chunk(call, body)?).await?;
        return Ok(blob_created(call, name, &digest));
    }
    let session = blobs.start_upload(name).await?;
    let mut response = upload_progress(call, StatusCode::ACCEPTED, &session);
    if let Some(min) = blobs.chunk_min_length() {
        response.headers_mut().insert(CHUNK_MIN_LENGTH, header_value(min));
    }
    if let Some(max) = blobs.max_request_bytes() {
        response.headers_mut().insert(CHUNK_MAX_LENGTH, header_value(max));
    }
    Ok(response)
}

/// `GET /v2/<name>/blobs/uploads/<id>` — where the upload stands: 204 with `Range`.
async fn upload_status(blobs: &Blobs, name: &RepositoryName, id: &str, call: &Call<'_>) -> Result<Response, Error> {
    Ok(upload_progress(call, StatusCode::NO_CONTENT, &blobs.upload(name, id).await?))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>` — appends a chunk (`Content-Range` must continue where the upload stands,
/// else 416); a body without `Content-Range` is streamed whole. 202 with the new `Range`.
async fn patch_upload(blobs: &Blobs, name: &RepositoryName, id: &str, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    let session = blobs.append(name, id, chunk(call, body)?).await?;
    Ok(upload_progress(call, StatusCode::ACCEPTED, &session))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=<digest>` — closes the upload, with an optional last chunk; the blob
/// appears once its digest is verified and it is stored. 201.
async fn finish_upload(blobs: &Blobs, name: &RepositoryName, id: &str, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    let digest = call.query("digest").ok_or_else(|| Error::DigestInvalid("the digest query parameter is required".into()))?;
    let digest = Digest::parse(&digest)?;
    let last_chunk = match call.content_length()? {
        Some(0) => None,
        _ => Some(chunk(call, body)?),
    };
    blobs.finish(name, id, &digest, last_chunk).await?;
    Ok(blob_created(call, name, &digest))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>` — abandons the upload and its bytes; 204.
async fn cancel_upload(blobs: &Blobs, name: &RepositoryName, id: &str) -> Result<Response, Error> {
    blobs.cancel(name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The chunk a request body carries, with what `Content-Range` and `Content-Length` say of it.
fn chunk(call: &Call<'_>, body: Body) -> Result<Chunk, Error> {
    let span = chunk_span(call.header(header::CONTENT_RANGE), call.content_length()?)?;
    Ok(Chunk { start: span.start, length: span.length, data: super::body_stream(body) })
}

fn upload_progress(call: &Call<'_>, status: StatusCode, session: &UploadSession) -> Response {
    (
        status,
        [
            (header::LOCATION, header_value(call.url(&format!("/v2/{}/blobs/uploads/{}", session.repository, session.id)))),
            (header::RANGE, upload_range(session.size)),
            (UPLOAD_UUID, header_value(&session.id)),
            (header::CONTENT_LENGTH, header_value(0)),
        ],
    )
        .into_response()
}

fn blob_created(call: &Call<'_>, name: &RepositoryName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, header_value(call.url(&format!("/v2/{name}/blobs/{digest}")))), (CONTENT_DIGEST, header_value(digest))],
    )
        .into_response()
}
