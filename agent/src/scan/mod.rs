//! Serial barcode scanners at checkout lanes.
//!
//! A scanner is a serial port (USB CDC-ACM or a USB-serial adapter) that sends one line of text
//! per scan. This module turns those bytes into [`LaneScan`]s on a bounded channel:
//!
//! - [`framing::Framer`] cuts the byte stream into scans (CR, LF, CR LF, TAB or silence) and
//!   strips the configured prefix and suffix. Pure: no I/O, time is passed in.
//! - [`aim::split_aim`] takes off the AIM symbology identifier (`]E0`, `]C0`, `]Q1`, ...).
//! - [`codes::classify`] decides what the text is: a card number (check digit verified where the
//!   symbology has one) or an app QR token ([`qr`]), parsed but not yet signature verified.
//! - [`reader::read_scans`] is the blocking loop over any [`std::io::Read`]: a real port, a
//!   pseudo-terminal or bytes in a test.
//! - [`port`] opens ports by path or USB id, lists them, and [`port::supervise`]s one lane:
//!   reconnect with backoff, health for `/healthz`.
//!
//! # Guarantees
//!
//! - Every [`LaneScan`] on the channel holds either a card number that passed the rules of
//!   [`codes::classify`] or a well-formed app QR token. Signature, freshness and replay checks
//!   need member keys and the nonce store, so the consumer does them ([`qr::AppQr::verify`]).
//! - One physical scan gives at most one [`LaneScan`]: CR LF is one terminator, empty lines are
//!   ignored, and the same code again within [`ScannerSettings::debounce`] is dropped.
//! - No input panics a parser or stops a lane. A bad scan is logged with a reason and counted in
//!   `loyalty_scans_total{outcome=<reason>}`; the next good scan goes through.
//! - A full QR token is never logged: it is a credential. Logs carry at most the member id.
//! - Bytes a scanner sent while nobody was reading are discarded when the port is opened, so a
//!   scan from minutes ago never identifies a member now.
//! - A missing or unplugged scanner is retried forever with capped backoff; it never stops the
//!   other lanes. Shutdown through the [`CancellationToken`](tokio_util::sync::CancellationToken)
//!   is prompt (well under 200 ms).

pub mod aim;
pub mod codes;
pub mod framing;
pub mod port;
pub mod qr;
pub mod reader;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub use crate::serial::PortSource;
pub use aim::{split_aim, AimId};
pub use codes::{classify, ean_check_digit_ok, CodeError};
pub use framing::{DropReason, FrameEvent, Framer};
pub use port::{
    list_ports, open, resolve, supervise, PortError, PortInfo, ScannerHealth, ScannerState,
};
pub use qr::{AppQr, QrError};
pub use reader::{read_scans, ReadError};

/// What a lane's scanner read: a code, or a scan refused before it could identify anyone (the
/// lane page shows it, and it ends the lane's session: the customer scanning is not the one
/// identified before).
#[derive(Debug, Clone, PartialEq)]
pub enum LaneRead {
    Scan(LaneScan),
    Rejected(RejectedScan),
}

/// A scan refused at the lane; the scanned text is never kept (a damaged app token is still
/// most of a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedScan {
    pub lane: String,
    /// The metrics' and API's snake_case reason (`bad_check_digit`, `malformed` ...).
    pub reason: &'static str,
    /// What the cashier reads.
    pub message: String,
}

/// One scan read at a lane, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneScan {
    pub lane: String,
    pub code: ScannedCode,
    pub symbology: Option<AimId>,
    pub read_at: Instant,
}

/// What a scan identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannedCode {
    Card(CardNumber),
    /// Parsed, not yet verified: see [`AppQr::verify`].
    AppQr(AppQr),
}

impl ScannedCode {
    /// `card` or `qr`: the metrics outcome of a good scan.
    pub fn kind(&self) -> &'static str {
        match self {
            ScannedCode::Card(_) => "card",
            ScannedCode::AppQr(_) => "qr",
        }
    }
}

/// A printed card number in canonical text: EAN-13 (UPC-A with a leading 0), EAN-8, or Code 128
/// text uppercased. Only [`classify`] and [`FromStr`] make one, so it is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardNumber(String);

