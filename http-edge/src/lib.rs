//! The HTTP edge both Loyalty Edge servers (the agent's local API and `loyalty-hq`) share.
//!
//! - [`serve`]: the accept loop. Header, body and idle timeouts; a connection cap below the
//!   open-file limit that sheds the longest-waiting connection (one without a complete
//!   request) before it refuses a new one; graceful shutdown. [`serve_tls`] the same over
//!   HTTPS (rustls), the handshake timed and shed like a request's headers. `axum::serve` has none of these,
//!   and a few hundred half-sent requests used to lock the tills out.
//! - [`errors`]: every error answer in the contract's JSON shape; [`ApiError`], the error both
//!   servers answer with.
//! - [`metrics`]: what both servers' `/metrics` share (families registered, the text format,
//!   the per-route HTTP series and their middleware).
//! - [`probe`]: a loopback `/healthz` request, the watchdog's proof that the server answers.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api_error;
mod body;
pub mod errors;
mod io;
mod limits;
pub mod metrics;
pub mod probe;
mod registry;
mod serve;

pub use api_error::ApiError;
pub use body::StreamedBody;
pub use errors::Path;
pub use limits::Limits;
pub use serve::{serve, serve_tls};
/// The rustls a [`serve_tls`] configuration is built with.
pub use tokio_rustls::rustls;
