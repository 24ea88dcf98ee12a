//! An app QR's freshness is judged by HQ's clock, as gift expiries are: a store box whose clock
//! drifted ten minutes behind must not refuse every member's fresh code to spend (nor accept
//! stale ones). The skew is the one the last sync measured.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use loyalty_agent::checkout::Identifier;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{Ledger, MemberProfile, MemberRecord, PushAck};
use loyalty_agent::metrics::Metrics;
use loyalty_agent::scan::{qr, ScannedCode};
use std::sync::Arc;
use std::time::Duration;

fn token(key: &SigningKey, member: &str, issued: i64) -> String {
    qr::mint(key, member, issued, rand::random())
}

#[tokio::test]
async fn qr_freshness_uses_hq_corrected_time() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    ledger
        .import_members(vec![MemberRecord {
            member_id: "m1".into(),
            profile: MemberProfile {
                tier: None,
                segments: vec![],
                cards: vec![],
                qr_public_key: Some(STANDARD.encode(key.verifying_key().as_bytes())),
                proximity_key: None,
                display_name: None,
            },
        }])
        .await
        .unwrap();
    let identifier = Identifier {
        ledger: ledger.clone(),
        metrics: Arc::new(Metrics::new()),
        qr_max_age: Duration::from_secs(120),
    };
    let ten_minutes = 600;
    // The phone keeps network time: ten minutes ahead of this box.
    let phone_now = Utc::now().timestamp() + ten_minutes;
    let spend = |text: String| {
        let identifier = identifier.clone();
        async move {
            let code = ScannedCode::AppQr(qr::parse(&text).unwrap());
            identifier.identify(&code).await.unwrap().can_spend
        }
    };
    assert!(
        !spend(token(&key, "m1", phone_now)).await,
        "without a measured skew the box's own clock decides"
    );
    // A sync measured HQ ten minutes ahead.
    ledger
        .push_acked(PushAck {
            watermark: 0,
            rejected: vec![],
            skew_ms: Some(ten_minutes * 1000),
            at: Utc::now().to_rfc3339(),
        })
        .await
        .unwrap();
    assert!(
        spend(token(&key, "m1", phone_now)).await,
        "a fresh code by HQ's clock can spend"
    );
    assert!(
        !spend(token(&key, "m1", Utc::now().timestamp())).await,
        "a code ten minutes old by HQ's clock cannot, though the box's clock calls it fresh"
    );
}
