//! TLS termination: the certificates of the routing table ([`HostCert`]),
//! chosen per connection by the client's SNI ([`SniResolver`]), and the
//! checks the controller runs before it accepts a certificate
//! ([`certified_key`], [`covers`]). One crypto provider (aws-lc-rs) is
//! named everywhere, so nothing depends on a process-wide default.
//!
//! [`HostCert`]: crate::table::HostCert

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::watch;

use crate::table::RouteTable;

/// Why a certificate and key are refused; the text is the API's message.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate: not a PEM X.509 certificate chain ({0})")]
    Certificate(String),
    #[error("key: not a PEM private key (PKCS#8, PKCS#1 or SEC1) ({0})")]
    Key(String),
    #[error("key: does not match the certificate ({0})")]
    Mismatch(String),
    #[error("cannot make the TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider of the router's TLS.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate chain of `certificate` (PEM, leaf first) with the
/// private key of `key` (PEM), checked: both parse, the leaf is X.509 and
/// the key is the leaf's.
pub fn certified_key(certificate: &str, key: &str) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Certificate(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| CertError::Certificate("no CERTIFICATE block".into()))?;
    webpki::EndEntityCert::try_from(leaf).map_err(|e| CertError::Certificate(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| CertError::Key(e.to_string()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| CertError::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// Whether the leaf certificate of `certified` is valid for `host` (its
/// subject alternative names, wildcards included).
pub fn covers(certified: &CertifiedKey, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    let Some(leaf) = certified.cert.first() else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Picks the certificate of the SNI name from the current table; a name
/// without one (or no SNI) fails the handshake.
#[derive(Debug)]
pub struct SniResolver {
    table: watch::Receiver<Arc<RouteTable>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let table = self.table.borrow().clone();
        table.certificate(name)
    }
}

/// The TLS configuration of a router listener: HTTP/1.1 and h2 by ALPN,
/// certificates by SNI from `table`.
pub fn server_config(
    table: watch::Receiver<Arc<RouteTable>>,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { table }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("certificate");
        (certified.cert.pem(), certified.key_pair.serialize_pem())
    }

    #[test]
    fn a_matching_pair_is_accepted_and_covers_its_names() {
        let (cert, key) = self_signed(&["www.example.com", "*.shop.example.com"]);
        let certified = certified_key(&cert, &key).expect("accepted");
        assert!(covers(&certified, "www.example.com"));
        assert!(covers(&certified, "a.shop.example.com"));
        assert!(!covers(&certified, "example.com"));
        assert!(!covers(&certified, "not a name"));
    }

    #[test]
    fn bad_or_mismatched_pairs_are_refused() {
        let (cert, key) = self_signed(&["www.example.com"]);
        let (_, other_key) = self_signed(&["www.example.com"]);
        assert!(matches!(
            certified_key(&cert, &other_key),
            Err(CertError::Mismatch(_))
        ));
        assert!(matches!(
            certified_key("not pem", &key),
            Err(CertError::Certificate(_))
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            certified_key(garbage, &key),
            Err(CertError::Certificate(_))
        ));
        assert!(matches!(
            certified_key(&cert, "no key"),
            Err(CertError::Key(_))
        ));
        assert!(matches!(
            certified_key(&cert, &cert),
            Err(CertError::Key(_))
        ));
    }
}
