//! A webhook receiver on loopback whose behaviour a test switches: answer 204, 500, garbage
//! that is not HTTP, a redirect, or nothing for a while; every request it read is kept with
//! its headers and the time it arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Status(u16),
    /// Bytes that are not an HTTP answer, then the connection is closed.
    Garbage,
    /// 307 to this URL.
    Redirect(String),
    /// Sleeps this long before answering 204 (longer than HQ's timeout: HQ gives up first).
    Slow(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: SystemTime,
    /// What the receiver answered it.
    pub mode: Mode,
}

pub struct Receiver {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_on(0)
    }

    /// Listens on `port` (0: any free one); serves every connection on a thread of its own.
    pub fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (mode.clone(), received.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, r) = (m.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &m, &r));
            }
        });
        Receiver {
            port,
            mode,
            received,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }
}

fn serve(stream: TcpStream, mode: &Mutex<Mode>, received: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_owned();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now_mode = mode.lock().expect("mode").clone();
        received.lock().expect("received").push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: SystemTime::now(),
            mode: now_mode.clone(),
        });
        let answer = match now_mode {
            Mode::Ok => "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_owned(),
            Mode::Status(s) => format!(
                "HTTP/1.1 {s} Oops\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\noops!"
            ),
            Mode::Garbage => {
                let _ = stream.write_all(b"\x00\xffNOT HTTP AT ALL\r\n\r\n");
                return;
            }
            Mode::Redirect(to) => {
                format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
            }
            Mode::Slow(d) => {
                std::thread::sleep(d);
                "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n".to_owned()
            }
        };
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Checks a Standard Webhooks signature with `secret` (`whsec_<base64>`).
pub fn verify(secret: &str, r: &Received) -> bool {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.signature.split(' ').any(|s| s == expected)
}
