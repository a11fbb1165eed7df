#![allow(clippy::unwrap_used)]
//! Attested TLS end to end over loopback TCP: who gets in, who is refused and why.

use std::path::PathBuf;
use std::sync::Arc;

use atls::ext::{BoundClaims, OID_GRAMINE_LEGACY_QUOTE_ARCS, TaggedEvidence};
use atls::{
    AtlsClient, AtlsError, AtlsServer, Clock, Freshness, NodeIdentity, Peer, PeerVerifier,
    self_signed, self_signed_with,
};
use attest::{AppraisalPolicy, Endorsements, Measurement384, PlatformKind, UnixTime};
use platform::Simulated;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GOOD: Measurement384 = Measurement384([0x11; 48]);
const OTHER: Measurement384 = Measurement384([0x22; 48]);
/// Inside the validity window of the SGX/TDX fixture collateral.
const FIXTURE_TIME: u64 = 1_750_377_600;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

fn identity(measurement: Measurement384, name: &str) -> Arc<NodeIdentity> {
    let attester = Arc::new(Simulated::with_measurement(measurement));
    Arc::new(NodeIdentity::generate(attester, name, UnixTime::now()).unwrap())
}

fn sim_policy(expect: Option<Measurement384>) -> AppraisalPolicy {
    let mut policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    if let Some(m) = expect {
        policy.sim.measurement.0 = vec![m];
    }
    policy
}

fn verifier(policy: AppraisalPolicy) -> Arc<PeerVerifier> {
    Arc::new(PeerVerifier::new(policy, Endorsements::default()))
}

/// Serves one connection: echoes one line back; returns what the server learnt about its peer.
async fn serve_once(
    server: AtlsServer,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Peer, AtlsError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = server.accept(tcp).await?;
        let mut buf = [0u8; 5];
        conn.stream.read_exact(&mut buf).await?;
        conn.stream.write_all(&buf).await?;
        conn.stream.shutdown().await.ok();
        Ok(conn.peer)
    });
    (addr, task)
}

async fn round_trip(client: &AtlsClient, addr: std::net::SocketAddr) -> Result<Peer, AtlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut conn = client.connect(tcp).await?;
    conn.stream.write_all(b"hello").await?;
    let mut buf = [0u8; 5];
    conn.stream.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"hello");
    Ok(conn.peer)
}

fn sim_measurement(peer: &Peer) -> Measurement384 {
    let att = peer.attestation().expect("attested peer");
    match &att.verified.claims().platform {
        attest::PlatformClaims::Sim(c) => c.measurement,
        other => panic!("expected sim claims, got {other:?}"),
    }
}

#[tokio::test]
async fn mutual_sim_handshake_per_session() {
    let policy = sim_policy(Some(GOOD));
    let server = AtlsServer::new(identity(GOOD, "server"), verifier(policy.clone())).unwrap();
    let client_verifier = verifier(policy);
    let client = AtlsClient::new(identity(GOOD, "client"), client_verifier.clone()).unwrap();
    let (addr, task) = serve_once(server).await;
    let server_seen = round_trip(&client, addr).await.unwrap();
    let client_seen = task.await.unwrap().unwrap();
    for peer in [&server_seen, &client_seen] {
        let att = peer.attestation().unwrap();
        assert!(att.fresh_in_session, "per-session evidence was appraised");
        assert!(att.verified.is_simulated());
        assert_eq!(sim_measurement(peer), GOOD);
    }
    assert_eq!(
        server_seen
            .attestation()
            .unwrap()
            .bound
            .node_name
            .as_deref(),
        Some("server")
    );
    assert_eq!(
        client_seen
            .attestation()
            .unwrap()
            .bound
            .node_name
            .as_deref(),
        Some("client")
    );
}

#[tokio::test]
async fn simulation_refused_without_opt_in() {
    let strict = verifier(AppraisalPolicy::default());
    let server = AtlsServer::new(identity(GOOD, "server"), verifier(sim_policy(None))).unwrap();
    let client = AtlsClient::new(identity(GOOD, "client"), strict).unwrap();
    let (addr, _task) = serve_once(server).await;
    let err = round_trip(&client, addr).await.unwrap_err();
    assert!(matches!(err, AtlsError::Handshake(_)), "{err}");
    assert!(err.to_string().contains("simulated"), "{err}");
}

