//! Step 5 of `teemesh demo`: the simulated nodes talk over mutually attested TLS on 127.0.0.1.
//! Both ends of every connection prove themselves in the handshake; a node running a modified
//! binary and a certificate whose evidence was copied onto another key are refused.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use atls::{AtlsClient, AtlsServer, Freshness, NodeIdentity, Peer, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements, Measurement384, PlatformClaims, UnixTime};
use platform::Simulated;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::table::{Table, short};

/// One connection attempt of the demo and what it is expected to do.
struct Attempt {
    client: Arc<NodeIdentity>,
    label: &'static str,
    freshness: Freshness,
    expect_ok: bool,
}

fn policy(measurement: &Measurement384) -> AppraisalPolicy {
    let mut policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    policy.sim.measurement.0 = vec![*measurement];
    policy
}

fn identity(measurement: Measurement384, name: &str) -> Result<Arc<NodeIdentity>> {
    let attester = Arc::new(Simulated::with_measurement(measurement));
    Ok(Arc::new(NodeIdentity::generate(
        attester,
        name,
        UnixTime::now(),
    )?))
}

fn measurement_of(peer: &Peer) -> String {
    match peer.attestation().map(|a| &a.verified.claims().platform) {
        Some(PlatformClaims::Sim(c)) => short(&c.measurement.to_hex(), 12),
        Some(_) => "hardware".into(),
        None => "unattested".into(),
    }
}

/// Runs the step; returns the surprises (outcomes other than expected).
pub(crate) fn run(measurement: Measurement384) -> Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(measurement))
}

async fn run_async(measurement: Measurement384) -> Result<Vec<String>> {
    let mut tampered = measurement;
    tampered.0[0] ^= 0xFF;
    let node_a = identity(measurement, "node-a")?;
    let node_b = identity(measurement, "node-b")?;
    let node_c = identity(measurement, "node-c")?;
    let mallory = identity(tampered, "mallory")?;

    let attempts = [
        Attempt {
            client: node_b,
            label: "node-b → node-a",
            freshness: Freshness::PerSession,
            expect_ok: true,
        },
        Attempt {
            client: node_c,
            label: "node-c → node-a",
            freshness: Freshness::MaxAge(300),
            expect_ok: true,
        },
        Attempt {
            client: mallory,
            label: "mallory → node-a",
            freshness: Freshness::PerSession,
            expect_ok: false,
        },
    ];

    let mut table = Table::new(&[
        "connection",
        "freshness",
        "outcome",
        "what each side proved",
    ]);
    let mut surprises = Vec::new();
    for attempt in &attempts {
        let server_verifier = Arc::new(
            PeerVerifier::new(policy(&measurement), Endorsements::default())
                .with_freshness(attempt.freshness),
        );
        let server = AtlsServer::new(node_a.clone(), server_verifier)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serving = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let mut conn = server.accept(tcp).await?;
            let mut buf = [0u8; 16];
            let n = conn.stream.read(&mut buf).await?;
            conn.stream.write_all(&buf[..n]).await?;
            conn.stream.shutdown().await.ok();
            Ok::<Peer, anyhow::Error>(conn.peer)
        });
        let client_verifier = Arc::new(
            PeerVerifier::new(policy(&measurement), Endorsements::default())
                .with_freshness(attempt.freshness),
        );
        let client = AtlsClient::new(attempt.client.clone(), client_verifier)?;
        let outcome = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let mut conn = client.connect(tcp).await?;
            conn.stream.write_all(b"hello, node-a").await?;
            let mut buf = [0u8; 13];
            conn.stream.read_exact(&mut buf).await?;
            Ok::<Peer, anyhow::Error>(conn.peer)
        }
        .await;
        let served = serving.await.context("server task")?;
        let freshness = match attempt.freshness {
            Freshness::PerSession => "per session".to_owned(),
            Freshness::MaxAge(s) => format!("max age {s} s"),
        };
        let (verdict, detail) = match (&outcome, &served) {
            (Ok(server_peer), Ok(client_peer)) => (
                "CONNECTED".to_owned(),
                format!(
                    "node-a proved {}, {} proved {}; {}; an encrypted echo went through",
                    measurement_of(server_peer),
                    attempt.client.name(),
                    measurement_of(client_peer),
                    if client_peer
                        .attestation()
                        .is_some_and(|a| a.fresh_in_session)
                    {
                        "fresh evidence bound to this session's TLS exporter"
                    } else {
                        "certificate evidence within its maximum age"
                    }
                ),
            ),
            (_, Err(e)) => ("REFUSED".to_owned(), format!("by node-a: {e}")),
            (Err(e), Ok(_)) => ("REFUSED".to_owned(), format!("by the client: {e}")),
        };
        if (verdict == "CONNECTED") != attempt.expect_ok {
            surprises.push(format!("{}: unexpected {verdict}", attempt.label));
        }
        table.row(vec![attempt.label.into(), freshness, verdict, detail]);
    }

    // A certificate carrying node-a's genuine evidence on a key mallory controls.
    let stolen = atls::ext::parse_certificate(node_a.certificate())?;
    let Some(atls::ext::CertificateEvidence::Tagged(evidence)) = stolen.evidence else {
        anyhow::bail!("node-a's certificate carries no evidence");
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let forged = atls::self_signed(&key, "node-a", UnixTime::now(), Some(evidence.encode()))?;
    let checker = PeerVerifier::new(policy(&measurement), Endorsements::default());
    let detail = match checker.appraise_certificate(&forged) {
        Ok(_) => {
            surprises.push("a certificate with copied evidence was accepted".into());
            "accepted".to_owned()
        }
        Err(e) => e.to_string(),
    };
    table.row(vec![
        "copied certificate".into(),
        "any".into(),
        "REFUSED".into(),
        detail,
    ]);
    println!("{}\n", table.render());
    Ok(surprises)
}
