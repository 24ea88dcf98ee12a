//! A certificate authority made on the spot, and a server certificate it signs, written as PEM
//! files: what a chain's own CA would hand HQ (`[tls]`) and the stores (`hq.ca_file`), for
//! tests of HTTPS between them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum TestCaError {
    #[error("making a certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("writing a PEM file: {0}")]
    Io(#[from] std::io::Error),
}

/// The files [`TestCa::write`] made.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA's certificate: what a store trusts.
    pub ca: PathBuf,
    /// The server's certificate (leaf, then the CA), for HQ's `[tls] cert`.
    pub cert: PathBuf,
    /// The server's private key, for HQ's `[tls] key`.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA and a server certificate for `names` (DNS names or IP addresses), written to
    /// `dir` as `ca.pem`, `cert.pem` and `key.pem`.
    pub fn write(dir: &Path, names: &[&str]) -> Result<TestCa, TestCaError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Loyalty Edge test chain CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut server = CertificateParams::new(names)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "Loyalty Edge test HQ");
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let files = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, ca_cert.pem())?;
        std::fs::write(
            &files.cert,
            format!("{}{}", server_cert.pem(), ca_cert.pem()),
        )?;
        std::fs::write(&files.key, server_key.serialize_pem())?;
        Ok(files)
    }
}
