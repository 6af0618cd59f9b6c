//! TLS client side for probes: rustls on the ring provider, the system's roots (plus a
//! per-check CA file), and capture of the peer's chain even when verification fails, so
//! that an expired certificate is still reported with its dates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use super::{FailureReason, ProbeError};
use crate::config::TlsSpec;

/// What a certificate says, for conditions, metrics and the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from subjectAltName.
    pub sans: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Parses a DER certificate; None if it is not one.
    pub fn from_der(der: &[u8]) -> Option<CertInfo> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(b) => ip_from_bytes(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => <[u8; 16]>::try_from(b).ok().map(|a| std::net::Ipv6Addr::from(a).to_string()),
        _ => None,
    }
}

/// The negotiated protocol version as blackbox_exporter names it (`TLS 1.3`).
pub fn version_name<S>(stream: &TlsStream<S>) -> Option<String> {
    let version = stream.get_ref().1.protocol_version()?;
    Some(match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        other => format!("{other:?}"),
    })
}

/// Shared TLS state: the crypto provider, system roots (loaded once) and one verifier per
/// CA file.
#[derive(Debug, Default)]
pub struct TlsContext {
    system_roots: OnceLock<Vec<CertificateDer<'static>>>,
    verifiers: Mutex<HashMap<Option<PathBuf>, Arc<WebPkiServerVerifier>>>,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

impl TlsContext {
    fn roots(&self) -> &[CertificateDer<'static>] {
        self.system_roots.get_or_init(|| rustls_native_certs::load_native_certs().certs)
    }

    fn verifier(&self, ca_file: Option<&Path>) -> Result<Arc<WebPkiServerVerifier>, ProbeError> {
        let key = ca_file.map(Path::to_path_buf);
        let mut cache = self.verifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(self.roots().iter().cloned());
        if let Some(path) = ca_file {
            let certs =
                CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| {
                    ProbeError::new(FailureReason::Tls, format!("cannot read CA file {}: {e}", path.display()))
                })?;
            store.add_parsable_certificates(certs);
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| ProbeError::new(FailureReason::Tls, format!("no usable CA roots: {e}")))?;
        cache.insert(key, verifier.clone());
        Ok(verifier)
    }

    /// Performs a TLS handshake over `stream`. Returns the stream or an error, and in both
    /// cases the certificates the peer presented.
    pub async fn connect<S>(
        &self,
        spec: &TlsSpec,
        host: &str,
        stream: S,
        alpn: &[&[u8]],
    ) -> (Result<TlsStream<S>, ProbeError>, Vec<CertInfo>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let inner = if spec.insecure_skip_verify {
            None
        } else {
            match self.verifier(spec.ca_file.as_deref()) {
                Ok(v) => Some(v),
                Err(e) => return (Err(e), Vec::new()),
            }
        };
        let capturing = Arc::new(Capturing { inner, seen: Mutex::new(Vec::new()) });
        let config = match rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
        {
            Ok(builder) => {
                let mut config =
                    builder.dangerous().with_custom_certificate_verifier(capturing.clone()).with_no_client_auth();
                config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
                config
            }
            Err(e) => {
                return (Err(ProbeError::new(FailureReason::Tls, e.to_string())), Vec::new());
            }
        };
        let name = spec.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(n) => n,
            Err(_) => {
                return (
                    Err(ProbeError::new(FailureReason::Tls, format!("invalid TLS server name \"{name}\""))),
                    Vec::new(),
                );
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let result = connector
            .connect(server_name, stream)
            .await
            .map_err(|e| ProbeError::new(FailureReason::Tls, format!("tls: {e}")));
        let seen = capturing.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (result, seen)
    }
}

/// Records the presented chain, then delegates (or accepts, when verification is off).
#[derive(Debug)]
struct Capturing {
    inner: Option<Arc<WebPkiServerVerifier>>,
    seen: Mutex<Vec<CertInfo>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).filter_map(|c| CertInfo::from_der(c)).collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
