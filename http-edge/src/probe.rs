//! A real request to a server's own `/healthz` over loopback: proof that its accept loop
//! admits and answers, which no in-process check gives (a full descriptor table or a stuck
//! accept loop leaves every task but the server running).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer in time")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("answered `{0}`")]
    Status(String),
}

/// Where to reach a server listening on `listen`: a wildcard address is reached on loopback.
pub fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` on `addr`; Ok when the status line arrives within `timeout` and says 200.
/// A degraded component does not fail it: the probe asks whether the server answers at all.
pub async fn healthz(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    tokio::time::timeout(timeout, request(addr))
        .await
        .map_err(|_| ProbeError::Timeout)?
}

async fn request(addr: SocketAddr) -> Result<(), ProbeError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim().to_owned();
    if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(ProbeError::Status(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that accepts, reads the request and answers `answer` (or nothing).
    async fn server(answer: Option<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                    }
                    // Hold the connection open without a word, as a wedged server would.
                    None => std::mem::forget(s),
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_answering_server_passes_and_a_silent_or_failing_one_does_not() {
        let ok = server(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        let failing = server(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n")).await;
        let silent = server(None).await;
        let wait = Duration::from_millis(300);
        assert!(healthz(ok, wait).await.is_ok());
        assert!(matches!(
            healthz(failing, wait).await,
            Err(ProbeError::Status(line)) if line.contains("503")
        ));
        assert!(matches!(
            healthz(silent, wait).await,
            Err(ProbeError::Timeout)
        ));
    }

    #[test]
    fn a_wildcard_listener_is_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:7400".parse().expect("addr");
        assert_eq!(loopback(any), "127.0.0.1:7400".parse().expect("addr"));
        let one: SocketAddr = "192.0.2.7:7400".parse().expect("addr");
        assert_eq!(loopback(one), one);
    }
}
