//! HTTPS served by HQ itself (hq.toml `[tls]`), for a chain without a TLS-terminating proxy in
//! front of HQ: the certificate chain and private key, PEM files, loaded into a rustls
//! configuration for `loyalty_http_edge::serve_tls`.

use std::path::Path;
use std::sync::Arc;

use loyalty_http_edge::rustls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A rustls server configuration from `cert` (the chain, leaf first) and `key` (PKCS#8,
/// PKCS#1 or SEC1); every problem as one sentence naming the file.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert: {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert: {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls.key: {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "tls: the key {} does not go with the certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    // HQ speaks HTTP/1.1 only (http-edge); saying so spares a client an h2 attempt.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
