//! `POST /v1/admin/imports/members`: members in bulk, NDJSON or CSV, streamed. Not under
//! `/v1/admin/members/`, where `import` would shadow a member of that id.
//!
//! - Each row is the PUT's member (`member_id` plus the profile), checked with the PUT's rules;
//!   a refused row is counted and reported by line, the others go on.
//! - Rows are written [`BATCH`] at a time, each batch one transaction ([`Store::import_members`]),
//!   by one blocking task while the next batch is read: memory holds at most a few batches,
//!   whatever the upload's size.
//! - A re-import replaces, like the PUT; every member saved takes a change sequence number,
//!   so stores pull imported members through `/changes`, woken after each batch commits.
//! - An upload cut mid-way keeps the rows that arrived whole before the cut (committed), never
//!   part of a row; the client sees its connection fail and may send the file again.

mod rows;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use loyalty_http_edge::StreamedBody;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use rows::MAX_ROW_BYTES;
use rows::{Format, Row, Rows};

use super::admin::{check_id, check_profile};
use super::auth::require_admin;
use super::error::ApiError;
use super::AppState;
use crate::store::{MemberInput, Store};

/// Rows a transaction: large enough that the commit's fsync is a small part of it.
const BATCH: usize = 5_000;
/// An upload that sends nothing for this long is treated as cut (the body timeout's length).
const STALL: std::time::Duration = std::time::Duration::from_secs(30);
/// Refusals listed one by one in the summary; the rest are only counted.
const LISTED_REFUSALS: usize = 100;

/// What an import did.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Rows saved (a member created or replaced).
    pub accepted: u64,
    /// Rows refused; nothing of them was saved.
    pub refused: u64,
    /// Refused rows by reason (`bad_row`, `bad_id`, `bad_card`, `bad_key`, `row_too_large`).
    pub refused_by_reason: BTreeMap<String, u64>,
    /// The first 100 refusals, in file order.
    pub refusals: Vec<ImportRefusal>,
}

/// A refused row.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportRefusal {
    /// The line of the file the row starts on (1 is the first line; a CSV header is line 1).
    pub line: u64,
    pub member_id: Option<String>,
    /// The reason's code.
    pub error: String,
    pub message: String,
}

impl ImportSummary {
    fn refuse(&mut self, line: u64, refusal: rows::Refusal) {
        self.refused += 1;
        *self
            .refused_by_reason
            .entry(refusal.code.to_owned())
            .or_default() += 1;
        if self.refusals.len() < LISTED_REFUSALS {
            self.refusals.push(ImportRefusal {
                line,
                member_id: refusal.member_id,
                error: refusal.code.to_owned(),
                message: refusal.message,
            });
        }
    }
}

fn format_of(request: &Request) -> Result<Format, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/x-ndjson (one member a line) or text/csv (a header row, then one member a row)",
        )),
    }
}

/// The PUT's rules on a parsed row.
fn check(row: Row) -> Result<(String, MemberInput), (u64, rows::Refusal)> {
    let line = row.line;
    let (id, profile) = row.parsed.map_err(|r| (line, r))?;
    let refusal = |code, e: ApiError, id: &str| rows::Refusal {
        code,
        member_id: Some(id.to_owned()),
        message: e.message,
    };
    check_id("member", &id).map_err(|e| (line, refusal("bad_id", e, &id)))?;
    let profile = check_profile(profile).map_err(|e| (line, refusal(e.code, e, &id)))?;
    Ok((id, profile))
}

/// Writes batches as they come; answers how many rows it committed.
fn write_batches(
    store: Arc<dyn Store>,
    hub: Arc<crate::feed_hub::FeedHub>,
    mut batches: mpsc::Receiver<Vec<(String, MemberInput)>>,
) -> Result<u64, crate::store::StoreError> {
    let mut committed = 0u64;
    while let Some(batch) = batches.blocking_recv() {
        store.import_members(&batch)?;
        committed += batch.len() as u64;
        // Committed: the stores' waiting pulls read these members now.
        hub.changes_committed();
    }
    Ok(committed)
}

/// `POST /v1/admin/imports/members`.
#[utoipa::path(post, path = "/v1/admin/imports/members", tag = "admin", security(("admin" = [])),
    request_body(description = "NDJSON (`application/x-ndjson`): one member a line, the PUT's body plus `member_id`. CSV (`text/csv`): a header row naming columns among `member_id` (required), `tier`, `segments`, `cards`, `qr_public_key`, `proximity_key`, `display_name`, then one member a row; lists `;`-separated. A row longer than 64 KiB is refused.",
        content((String = "application/x-ndjson"), (String = "text/csv"))),
    responses((status = 200, description = "The import's summary: rows saved, rows refused and why", body = ImportSummary), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn import_members(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<ImportSummary>, ApiError> {
    require_admin(&state, request.headers())?;
    let format = format_of(&request)?;
    if let Some(streamed) = request.extensions().get::<StreamedBody>() {
        // An authenticated import of a million rows takes longer than the body timeout.
        streamed.answering();
    }
    let started = std::time::Instant::now();
    let mut body = request.into_body().into_data_stream();
    let (tx, rx) = mpsc::channel(1);
    let writer = {
        let (store, hub) = (state.store.clone(), state.hub.clone());
        tokio::task::spawn_blocking(move || write_batches(store, hub, rx))
    };
    let mut rows = Rows::new(format);
    let mut summary = ImportSummary::default();
    let mut parsed = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut outcome: Result<(), ApiError> = Ok(());
    let mut writer_gone = false;
    loop {
        // Out of the body timeout, a stalled upload still ends: a pause this long is a cut.
        let next = tokio::time::timeout(STALL, body.next())
            .await
            .unwrap_or_else(|_| Some(Err(axum::Error::new("no byte for 30 s"))));
        let ended = match next {
            Some(Ok(chunk)) => rows.feed(&chunk, &mut parsed).map(|()| false),
            Some(Err(e)) => {
                // Cut mid-way: the rows that arrived whole are kept; the partial one is not.
                tracing::warn!(error = %e, accepted = summary.accepted + batch.len() as u64, "Member import cut mid-way; keeping the whole rows received.");
                outcome = Err(ApiError::bad_request(format!("the upload was cut: {e}")));
                Ok(true)
            }
            None => rows.finish(&mut parsed).map(|()| true),
        };
        let ended = match ended {
            Ok(ended) => ended,
            Err(e) => {
                outcome = Err(ApiError::bad_request(e.to_string()));
                true
            }
        };
        for row in parsed.drain(..) {
            match check(row) {
                Ok(member) => batch.push(member),
                Err((line, refusal)) => summary.refuse(line, refusal),
            }
            if batch.len() >= BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                summary.accepted += full.len() as u64;
                if tx.send(full).await.is_err() {
                    writer_gone = true;
                    break;
                }
            }
        }
        if ended || writer_gone {
            break;
        }
    }
    if !batch.is_empty() && !writer_gone {
        summary.accepted += batch.len() as u64;
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let committed = writer.await.map_err(|e| {
        tracing::error!(error = %e, "Member import's writer failed.");
        ApiError::internal()
    })?;
    let committed = committed.map_err(|e| {
        tracing::error!(error = %e, "Member import stopped: a batch could not be saved.");
        ApiError::internal()
    })?;
    summary.accepted = committed;
    state
        .metrics
        .import(summary.accepted, &summary.refused_by_reason);
    outcome?;
    tracing::info!(
        accepted = summary.accepted,
        refused = summary.refused,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Imported members."
    );
    Ok(Json(summary))
}
