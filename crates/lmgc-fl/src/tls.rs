//! TLS 1.3 for QUIC: the aggregator's identity, how clients verify it, and the transport
//! settings both sides use.
//!
//! An aggregator without a configured certificate makes a self-signed one on first start
//! (kept in its state directory, so the fingerprint stays the same across restarts) and
//! prints its SHA-256 fingerprint; clients pin that fingerprint, or verify a CA-issued
//! certificate against a CA file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

use crate::config::ServerTls;
use crate::store::StateDir;
use crate::wire::{ALPN, hex};
use crate::{Error, Result};

/// The aggregator's certificate chain and key.
#[derive(Debug)]
pub struct Identity {
    /// Certificate chain, end entity first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// SHA-256 of the end-entity certificate, as clients pin it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certs[0])
    }
}

/// SHA-256 of a certificate (DER), lower-case hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex(&Sha256::digest(cert.as_ref()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what}: {e}"))
}

/// Loads the configured identity, or the one generated earlier in `store`, or generates
/// and keeps a self-signed one (for `tls.names`, default `localhost` and `127.0.0.1`).
pub fn server_identity(tls: &ServerTls, store: &StateDir) -> Result<(Identity, bool)> {
    let (cert, key, generated) = match (&tls.cert, &tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        (None, None) => {
            let (c, k) = store.tls_paths();
            if !c.exists() || !k.exists() {
                let names = if tls.names.is_empty() {
                    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
                } else {
                    tls.names.clone()
                };
                // A key without its certificate (a crash between the two writes) is redone.
                let _ = std::fs::remove_file(&k);
                let made = rcgen::generate_simple_self_signed(names)
                    .map_err(|e| tls_err("generating a self-signed certificate", e))?;
                write_private(&k, made.signing_key.serialize_pem().as_bytes())?;
                lmgc_core::fsutil::write_atomic(&c, made.cert.pem().as_bytes())?;
            }
            (c, k, true)
        }
        _ => {
            return Err(Error::Config(
                "give both tls.cert and tls.key, or neither (a self-signed certificate is then made)"
                    .into(),
            ));
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| tls_err(&cert.display().to_string(), e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err(&cert.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| tls_err(&key.display().to_string(), e))?;
    Ok((Identity { certs, key }, generated))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Transport settings of both sides. A peer silent for `idle` is gone (the client then
/// reconnects and resumes); keep-alives every `idle / 4` keep a healthy but quiet
/// connection (a client training for minutes) open and NAT bindings fresh. Windows sized for
/// multi-megabyte updates: 16 MiB per stream, 64 MiB per connection, so one upload is not
/// throttled by flow-control round trips on a fast link.
pub fn transport(idle: Duration) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(idle / 4));
    t.max_idle_timeout(Some(quinn::IdleTimeout::try_from(idle).map_err(|_| {
        Error::Config(format!("idle timeout of {idle:?} is out of range"))
    })?));
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20));
    t.receive_window(quinn::VarInt::from_u32(64 << 20));
    t.send_window(64 << 20);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(4));
    Ok(t)
}

/// The QUIC server configuration: TLS 1.3 only, the lmgc ALPN, no client certificates
/// (clients authenticate with tokens inside the encrypted connection).
pub fn server_config(identity: Identity, idle: Duration) -> Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(identity.certs, identity.key)
        .map_err(|e| tls_err("certificate and key", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| tls_err("QUIC TLS", e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport(idle)?));
    Ok(config)
}

/// How a client verifies the aggregator.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The SHA-256 fingerprint of its certificate (self-signed identities).
    Pin([u8; 32]),
    /// Certificates in a PEM file of CAs.
    Ca(Vec<CertificateDer<'static>>),
}

impl Trust {
    /// From a client's configuration: exactly one of a fingerprint and a CA file.
    pub fn from_config(fingerprint: Option<&str>, ca: Option<&Path>) -> Result<Trust> {
        match (fingerprint, ca) {
            (Some(f), None) => parse_fingerprint(f).map(Trust::Pin),
            (None, Some(path)) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_err(&path.display().to_string(), e))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| tls_err(&path.display().to_string(), e))?;
                if certs.is_empty() {
                    return Err(Error::Tls(format!("{}: no certificate", path.display())));
                }
                Ok(Trust::Ca(certs))
            }
            _ => Err(Error::Config(
                "give exactly one of server_fingerprint (printed by `lmgc serve`) and ca".into(),
            )),
        }
    }
}

/// Parses a SHA-256 fingerprint: 64 hex digits, `:` separators and case ignored.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || {
        Error::Config(format!(
            "server_fingerprint {s:?}: expected the 64 hex digits `lmgc serve` prints"
        ))
    };
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(digits.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

/// The QUIC client configuration for `trust`.
pub fn client_config(trust: &Trust, idle: Duration) -> Result<quinn::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS versions", e))?;
    let mut tls = match trust {
        Trust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: *pin,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Ca(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| tls_err("CA certificate", e))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| tls_err("QUIC TLS", e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport(idle)?));
    Ok(config)
}

/// Accepts exactly the certificate with the pinned SHA-256, whatever its names and dates
/// (as SSH host keys work); the handshake signature is still verified, so only the holder of
/// the key gets through.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the aggregator's certificate has fingerprint {}, not the pinned {}",
                hex(&got),
                hex(&self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hexs = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hexs).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        for bad in ["", "ab", &"zz".repeat(32), &"a".repeat(65)] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
        assert!(Trust::from_config(None, None).is_err());
    }

    #[test]
    fn a_generated_identity_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        let (a, made) = server_identity(&ServerTls::default(), &store).unwrap();
        assert!(made);
        let (b, _) = server_identity(&ServerTls::default(), &store).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.tls_paths().1)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
        let half = ServerTls {
            cert: Some(store.tls_paths().0),
            ..Default::default()
        };
        assert!(matches!(
            server_identity(&half, &store),
            Err(Error::Config(_))
        ));
    }
}