#[tokio::test]
async fn wrong_measurement_refused_by_the_server() {
    let server =
        AtlsServer::new(identity(GOOD, "server"), verifier(sim_policy(Some(GOOD)))).unwrap();
    let client = AtlsClient::new(identity(OTHER, "mallory"), verifier(sim_policy(None))).unwrap();
    let (addr, task) = serve_once(server).await;
    assert!(round_trip(&client, addr).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains("reference value mismatch for measurement"),
        "{err}"
    );
}

#[tokio::test]
async fn repeat_handshakes_use_the_appraisal_cache() {
    let policy = sim_policy(Some(GOOD)).clone();
    let mut policy_max_age = policy.clone();
    policy_max_age.max_evidence_age = Some(attest::policy::DurationSecs(3600));
    let server_verifier = verifier(policy_max_age.clone());
    assert_eq!(server_verifier.freshness(), Freshness::MaxAge(3600));
    let server = AtlsServer::new(identity(GOOD, "server"), server_verifier.clone()).unwrap();
    let client = AtlsClient::new(identity(GOOD, "client"), verifier(policy_max_age)).unwrap();
    for round in 0..3u64 {
        let (addr, task) = serve_once(server.clone()).await;
        let peer = round_trip(&client, addr).await.unwrap();
        assert!(!peer.attestation().unwrap().fresh_in_session);
        task.await.unwrap().unwrap();
        let (hits, misses) = server_verifier.verifier().cache().stats();
        // The handshake appraises the client certificate once and the server looks it up again
        // after the handshake: one miss overall, every other lookup a hit.
        assert_eq!(misses, 1, "round {round}");
        assert_eq!(hits, 1 + 2 * round, "round {round}");
    }
}

#[tokio::test]
async fn extension_copied_onto_another_key_is_refused() {
    let genuine = identity(GOOD, "genuine");
    let parsed = atls::ext::parse_certificate(genuine.certificate()).unwrap();
    let Some(atls::ext::CertificateEvidence::Tagged(tagged)) = parsed.evidence else {
        panic!("no evidence")
    };
    let thief_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = self_signed(&thief_key, "thief", UnixTime::now(), Some(tagged.encode())).unwrap();
    let v = verifier(sim_policy(Some(GOOD)));
    assert!(matches!(
        v.appraise_certificate(&forged),
        Err(AtlsError::KeyNotBound)
    ));

    // The same over the wire: a server presenting the forged certificate with the thief's key.
    let (addr, _server) = plain_server(forged, &thief_key).await;
    let client = AtlsClient::new(identity(GOOD, "client"), v).unwrap();
    let err = round_trip(&client, addr).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not bind this certificate's key"),
        "{err}"
    );
}

#[tokio::test]
async fn old_evidence_refused_in_max_age_mode() {
    let attester = Arc::new(Simulated::with_measurement(GOOD));
    let hour_ago = UnixTime(UnixTime::now().as_secs() - 3600);
    let stale = NodeIdentity::generate(attester, "stale", hour_ago).unwrap();
    let v = PeerVerifier::new(sim_policy(Some(GOOD)), Endorsements::default())
        .with_freshness(Freshness::MaxAge(600));
    let err = v.appraise_certificate(stale.certificate()).unwrap_err();
    assert!(
        matches!(err, AtlsError::EvidenceTooOld { age, max: 600 } if age >= 3600),
        "{err}"
    );
    // A certificate past its validity window is refused whatever the mode.
    let later = PeerVerifier::new(sim_policy(Some(GOOD)), Endorsements::default()).with_clock(
        Clock::Fixed(UnixTime(UnixTime::now().as_secs() + 30 * 24 * 3600)),
    );
    let fresh = identity(GOOD, "fresh");
    assert!(matches!(
        later.appraise_certificate(fresh.certificate()),
        Err(AtlsError::CertificateExpired { .. })
    ));
}

