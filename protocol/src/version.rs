//! The protocol version and its check.

/// The version of the sync protocol this build speaks. Bump it on any incompatible change to
/// the types of this crate; both ends refuse to talk across versions rather than guess.
/// 2: pushes name their ledger and the `seq` they follow on (`ledger_id`, `after_seq`).
pub const PROTOCOL_VERSION: u32 = 2;

/// HTTP header carrying [`PROTOCOL_VERSION`] on every sync request and answer.
pub const PROTOCOL_HEADER: &str = "x-loyalty-protocol";

/// The other end speaks another protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("protocol version mismatch: the other end speaks {found}, this end speaks {expected}")]
pub struct VersionMismatch {
    /// The version the other end announced.
    pub found: u32,
    /// [`PROTOCOL_VERSION`].
    pub expected: u32,
}

/// Accepts `found` only if it is this build's [`PROTOCOL_VERSION`].
pub fn check_version(found: u32) -> Result<(), VersionMismatch> {
    if found == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(VersionMismatch {
            found,
            expected: PROTOCOL_VERSION,
        })
    }
}
