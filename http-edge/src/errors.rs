//! Every error answer is `{"error": "<code>", "message": "<sentence>"}` ([`ErrorBody`]), even
//! the ones axum writes itself: unknown paths, wrong methods, path values that do not decode,
//! bodies of the wrong type, shape or size.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use loyalty_protocol::ErrorBody;
use serde::de::DeserializeOwned;

/// Rewritten bodies are short sentences; anything longer is cut here.
const MAX_REWRITTEN_BODY: usize = 4096;

/// The JSON error answer.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: code.to_owned(),
        message: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

/// The code of an error answer that has only a status.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "bad_json",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// The router's fallback: no route has this path.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The router's `method_not_allowed_fallback`: the path exists, the method does not (axum adds
/// the `Allow` header).
pub async fn method_not_allowed(request: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A JSON body's rejection as a status, a code and a sentence: 415 when it is not declared
/// `application/json`, 413 when too large, 400 otherwise.
pub fn json_rejection(rejection: &JsonRejection) -> (StatusCode, &'static str, String) {
    let status = rejection.status();
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "bad_json",
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        // A well-formed body of the wrong shape is as bad a request as a malformed one.
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    (status, code, rejection.body_text())
}

/// axum's `Path`, answering a value that does not decode (`%FF`) with 400 `bad_path`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(error_response(
                StatusCode::BAD_REQUEST,
                "bad_path",
                rejection.body_text(),
            )),
        }
    }
}

/// Middleware (`axum::middleware::from_fn(json_errors)`): an error answer that is not JSON
/// becomes one, keeping its status, headers and text. The net under every other rule here: a
/// rejection nobody mapped still reaches the client in the contract's shape. HTML error pages
/// are left alone: a handler wrote those for a person's browser (the agent's lane page).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_written_for_clients(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let rewritten = error_response(status, code_for_status(status), text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rewritten.into_body())
}

fn is_written_for_clients(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"))
}
