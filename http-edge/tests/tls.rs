//! `serve_tls`: the edge's limits hold for HTTPS too. A connection that never finishes its TLS
//! handshake is closed at the header timeout and shed at the cap, like a half-sent request,
//! so stalled handshakes cannot lock clients out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use loyalty_http_edge::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use loyalty_http_edge::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use loyalty_http_edge::{serve_tls, Limits};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Pki {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn pki() -> Pki {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Pki {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

async fn server(limits: Limits, pki: &Pki) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/x", get(|| async { "ok" }));
    tokio::spawn(serve_tls(
        listener,
        router,
        limits,
        pki.server.clone(),
        std::future::pending(),
    ));
    addr
}

/// `GET /x` over TLS: the status line.
async fn get_x(addr: std::net::SocketAddr, pki: &Pki) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::from(pki.client.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// How long until the server closes `stream`, which sends nothing.
async fn closed_after(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
        _ => None,
    }
}

#[tokio::test]
async fn https_is_answered_and_a_stalled_handshake_is_closed_at_the_header_timeout() {
    let pki = pki();
    let addr = server(
        Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        &pki,
    )
    .await;
    assert_eq!(get_x(addr, &pki).await, "HTTP/1.1 200 OK");
    let stalled = TcpStream::connect(addr).await.unwrap();
    let closed = closed_after(stalled, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(2)),
        "a connection without a handshake stayed open: {closed:?}"
    );
}

#[tokio::test]
async fn at_the_cap_a_stalled_handshake_is_shed_for_a_real_client() {
    let pki = pki();
    let addr = server(
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
        &pki,
    )
    .await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), get_x(addr, &pki))
        .await
        .expect("the real client was locked out");
    assert_eq!(answered, "HTTP/1.1 200 OK");
}
