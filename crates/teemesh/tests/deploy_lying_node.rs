#![allow(clippy::unwrap_used)]
//! A node that runs other code than the deployer uploaded is refused at deploy time. The node
//! here is a test double with a real simulated attestation identity: its evidence appraises, it
//! speaks the admin protocol, and the module claims it signs are genuine signatures, but they
//! name another measurement than the uploaded file's (as a node that swapped the module would).
//! `teemesh deploy` must refuse it after verifying those claims, unload what it loaded, and
//! write no state.

#[path = "../../runtime/tests/guest/mod.rs"]
mod guest;

use std::process::Command;
use std::sync::{Arc, Mutex};

use atls::{AtlsServer, ModuleClaims, NodeIdentity, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements, Measurement256, Measurement384, UnixTime};
use node::protocol::{
    Bytes, ErrorKind, ErrorReply, ModuleInfo, ModuleManifest, Op, PROTOCOL_VERSION, Reply, Request,
    Response,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const TEEMESH: &str = env!("CARGO_BIN_EXE_teemesh");

/// What the lying node was asked to do.
#[derive(Debug, Default)]
struct Seen {
    loaded: Vec<String>,
    unloaded: Vec<String>,
}

/// Serves the admin protocol like a node, but claims every module has `claimed` as measurement.
async fn lying_node(claimed: [u8; 32], seen: Arc<Mutex<Seen>>) -> String {
    let identity = Arc::new(
        NodeIdentity::generate(
            Arc::new(platform::Simulated::with_measurement(Measurement384(
                [7; 48],
            ))),
            "liar",
            UnixTime::now(),
        )
        .unwrap(),
    );
    let policy = AppraisalPolicy::from_toml("allow_simulated = true").unwrap();
    let verifier =
        Arc::new(PeerVerifier::new(policy, Endorsements::default()).allow_unattested(true));
    let server = AtlsServer::new(identity.clone(), verifier).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(conn) = server.accept(tcp).await else {
                continue;
            };
            let (identity, seen) = (identity.clone(), seen.clone());
            tokio::spawn(async move {
                let exporter = conn.exporter;
                let mut stream = conn.stream;
                loop {
                    let mut len = [0u8; 4];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                    stream.read_exact(&mut frame).await.unwrap();
                    let request = Request::decode(&frame).unwrap();
                    let outcome = match request.op {
                        Op::Hello {
                            session_evidence, ..
                        } => Ok(Reply::Hello {
                            version: PROTOCOL_VERSION,
                            node: "liar".into(),
                            platform: "sim".into(),
                            simulated: true,
                            session_evidence: session_evidence.then(|| {
                                Bytes(
                                    identity
                                        .session_evidence(&exporter, UnixTime::now())
                                        .unwrap(),
                                )
                            }),
                        }),
                        Op::Load { name, .. } => {
                            seen.lock().unwrap().loaded.push(name.clone());
                            Ok(Reply::Module(ModuleInfo {
                                name,
                                measurement: hex::encode(claimed),
                                manifest: ModuleManifest::default(),
                                calls: 0,
                                failures: 0,
                                last_error: None,
                                busy: false,
                                queued_outputs: 0,
                                dropped_outputs: 0,
                                connections: Vec::new(),
                                topics: Vec::new(),
                            }))
                        }
                        Op::Claims { module } => {
                            let signed = ModuleClaims::for_module(
                                &identity,
                                &module,
                                Measurement256(claimed),
                                UnixTime::now(),
                            )
                            .with_channel_key([9; 32])
                            .sign(&identity)
                            .unwrap();
                            Ok(Reply::Claims {
                                signed_claims_json: serde_json::to_string(&signed).unwrap(),
                                node_certificate: Bytes(identity.certificate().to_vec()),
                            })
                        }
                        Op::Unload { name } => {
                            seen.lock().unwrap().unloaded.push(name);
                            Ok(Reply::Unloaded)
                        }
                        other => Err(ErrorReply::new(
                            ErrorKind::Unsupported,
                            format!("not expected here: {}", other.name()),
                        )),
                    };
                    let payload = Response {
                        id: request.id,
                        outcome,
                    }
                    .encode();
                    let frame = node::protocol::encode_frame(&payload).unwrap();
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[test]
fn a_node_whose_signed_claims_name_another_module_measurement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let wasm = guest::component();
    std::fs::write(dir.path().join("guest.wasm"), &wasm).unwrap();
    let swapped = guest::build(&guest::Options {
        variant: 3,
        ..guest::Options::default()
    });
    let claimed = attest::Digest256::of(&swapped).0;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let address = runtime.block_on(lying_node(claimed, seen.clone()));
    let measurement = hex::encode(attest::Digest256::of(&wasm).0);
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            r#"app: swapped
nodes:
  - {{name: liar, address: "{address}", platform: sim, policy: {{allow_simulated: true, sim: {{measurement: "{node}"}}}}}}
modules:
  - {{name: source, wasm: guest.wasm, measurement: "{measurement}", node: liar, outputs: [out], entries: [emit]}}
"#,
            node = "07".repeat(48)
        ),
    )
    .unwrap();
    let out = Command::new(TEEMESH)
        .args(["deploy", app.to_str().unwrap()])
        .env("TEEMESH_HOME", &home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("module source"), "{stderr}");
    assert!(stderr.contains(&measurement[..16]), "{stderr}");
    assert!(stderr.contains(&hex::encode(claimed)[..16]), "{stderr}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.loaded, ["source"]);
    assert_eq!(
        seen.unloaded,
        ["source"],
        "the deployer rolls back what it loaded"
    );
    assert!(!home.join("apps/swapped.json").exists());
}
