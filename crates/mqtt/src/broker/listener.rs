//! Listeners: accept loops that turn TCP connections, and TLS sessions on them, into broker
//! connections. An attested TLS listener lives with the code that owns attestation: it only
//! needs [`Broker::serve_connection`] with the claims it appraised.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{Broker, TransportIdentity};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts plain TCP clients on `listener` for ever.
pub async fn serve_tcp(broker: Broker, listener: TcpListener, name: String) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: wait rather than spin.
                tracing::warn!(listener = %name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admission) = broker.admit(Some(remote)) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let broker = broker.clone();
        let transport = TransportIdentity {
            remote_addr: Some(remote),
            listener: name.clone(),
            ..TransportIdentity::default()
        };
        tokio::spawn(async move {
            broker.serve_admitted(admission, tcp, transport, None).await;
        });
    }
}

/// Accepts TLS clients on `listener` for ever. A client certificate, if the acceptor asks for
/// one, is reported as its key hash.
pub async fn serve_tls(broker: Broker, listener: TcpListener, acceptor: TlsAcceptor, name: String) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(listener = %name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted before the handshake: half-open TLS sessions take memory too.
        let Some(admission) = broker.admit(Some(remote)) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let broker = broker.clone();
        let acceptor = acceptor.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let tcp = super::ReadAhead::new(tcp);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let transport = TransportIdentity {
                remote_addr: Some(remote),
                listener: name,
                ..TransportIdentity::default()
            };
            broker.serve_admitted(admission, tls, transport, None).await;
        });
    }
}

/// A TLS acceptor (TLS 1.2 and 1.3, no client certificates) from a PEM certificate chain and
/// a PEM private key.
pub fn tls_acceptor(cert_pem: &Path, key_pem: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| invalid("certificate", cert_pem, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate", cert_pem, &e))?;
    if certs.is_empty() {
        return Err(invalid(
            "certificate",
            cert_pem,
            &"no CERTIFICATE in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| invalid("key", key_pem, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS settings for", cert_pem, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", cert_pem, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
