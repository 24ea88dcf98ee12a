//! A server-sent events reader for tests: each event arrives on a channel, so a test can wait
//! for the next one with a timeout.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{channel, Receiver};

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Opens `url` with `headers`; answers the status, and the events when it is 200.
pub fn open(url: &str, headers: &[(&str, String)]) -> (u16, Option<Receiver<SseEvent>>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("SSE client");
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = match req.send() {
        Ok(r) => r,
        Err(_) => return (0, None),
    };
    let status = res.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(res);
        let mut ev = SseEvent {
            id: None,
            event: None,
            data: String::new(),
        };
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if !ev.data.is_empty() && tx.send(ev.clone()).is_err() {
                    return;
                }
                ev = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
            } else if let Some(v) = line.strip_prefix("data:") {
                ev.data.push_str(v.trim_start());
            } else if let Some(v) = line.strip_prefix("id:") {
                ev.id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("event:") {
                ev.event = Some(v.trim().to_owned());
            }
        }
    });
    (status, Some(rx))
}
