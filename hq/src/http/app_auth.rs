//! The member app's signature: `Authorization: LE-App <member>.<unix>.<nonce>.<signature>`.
//!
//! The signature is Ed25519, by a key HQ holds for the member (the phone's app key, HQ's
//! `qr_public_key`, or one a browser enrolled), over
//! `LE-APP1\n<METHOD>\n<path>\n<member>.<unix>.<nonce>` (`loyalty_protocol::app`). That text can never be a checkout QR's
//! (those sign `LE1.<member>.<issued>.<nonce>`), so a QR does not log an app in and an app
//! signature is no QR; method and path are signed, so a signature opens one request only.
//! `unix` must be within `max_age` of HQ's clock and each nonce is taken once (stored until
//! the signature would have expired anyway), so a captured header cannot be replayed.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};

use super::error::{blocking, ApiError};
use super::AppState;

use loyalty_protocol::app::dot_fields;
use loyalty_protocol::{app_signed_text as signed_text, APP_AUTH_SCHEME as SCHEME};

/// A parsed header, not yet verified.
struct Claim<'a> {
    member: &'a str,
    unix: i64,
    nonce: &'a str,
    signature: Signature,
}

fn bad(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", message)
}

fn parse(value: &str) -> Result<Claim<'_>, ApiError> {
    let Some([member, unix, nonce, sig]) = dot_fields::<4>(value) else {
        return Err(bad(
            "the app signature must be <member>.<unix>.<nonce>.<signature>",
        ));
    };
    let unix = unix
        .parse::<i64>()
        .map_err(|_| bad("the signature's time is not Unix seconds"))?;
    let nonce_ok = URL_SAFE_NO_PAD
        .decode(nonce)
        .is_ok_and(|n| (16..=64).contains(&n.len()));
    if !nonce_ok {
        return Err(bad("the nonce must be 16 to 64 bytes, base64url"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| bad("the signature must be 64 bytes, base64url"))?;
    Ok(Claim {
        member,
        unix,
        nonce,
        signature: Signature::from_bytes(&sig),
    })
}

/// A public key as HQ stores it: 32 bytes, base64 (standard or URL-safe).
pub fn verifying_key(text: &str) -> Option<VerifyingKey> {
    let bytes = STANDARD
        .decode(text.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
        .ok()?;
    VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes).ok()?).ok()
}

/// Checks the request's app signature and that it is `member`'s; answers 401 (missing, forged,
/// expired, replayed) or 403 (another member's signature).
pub async fn require_member(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    member: &str,
) -> Result<(), ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(SCHEME))
        .and_then(|v| v.strip_prefix(' '))
    else {
        return Err(ApiError::unauthorized(format!(
            "missing Authorization: {SCHEME} <member>.<unix>.<nonce>.<signature>"
        )));
    };
    let claim = parse(value.trim())?;
    let now = chrono::Utc::now().timestamp();
    let max_age = state.app.signature_max_age_secs;
    if (now - claim.unix).abs() > max_age {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_expired",
            format!(
                "the signature was made at {}, {} s from HQ's time; sign each request afresh (at most {max_age} s apart)",
                claim.unix,
                now - claim.unix
            ),
        ));
    }
    let st = state.clone();
    let signer = claim.member.to_owned();
    let keys = blocking(move || Ok(st.store.app_keys(&signer)?)).await?;
    let text = signed_text(method, path, claim.member, claim.unix, claim.nonce);
    let verified = keys.unwrap_or_default().iter().any(|k| {
        verifying_key(k)
            .is_some_and(|key| key.verify_strict(text.as_bytes(), &claim.signature).is_ok())
    });
    if !verified {
        tracing::warn!(member = %claim.member, path = %path, "App signature does not verify.");
        return Err(bad(
            "the signature does not verify with any key HQ holds for that member",
        ));
    }
    if claim.member != member {
        tracing::warn!(signer = %claim.member, asked = %member, "App asked for another member's data.");
        return Err(ApiError::forbidden(format!(
            "this signature is {}'s; a member sees only their own data",
            claim.member
        )));
    }
    let st = state.clone();
    let (m, nonce) = (claim.member.to_owned(), claim.nonce.to_owned());
    let expires_ms = (claim.unix + max_age + 1).saturating_mul(1000);
    let fresh = blocking(move || Ok(st.store.use_app_nonce(&m, &nonce, expires_ms)?)).await?;
    if !fresh {
        tracing::warn!(member = %member, "App signature replayed.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_replayed",
            "this signature's nonce was already used: sign each request afresh",
        ));
    }
    Ok(())
}
