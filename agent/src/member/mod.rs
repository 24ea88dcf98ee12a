//! The reference member client: what a member's phone does with HQ, for integrators and the
//! demo (`loyalty-agent member ...`). It holds the member's app key, shows the current checkout
//! QR token, signs its requests to HQ's member API (`loyalty_protocol::app`) and follows the
//! live feed.

pub mod feed;
pub mod key;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::Value;

pub use feed::FeedItem;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    #[error("HQ could not be reached: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HQ answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("HQ's answer makes no sense: {0}")]
    Garbage(String),
    #[error("the feed ended")]
    FeedEnded,
}

/// A member's phone talking to HQ.
#[derive(Clone)]
pub struct MemberClient {
    http: reqwest::Client,
    hq: String,
    member: String,
    key: SigningKey,
}

impl MemberClient {
    /// `hq` is HQ's base URL (`http://127.0.0.1:7500`).
    pub fn new(hq: &str, member: &str, key: SigningKey) -> Result<Self, MemberError> {
        Ok(MemberClient {
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()?,
            hq: hq.trim_end_matches('/').to_owned(),
            member: member.to_owned(),
            key,
        })
    }

    pub fn member(&self) -> &str {
        &self.member
    }

    /// The checkout QR token to show at a lane now (`LE1.<member>.<issued>.<nonce>.<sig>`).
    pub fn checkout_qr(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        crate::scan::qr::mint(&self.key, &self.member, now, rand::random())
    }

    /// `Authorization` for one request, signed now with a fresh nonce.
    pub fn authorization(&self, method: &str, path: &str) -> String {
        let unix = chrono::Utc::now().timestamp();
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let text = loyalty_protocol::app_signed_text(method, path, &self.member, unix, &nonce);
        let signature = self.key.sign(text.as_bytes());
        format!(
            "{} {}.{unix}.{nonce}.{}",
            loyalty_protocol::APP_AUTH_SCHEME,
            self.member,
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    fn path(&self, what: &str) -> String {
        format!("/v1/app/members/{}/{what}", self.member)
    }

    /// `GET` of `profile`, `gifts` or `history` (with an optional query such as `?limit=5`).
    pub async fn get(&self, what: &str, query: &str) -> Result<Value, MemberError> {
        let path = self.path(what);
        let res = self
            .http
            .get(format!("{}{path}{query}", self.hq))
            .header("authorization", self.authorization("GET", &path))
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await?;
        let status = res.status().as_u16();
        let body: Value = res
            .json()
            .await
            .map_err(|e| MemberError::Garbage(e.to_string()))?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        Ok(body)
    }

    /// Follows the live feed from after `last_id` (`None`: from now), calling `on_item` for
    /// each item as it arrives, until HQ ends the stream or the connection fails.
    pub async fn watch(
        &self,
        last_id: Option<i64>,
        mut on_item: impl FnMut(FeedItem),
    ) -> Result<(), MemberError> {
        let path = self.path("feed");
        let mut req = self
            .http
            .get(format!("{}{path}", self.hq))
            .header("authorization", self.authorization("GET", &path))
            .header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let mut res = req.send().await?;
        let status = res.status().as_u16();
        if status != 200 {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            return Err(refused(status, &body));
        }
        let mut parser = feed::Parser::default();
        while let Some(chunk) = res.chunk().await? {
            for item in parser.push(&chunk) {
                on_item(item);
            }
        }
        Err(MemberError::FeedEnded)
    }
}

fn refused(status: u16, body: &Value) -> MemberError {
    MemberError::Refused {
        status,
        code: body["error"].as_str().unwrap_or("?").to_owned(),
        message: body["message"].as_str().unwrap_or("").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::qr;

    /// The app's request signature and the checkout QR sign different texts: neither passes
    /// for the other, even made by the same key for the same member.
    #[test]
    fn an_app_signature_is_no_checkout_qr_and_a_qr_is_no_app_signature() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let client = MemberClient::new("http://hq", "carla", key.clone()).unwrap();
        let good = qr::parse(&client.checkout_qr()).unwrap();
        assert!(good.verify(&key.verifying_key()).is_ok());

        // An app signature's parts, laid out as a QR token.
        let auth = client.authorization("GET", "/v1/app/members/carla/profile");
        let parts: Vec<&str> = auth.trim_start_matches("LE-App ").split('.').collect();
        let as_qr = format!("LE1.carla.{}.{}.{}", parts[1], parts[2], parts[3]);
        let verdict = qr::parse(&as_qr).and_then(|t| t.verify(&key.verifying_key()));
        assert!(verdict.is_err(), "an app signature must not pass as a QR");

        // A QR's signature checked as an app signature's text.
        let token = client.checkout_qr();
        let p: Vec<&str> = token.split('.').collect();
        let sig = ed25519_dalek::Signature::from_bytes(
            &URL_SAFE_NO_PAD.decode(p[4]).unwrap().try_into().unwrap(),
        );
        let unix: i64 = p[2].parse().unwrap();
        for path in [
            "/v1/app/members/carla/profile",
            "/v1/app/members/carla/feed",
        ] {
            let text = loyalty_protocol::app_signed_text("GET", path, "carla", unix, p[3]);
            assert!(
                key.verifying_key()
                    .verify_strict(text.as_bytes(), &sig)
                    .is_err(),
                "a QR must not pass as an app signature"
            );
        }
    }
}