#[tokio::test]
async fn session_evidence_replayed_into_another_session_is_refused() {
    // Two real sessions; the client's evidence from the first is offered in the second.
    let policy = sim_policy(Some(GOOD));
    let server_id = identity(GOOD, "server");
    let client_id = identity(GOOD, "client");
    let v = verifier(policy.clone());
    let client = AtlsClient::new(client_id.clone(), verifier(policy.clone())).unwrap();
    let mut exporters = Vec::new();
    for _ in 0..2 {
        let server = AtlsServer::new(server_id.clone(), v.clone()).unwrap();
        let (addr, task) = serve_once(server).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut conn = client.connect(tcp).await.unwrap();
        let exporter = conn
            .stream
            .get_ref()
            .1
            .export_keying_material([0u8; 32], atls::EXPORTER_LABEL, None)
            .unwrap();
        exporters.push(exporter);
        conn.stream.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        conn.stream.read_exact(&mut buf).await.unwrap();
        task.await.unwrap().unwrap();
    }
    assert_ne!(exporters[0], exporters[1], "exporters differ per session");
    let frame_from_first = client_id
        .session_evidence(&exporters[0], UnixTime::now())
        .unwrap();
    let cert = client_id.certificate();
    v.appraise_session_evidence(cert, &frame_from_first, &exporters[0])
        .unwrap();
    let err = v
        .appraise_session_evidence(cert, &frame_from_first, &exporters[1])
        .unwrap_err();
    assert!(matches!(err, AtlsError::SessionNonceMismatch), "{err}");
    // Session evidence of another node, replayed with this node's certificate, binds the wrong key.
    let other = identity(GOOD, "other");
    let foreign = other
        .session_evidence(&exporters[1], UnixTime::now())
        .unwrap();
    assert!(matches!(
        v.appraise_session_evidence(cert, &foreign, &exporters[1]),
        Err(AtlsError::KeyNotBound)
    ));
}

fn accepting_intel_policy() -> AppraisalPolicy {
    AppraisalPolicy {
        accepted_tcb_statuses: vec![
            "UpToDate".into(),
            "SWHardeningNeeded".into(),
            "ConfigurationAndSWHardeningNeeded".into(),
        ],
        allowed_advisories: vec!["*".into()],
        ..AppraisalPolicy::default()
    }
}

#[test]
fn real_quotes_in_a_certificate_do_not_bind_its_key() {
    for (quote, collateral, platform) in [
        (
            "sgx/sgx_quote",
            "sgx/sgx_quote_collateral.json",
            PlatformKind::Sgx,
        ),
        (
            "tdx/tdx_quote",
            "tdx/tdx_quote_collateral.json",
            PlatformKind::Tdx,
        ),
    ] {
        let quote = std::fs::read(fixture(quote)).unwrap();
        let endorsements = Endorsements::load(&[fixture(collateral)]).unwrap();
        let v = PeerVerifier::new(accepting_intel_policy(), endorsements)
            .with_clock(Clock::Fixed(UnixTime(FIXTURE_TIME)))
            .with_freshness(Freshness::MaxAge(u64::MAX));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let claims = BoundClaims {
            issued_at: Some(UnixTime(FIXTURE_TIME)),
            ..BoundClaims::for_key(&rcgen::PublicKeyData::subject_public_key_info(&key))
        };
        let tagged = TaggedEvidence::new(platform, quote.clone(), claims.encode());
        let cert = self_signed(
            &key,
            "borrowed",
            UnixTime(FIXTURE_TIME),
            Some(tagged.encode()),
        )
        .unwrap();
        // The quote itself is genuine and passes appraisal; only the binding fails.
        let err = v.appraise_certificate(&cert).unwrap_err();
        assert!(
            matches!(err, AtlsError::ReportDataNotBound { .. }),
            "{platform}: {err}"
        );

        // Its tampered twin fails earlier, in the appraisal.
        let mut tampered = quote.clone();
        tampered[200] ^= 1;
        let tagged = TaggedEvidence::new(platform, tampered, claims.encode());
        let cert = self_signed(
            &key,
            "tampered",
            UnixTime(FIXTURE_TIME),
            Some(tagged.encode()),
        )
        .unwrap();
        assert!(matches!(
            v.appraise_certificate(&cert),
            Err(AtlsError::Appraisal(_))
        ));

        // Gramine's legacy layout (bare quote) is parsed and refused for the same reason.
        let legacy = self_signed_with(
            &key,
            "gramine-legacy",
            UnixTime(FIXTURE_TIME),
            Some((OID_GRAMINE_LEGACY_QUOTE_ARCS, quote)),
        )
        .unwrap();
        let err = v.appraise_certificate(&legacy).unwrap_err();
        assert!(
            matches!(err, AtlsError::ReportDataNotBound { .. }),
            "{platform} legacy: {err}"
        );
    }
}

