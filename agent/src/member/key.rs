//! The member's app key on disk: the 32-byte Ed25519 seed as 64 hex digits, readable by its
//! owner only.

use anyhow::Context;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use std::path::Path;

/// Creates a new key file (refusing to overwrite one) and returns the key.
pub fn create(path: &Path) -> anyhow::Result<SigningKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

pub fn load(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let text = text.trim();
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .with_context(|| format!("{}: not hex", path.display()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{}: not 64 hex digits", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public half as HQ registers it (`qr_public_key`): base64.
pub fn public_b64(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
}
