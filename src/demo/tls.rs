//! A certificate authority for the demo's HTTPS simulator, and a leaf that expires soon —
//! so the demo shows a "certificate near expiry" warning. Generated at start, loopback only.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the demo's certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoTlsError {
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    #[error(transparent)]
    Tls(#[from] rustls::Error),
}

/// The demo CA's PEM (for `ca_file`) and a server config presenting a leaf for 127.0.0.1
/// that expires in `days_left` days.
pub fn demo_tls(days_left: i64) -> Result<(String, Arc<rustls::ServerConfig>), DemoTlsError> {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Vigil demo CA");
    ca.distinguished_name = dn;
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(365);
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "baocao.laichau.example (demo)");
    leaf.distinguished_name = dn;
    leaf.not_before = now - time::Duration::days(80);
    leaf.not_after = now + time::Duration::days(days_left);
    let cert = leaf.signed_by(&key, &issuer)?;
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok((ca_pem, Arc::new(config)))
}