/// A rustls client with no certificate that trusts any server: an ordinary TLS client.
fn ordinary_client() -> tokio_rustls::TlsConnector {
    #[derive(Debug)]
    struct AnyServer(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn ordinary_round_trip(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = ordinary_client()
        .connect(ServerName::try_from("teemesh-node").unwrap(), tcp)
        .await?;
    tls.write_all(b"hello").await?;
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"hello");
    Ok(())
}

#[tokio::test]
async fn ordinary_clients_only_where_the_listener_allows_them() {
    let open =
        PeerVerifier::new(sim_policy(Some(GOOD)), Endorsements::default()).allow_unattested(true);
    let server = AtlsServer::new(identity(GOOD, "server"), Arc::new(open)).unwrap();
    let (addr, task) = serve_once(server).await;
    ordinary_round_trip(addr).await.unwrap();
    assert!(matches!(task.await.unwrap().unwrap(), Peer::Unattested));

    let closed =
        AtlsServer::new(identity(GOOD, "server"), verifier(sim_policy(Some(GOOD)))).unwrap();
    let (addr, task) = serve_once(closed).await;
    assert!(ordinary_round_trip(addr).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// A plain rustls server presenting `cert` with `key` (used to present forged certificates).
async fn plain_server(
    cert: CertificateDer<'static>,
    key: &KeyPair,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    (addr, task)
}

/// A client outside any TEE presents a plain certificate: the listener that admits unattested
/// clients sees its key hash (to authorise it like an SSH key), the client still appraises the
/// server, and per-session evidence bound to the shared exporter can be exchanged by the
/// application.
#[tokio::test]
async fn plain_certificate_client_is_seen_by_its_key_hash() {
    use sha2::Digest as _;
    let open =
        PeerVerifier::new(sim_policy(Some(GOOD)), Endorsements::default()).allow_unattested(true);
    let server_identity = identity(GOOD, "server");
    let server = AtlsServer::new(server_identity.clone(), Arc::new(open)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = server.accept(tcp).await?;
        let mut buf = [0u8; 5];
        conn.stream.read_exact(&mut buf).await?;
        conn.stream.write_all(&buf).await?;
        Ok::<_, AtlsError>((conn.peer, conn.peer_key_sha256, conn.exporter))
    });

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = self_signed(&key, "operator", UnixTime::now(), None).unwrap();
    let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let client_verifier = verifier(sim_policy(Some(GOOD)));
    let client = AtlsClient::unattested(cert, pkcs8, client_verifier.clone()).unwrap();
    let mut conn = client
        .connect(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    conn.stream.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    conn.stream.read_exact(&mut buf).await.unwrap();
    let att = conn.peer.attestation().expect("the server is appraised");
    assert!(!att.fresh_in_session, "no session frames for plain clients");
    assert_eq!(
        conn.peer_key_sha256.unwrap(),
        <[u8; 32]>::from(sha2::Sha256::digest(server_identity.spki_der()))
    );

    let (peer, key_hash, server_exporter) = task.await.unwrap().unwrap();
    assert!(matches!(peer, Peer::Unattested));
    assert_eq!(
        key_hash.unwrap(),
        <[u8; 32]>::from(sha2::Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key)
        ))
    );
    assert_eq!(server_exporter, conn.exporter);
    // Application-level freshness: the server's evidence bound to this session's exporter.
    let fresh = server_identity
        .session_evidence(&server_exporter, UnixTime::now())
        .unwrap();
    let server_cert = server_identity.certificate().to_vec();
    client_verifier
        .appraise_session_evidence(&server_cert, &fresh, &conn.exporter)
        .unwrap();
    assert!(
        client_verifier
            .appraise_session_evidence(&server_cert, &fresh, &[0u8; 32])
            .is_err(),
        "evidence for another session is refused"
    );
}
