//! `loyalty-hq import-members FILE`: sends a member file to HQ's import route as it is read,
//! so a file of millions of members never sits in memory.

use std::path::Path;

use futures_util::stream;
use tokio::io::AsyncReadExt;

use crate::http::ImportSummary;

/// Bytes read from the file and sent at a time.
const CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportClientError {
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("sending to {url}: {source} (rows HQ received whole before the failure may be saved; sending the file again replaces them, as a re-import does)")]
    Send { url: String, source: reqwest::Error },
    #[error("HQ answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("HQ's answer is not an import summary: {0}")]
    Answer(String),
}

/// The file's format from its name: `.csv` is CSV, anything else NDJSON.
pub fn content_type_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => "text/csv",
        _ => "application/x-ndjson",
    }
}

/// Streams `path` to `POST {base_url}/v1/admin/imports/members`.
pub async fn send_file(
    base_url: &str,
    admin_token: &str,
    path: &Path,
    content_type: &str,
) -> Result<ImportSummary, ImportClientError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| ImportClientError::File {
            path: path.display().to_string(),
            source,
        })?;
    let shown = path.display().to_string();
    let chunks = stream::try_unfold(file, move |mut file| {
        let shown = shown.clone();
        async move {
            let mut buf = vec![0; CHUNK];
            let n = file
                .read(&mut buf)
                .await
                .map_err(|source| ImportClientError::File {
                    path: shown,
                    source,
                })?;
            if n == 0 {
                return Ok::<_, ImportClientError>(None);
            }
            buf.truncate(n);
            Ok(Some((buf, file)))
        }
    });
    let url = format!(
        "{}/v1/admin/imports/members",
        base_url.trim_end_matches('/')
    );
    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(admin_token)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .map_err(|source| ImportClientError::Send {
            url: url.clone(),
            source,
        })?;
    let status = res.status();
    let body = res
        .text()
        .await
        .map_err(|source| ImportClientError::Send { url, source })?;
    if !status.is_success() {
        return Err(ImportClientError::Refused {
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|e| ImportClientError::Answer(e.to_string()))
}
