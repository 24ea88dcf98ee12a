//! The accept loop: every connection admitted through the [`Registry`], served by hyper's
//! HTTP/1 with axum's router, closed on its phase's timeout, shed at the cap, drained on
//! shutdown.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, warn};

use crate::body::{RequestBody, ResponseBody, StreamedBody};
use crate::io::WatchedStream;
use crate::limits::Limits;
use crate::registry::{Admission, Conn, Phase, Registry};

/// How often deadlines are checked: timeouts are precise to this much.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// How long `accept` rests after an error other than running out of descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, closes connections that have not sent a complete request, and waits for the
/// answers in progress (a lane page's live feed ends with the app's own shutdown signal).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_on(listener, router, limits, None, shutdown).await
}

/// [`serve`] over HTTPS with `tls` (rustls). A connection's TLS handshake counts against its
/// header timeout and its place under the cap, like a half-sent request: a client that
/// opens a connection and never finishes the handshake is closed and can be shed.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    serve_on(listener, router, limits, Some(acceptor), shutdown).await
}

async fn serve_on(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Registry::new(limits));
    debug!(
        max_connections = registry.max_connections(),
        "Connection cap."
    );
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    connections.spawn(reap(registry.clone(), stop.clone()));
    let mut shutdown = pin!(shutdown);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_out_of_descriptors(&e) => {
                // The cap keeps connections below the limit, so something else holds the
                // descriptors; closing a waiting connection is all this loop can do about it.
                if rate_limited(&mut last_refusal_log) {
                    warn!(error = %e, connections = registry.len(), "Out of file descriptors; closing the longest-waiting connection.");
                }
                if !registry.shed_one() {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                tokio::task::yield_now().await;
                continue;
            }
            Err(e) => {
                debug!(error = %e, "Accept failed.");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some((id, conn)) = admit(&registry).await else {
            if rate_limited(&mut last_refusal_log) {
                warn!(
                    connections = registry.len(),
                    "Every connection is answering a request; refusing a new one."
                );
            }
            refuse(&stream);
            continue;
        };
        let registry = registry.clone();
        let router = router.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            // Small answers must not wait for Nagle's algorithm: a till measures in
            // milliseconds.
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_connection(stream, conn, router, stop).await,
                Some(acceptor) => {
                    if let Some(stream) = handshake(&acceptor, stream, &conn, &stop).await {
                        serve_connection(stream, conn, router, stop).await;
                    }
                }
            }
            registry.remove(id);
        });
    }
    stop.cancel();
    registry.shed_waiting();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// A place for a new connection, waiting for a shed one to close when at the cap.
async fn admit(registry: &Registry) -> Option<(u64, Arc<Conn>)> {
    loop {
        match registry.admit() {
            Admission::Admitted(id, conn) => return Some((id, conn)),
            Admission::Refused => return None,
            // A shed connection's task only has to notice its cancellation and drop the socket.
            Admission::Wait => registry.wait_for_close().await,
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    )
}

/// True at most once a second: a flood must not flood the log too.
fn rate_limited(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
        return false;
    }
    *last = Some(now);
    true
}

/// A full server's answer to a connection it cannot hold, written without waiting: a client
/// that reads it learns why, one that does not loses nothing by the close.
fn refuse(stream: &TcpStream) {
    const BODY: &str = r#"{"error":"overloaded","message":"every connection is answering a request; retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

async fn reap(registry: Arc<Registry>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let closed = registry.reap();
        if closed > 0 {
            debug!(closed, "Closed connections past their timeout.");
        }
    }
}

/// The TLS handshake of a new connection, given up when the connection is timed out or shed
/// (its phase is still the one it was admitted in) or the server stops.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    conn: &Conn,
    stop: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    tokio::select! {
        accepted = acceptor.accept(stream) => match accepted {
            Ok(tls) => Some(tls),
            Err(e) => {
                debug!(error = %e, "TLS handshake failed.");
                None
            }
        },
        () = conn.closed().cancelled() => None,
        () = stop.cancelled() => None,
    }
}

async fn serve_connection<S>(stream: S, conn: Arc<Conn>, router: Router, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(WatchedStream {
        stream,
        conn: conn.clone(),
    });
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let conn = service_conn.clone();
        let mut router = router.clone();
        async move {
            let (parts, body) = req.into_parts();
            if body_is_empty(&body) {
                conn.advance(&[Phase::Idle, Phase::Headers], Phase::Busy);
            } else {
                conn.advance(&[Phase::Idle, Phase::Headers], Phase::Body);
            }
            let body = axum::body::Body::new(RequestBody {
                inner: body,
                conn: conn.clone(),
            });
            let mut request = Request::from_parts(parts, body);
            request
                .extensions_mut()
                .insert(StreamedBody::new(conn.clone()));
            let mut response = router.call(request).await?;
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                // The rest of the body is still on its way: say so, or the client would send
                // its next request on a connection that will be closed under it.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(response.map(|inner| ResponseBody { inner, conn }))
        }
    });
    let closed = conn.closed().clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The registry enforces the header, body and idle timeouts, with one clock for all three.
    http.header_read_timeout(None);
    let mut connection = pin!(http.serve_connection(io, service));
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "Connection ended with an error.");
                }
                return;
            }
            // Shed or timed out: dropping the connection closes the socket at once.
            () = closed.cancelled() => return,
            () = stop.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

fn body_is_empty(body: &Incoming) -> bool {
    http_body::Body::is_end_stream(body)
}
