//! The simulator's host pieces (feature `sim`): a radio replaying a JSON-lines trace, a serial
//! link on a pseudo-terminal or a real port, and a minimal executor. The node tasks themselves
//! are the real ones (`crate::node::run`).
//!
//! # Trace format
//! One JSON object per line; blank lines and lines starting with `#` are skipped. Times are ms
//! from simulator start, in any order (they are sorted on load).
//!
//! ```text
//! {"t_ms":0,"addr":"c0:ff:ee:00:00:01","rssi":-62,"mfg":"ffff4c45010123456789abcdefc5"}
//! {"t_ms":40,"addr":"11:22:33:44:55:66","rssi":-85,"adv":"0201060303 0d18"}
//! {"t_ms":1500,"check_in":"ffff4c45010123456789abcdefc5","rssi":-55}
//! ```
//!
//! - An advertisement has `addr` (written most significant byte first, as tools print it),
//!   `rssi` (dBm) and exactly one of `mfg` (manufacturer data in hex, company id first: the
//!   simulator wraps it in flags + one manufacturer AD structure, so `mfg` is what a phone token
//!   looks like, see [`crate::token`]) or `adv` (the whole advertising payload in hex, up to 31
//!   bytes). Spaces inside hex are ignored.
//! - A check-in has `check_in` (the bytes the phone writes, hex) and `rssi`.

mod executor;
mod serial;
mod trace;

pub use executor::block_on;
pub use serial::{open_pty, open_serial, Pty, SerialReader, SerialWriter};
pub use trace::{load_trace, parse_trace, Trace, TraceError, TraceRadio};
