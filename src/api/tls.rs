//! TLS for the API port (`serve --tls-cert FILE --tls-key FILE`).
//!
//! - rustls with the `ring` provider, chosen explicitly rather than through a process-wide
//!   default, so another crate enabling a second provider cannot make the choice ambiguous.
//! - ALPN offers `h2` then `http/1.1`. The server speaks what ALPN settled on; a client that
//!   negotiates nothing gets the same HTTP/1.1-or-HTTP/2 preface detection as cleartext
//!   (Java SDK v2 Netty before 2025 sent HTTP/2 over TLS without ALPN, wire reference §1.8).
//! - Both files are PEM. The certificate file holds the chain, leaf first; the key file holds
//!   one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key. One combined file may serve as both.
//!   Everything is checked at start: a server that cannot complete a handshake never prints
//!   its ready line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// How long a client may take to finish the TLS handshake. A connection that opens and stays
/// silent would otherwise hold a task, and delay shutdown, indefinitely.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN protocol ids (RFC 7301 registry), in the server's order of preference.
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A certificate or key file that cannot be used. The underlying cause is the error's
/// `source()`, not part of its message (the binary prints the whole chain).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileError {
    #[error("reading TLS {role} file {path}")]
    Io {
        role: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS {role} file {path} is not valid PEM")]
    Pem {
        role: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS certificate file {path} holds no PEM `CERTIFICATE` section")]
    NoCertificate { path: PathBuf },
    #[error(
        "TLS key file {path} holds no PEM private key \
         (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section)"
    )]
    NoKey { path: PathBuf },
    #[error("TLS key {key} does not belong to certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS certificate {cert} and key {key} cannot be used together")]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// What ALPN settled on for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    Http2,
    Http11,
    /// The client offered no ALPN (or nothing the server speaks): detect from the preface.
    Nothing,
}

/// Builds the acceptor from a PEM certificate chain and private key.
///
/// # Errors
/// [`TlsFileError`] when a file cannot be read, is not PEM, lacks a certificate or key, or
/// the key does not belong to the certificate.
pub fn load(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsFileError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected = |source| match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsFileError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }
        }
        source => TlsFileError::Rejected {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        },
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The protocol ALPN chose on an established connection.
pub fn negotiated(conn: &rustls::ServerConnection) -> Negotiated {
    match conn.alpn_protocol() {
        Some(ALPN_H2) => Negotiated::Http2,
        Some(ALPN_HTTP11) => Negotiated::Http11,
        _ => Negotiated::Nothing,
    }
}

fn read(role: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Io {
        role,
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = read("certificate", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsFileError::Pem {
            role: "certificate",
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsFileError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsFileError::Pem {
            role: "key",
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_err(cert: &Path, key: &Path) -> TlsFileError {
        match load(cert, key) {
            Ok(_) => panic!("{} + {} loaded", cert.display(), key.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn missing_certificate_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = load_err(&missing, &missing);
        assert!(matches!(
            err,
            TlsFileError::Io {
                role: "certificate",
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.starts_with("reading TLS certificate file "), "{text}");
        assert!(text.contains("nope.pem"), "{text}");
    }

    #[test]
    fn file_without_pem_sections_is_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let junk = write(dir.path(), "junk.pem", "not a certificate\n");
        let err = load_err(&junk, &junk);
        assert!(matches!(err, TlsFileError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn truncated_pem_section_is_a_pem_error() {
        let dir = tempfile::tempdir().unwrap();
        let cut = write(dir.path(), "cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let err = load_err(&cut, &cut);
        assert!(
            matches!(
                err,
                TlsFileError::Pem {
                    role: "certificate",
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A key file with only a certificate in it: the error names the key file and what was
    /// looked for, not a generic PEM failure.
    #[test]
    fn key_file_without_a_key_is_no_key() {
        let dir = tempfile::tempdir().unwrap();
        // Any well-formed base64 body passes the PEM layer; the certificate is checked later.
        let cert = write(
            dir.path(),
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = load_err(&cert, &cert);
        assert!(matches!(err, TlsFileError::NoKey { .. }), "{err}");
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }

    #[test]
    fn key_that_is_not_a_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(
            dir.path(),
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let key = write(
            dir.path(),
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = load_err(&cert, &key);
        assert!(matches!(err, TlsFileError::Rejected { .. }), "{err}");
    }
}