impl CardNumber {
    /// Callers must have validated `canonical`; see [`codes::classify`].
    pub(crate) fn new_unchecked(canonical: String) -> Self {
        Self(canonical)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CardNumber {
    type Err = CodeError;

    /// Validates like [`classify`] without a symbology. Surrounding whitespace is ignored because
    /// this parses numbers typed by people or sent by a POS, not raw scanner output.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match classify(None, s.trim())? {
            ScannedCode::Card(card) => Ok(card),
            ScannedCode::AppQr(_) => Err(CodeError::NotACard),
        }
    }
}

/// What ends one scan on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Terminator {
    /// CR, LF or CR LF.
    #[default]
    Line,
    Tab,
    /// No terminator: silence longer than the inter-character timeout ends a scan.
    None,
}

/// How one lane's scanner is reached and how its output is framed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannerSettings {
    pub source: PortSource,
    pub baud: u32,
    pub terminator: Terminator,
    /// Stripped from the start of a scan when present.
    pub prefix: String,
    /// Stripped from the end of a scan when present.
    pub suffix: String,
    pub inter_char_timeout: Duration,
    /// The same code again within this window counts once.
    pub debounce: Duration,
    /// Longest scan in bytes (prefix and suffix included).
    pub max_len: usize,
}

impl Default for ScannerSettings {
    fn default() -> Self {
        Self {
            source: PortSource::Path(PathBuf::from("/dev/ttyACM0")),
            baud: 9600,
            terminator: Terminator::Line,
            prefix: String::new(),
            suffix: String::new(),
            inter_char_timeout: Duration::from_millis(200),
            debounce: Duration::from_millis(1500),
            max_len: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_usb_accepts_lsusb_ids() {
        assert_eq!(
            PortSource::parse_usb("0c2e:0B61", None).unwrap(),
            PortSource::Usb {
                vid: 0x0c2e,
                pid: 0x0b61,
                serial: None
            }
        );
        assert_eq!(
            PortSource::parse_usb(" 0c2e:0b61 ", Some("A1".into())).unwrap(),
            PortSource::Usb {
                vid: 0x0c2e,
                pid: 0x0b61,
                serial: Some("A1".into())
            }
        );
        assert_eq!(
            PortSource::parse_usb("0c2e:0b61", Some(String::new())).unwrap(),
            PortSource::Usb {
                vid: 0x0c2e,
                pid: 0x0b61,
                serial: None
            }
        );
    }

    #[test]
    fn parse_usb_rejects_bad_ids() {
        for id in [
            "",
            "0c2e",
            "0c2e:",
            ":0b61",
            "c2e:0b61",
            "0c2e:0b611",
            "0x2e:0b61",
            "0c2e-0b61",
            "0c2e:0b61:1",
            "+c2e:0b61",
        ] {
            assert!(
                matches!(PortSource::parse_usb(id, None), Err(PortError::BadUsbId(_))),
                "{id:?}"
            );
        }
    }

    #[test]
    fn port_source_display() {
        assert_eq!(
            PortSource::Path("/dev/ttyACM0".into()).to_string(),
            "/dev/ttyACM0"
        );
        let usb = PortSource::parse_usb("0c2e:0b61", Some("X9".into())).unwrap();
        assert_eq!(usb.to_string(), "usb 0c2e:0b61 serial X9");
    }

    #[test]
    fn card_number_from_str_validates() {
        assert_eq!(
            "4006381333931".parse::<CardNumber>().unwrap().as_str(),
            "4006381333931"
        );
        assert_eq!(
            " 036000291452\n".parse::<CardNumber>().unwrap().as_str(),
            "0036000291452"
        );
        assert_eq!("ab-12".parse::<CardNumber>().unwrap().to_string(), "AB-12");
        assert_eq!(
            "4006381333932".parse::<CardNumber>().unwrap_err().reason(),
            "bad_check_digit"
        );
        assert!("a".parse::<CardNumber>().is_err());
    }

    #[test]
    fn default_settings() {
        let s = ScannerSettings::default();
        assert_eq!(s.source, PortSource::Path("/dev/ttyACM0".into()));
        assert_eq!(s.baud, 9600);
        assert_eq!(s.terminator, Terminator::Line);
        assert_eq!(s.inter_char_timeout, Duration::from_millis(200));
        assert_eq!(s.debounce, Duration::from_millis(1500));
        assert_eq!(s.max_len, 4096);
    }
}
