//! HQ serving HTTPS itself (hq.toml `[tls]`): a client that trusts the chain's own CA syncs
//! over it; plain HTTP and clients that do not trust the CA get nowhere.

use std::path::PathBuf;

use loyalty_hq::config::RawTls;
use loyalty_sim::hq::LocalHq;
use loyalty_sim::test_ca::TestCa;
use serde_json::json;

const ADMIN: &str = "tls-admin-token-0123456789";

async fn https_hq(dir: &tempfile::TempDir) -> (LocalHq, TestCa) {
    let ca = TestCa::write(dir.path(), &["localhost", "127.0.0.1"]).unwrap();
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    let db = loyalty_sim::pg::test_database(dir.path()).unwrap();
    let hq = LocalHq::start("127.0.0.1:0".parse().unwrap(), &db, ADMIN, |raw| {
        raw.tls = Some(RawTls {
            cert: Some(cert),
            key: Some(key),
        })
    })
    .await
    .unwrap()
    .trusting(&std::fs::read(&ca.ca).unwrap())
    .unwrap();
    (hq, ca)
}

fn trusting(ca: &PathBuf) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_store_that_trusts_the_chains_ca_pulls_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, ca) = https_hq(&dir).await;
    assert!(hq.url.starts_with("https://127.0.0.1:"), "{}", hq.url);
    let (status, _) = hq
        .admin_put("/v1/admin/stores/s1", json!({"token": "s1-token-secret"}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    hq.admin_put("/v1/admin/members/carla", json!({"tier": "gold"}))
        .await
        .unwrap();

    let answer = trusting(&ca.ca)
        .get(format!("{}/v1/stores/s1/changes", hq.url))
        .bearer_auth("s1-token-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let page: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(page["changes"][0]["member_id"], "carla", "{page}");

    // By name too: the certificate names localhost.
    let port = hq.url.rsplit(':').next().unwrap();
    let by_name = trusting(&ca.ca)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.status(), 200);
    hq.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_and_clients_without_the_ca_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, _ca) = https_hq(&dir).await;
    let plain = hq.url.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");

    let untrusting = reqwest::Client::new()
        .get(format!("{}/healthz", hq.url))
        .send()
        .await
        .unwrap_err();
    let why = format!("{untrusting:?}");
    assert!(why.contains("UnknownIssuer"), "{why}");

    // HQ still answers the ones that trust it after those failed handshakes.
    let (status, _) = hq.admin_get("/v1/admin/reconciliation").await.unwrap();
    assert_eq!(status, 200);
    hq.stop().await.unwrap();
}
