//! A TCP proxy on loopback between an agent and HQ whose behaviour a test switches at run time:
//! pass, refuse, reset mid-request, cut the answer after N bytes, delay the answer.
//!
//! It runs on a tokio runtime of its own (one thread), so blocking tests can use it. Switching
//! the mode closes every connection opened under the previous mode: pooled keep-alive
//! connections cannot carry on in `Pass` while the test believes HQ is unreachable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Accept, then close at once with a reset: nothing reaches HQ.
    Refuse,
    /// Read the start of the request, forward that much to HQ, then reset both sides.
    ResetMidRequest,
    /// Forward the request whole; forward only the first N bytes of HQ's answer, then close.
    /// HQ did the work; the agent never learns it.
    CutResponse(usize),
    /// Forward the request at once; hold HQ's answer this long before forwarding it.
    Delay(Duration),
}

/// What went through, for tests that wait for "a push is in flight".
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests starting with `POST ` whose first bytes were forwarded to HQ.
    pub posts_forwarded: AtomicU64,
    /// Answers (or parts of answers) forwarded back to the agent.
    pub answers_forwarded: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    mode: watch::Sender<(u64, Mode)>,
    pub stats: Arc<Stats>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (for example HQ's address).
    pub fn start(upstream: SocketAddr, mode: Mode) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (tx, rx) = watch::channel((0u64, mode));
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let rx = rx.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let mut rx = rx;
                    let (generation, mode) = *rx.borrow_and_update();
                    tokio::select! {
                        _ = serve(client, upstream, mode, &st) => {}
                        _ = mode_changed(&mut rx, generation) => {}
                    }
                });
            }
        });
        FaultProxy {
            port,
            mode: tx,
            stats,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches the mode; connections opened before are closed.
    pub fn set(&self, mode: Mode) {
        self.mode.send_modify(|(generation, m)| {
            *generation += 1;
            *m = mode;
        });
    }

    pub fn posts_forwarded(&self) -> u64 {
        self.stats.posts_forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn mode_changed(rx: &mut watch::Receiver<(u64, Mode)>, generation: u64) {
    loop {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if rx.borrow().0 != generation {
            return;
        }
    }
}

/// Drops `s` with SO_LINGER 0, so the peer sees a reset rather than an orderly close.
fn reset(s: TcpStream) {
    // Deprecated because a non-zero linger blocks on drop; zero never does.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mode: Mode, stats: &Stats) {
    if mode == Mode::Refuse {
        reset(client);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if mode == Mode::ResetMidRequest {
        let mut buf = vec![0u8; 64 * 1024];
        if let Ok(n) = client.read(&mut buf).await {
            // Half of what arrived: HQ sees a request that stops in the middle.
            let _ = server.write_all(&buf[..n / 2]).await;
            if buf[..n].starts_with(b"POST ") {
                stats.posts_forwarded.fetch_add(1, Ordering::SeqCst);
            }
        }
        reset(server);
        reset(client);
        return;
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut fresh = true;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The first bytes after a pause start a request (agents do not pipeline).
            if fresh && buf[..n].starts_with(b"POST ") {
                stats.posts_forwarded.fetch_add(1, Ordering::SeqCst);
            }
            fresh = false;
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if n < buf.len() {
                // A short read: likely the end of this request; the next read may start another.
                fresh = true;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downward = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = match mode {
            Mode::CutResponse(n) => Some(n),
            _ => None,
        };
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Mode::Delay(d) = mode {
                tokio::time::sleep(d).await;
            }
            let n = match left {
                Some(l) => n.min(l),
                None => n,
            };
            if n > 0 && client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            stats.answers_forwarded.fetch_add(1, Ordering::SeqCst);
            if let Some(l) = left.as_mut() {
                *l -= n;
                if *l == 0 {
                    break;
                }
            }
        }
    };
    // The answer side ending (HQ closed, or the answer was cut) ends the connection: the
    // agent must see the cut rather than wait on a half-open socket.
    tokio::select! {
        _ = downward => {}
        _ = async { upward.await; std::future::pending::<()>().await } => {}
    }
}
