#![allow(clippy::unwrap_used)]
//! The admin API at the byte level, against a node started in process on the simulated
//! platform: what a client that does not follow the protocol gets back. Every bad input is
//! answered with a clear error (and the request's id where it can be read), never a crash.

use std::sync::Arc;

use atls::{AtlsClient, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements};
use node::protocol::{ErrorKind, Op, PROTOCOL_VERSION, Reply, Request, Response};
use node::{AdminKey, NodeConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Response {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    Response::decode(&payload).unwrap()
}

async fn send_raw<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, payload: &[u8]) {
    stream
        .write_all(&(payload.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(payload).await.unwrap();
    stream.flush().await.unwrap();
}

fn error_of(response: &Response) -> (ErrorKind, String) {
    match &response.outcome {
        Err(e) => (e.kind, e.message.clone()),
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem")).unwrap();
    let config = NodeConfig::parse(
        &format!(
            "name = \"wire\"\ndata_dir = \"data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\n[admin]\nauthorized_keys = [\"{}\"]\n",
            key.hash_string()
        ),
        dir.path(),
    )
    .unwrap();
    let node = node::start(&config, platform::PlatformRoots::default())
        .await
        .unwrap();
    let policy = AppraisalPolicy {
        allow_simulated: true,
        max_evidence_age: Some(attest::policy::DurationSecs(300)),
        ..AppraisalPolicy::default()
    };
    let verifier = Arc::new(PeerVerifier::new(policy, Endorsements::default()));
    let (cert, private_key) = key.certificate().unwrap();
    let client = AtlsClient::unattested(cert, private_key, verifier).unwrap();
    let connect = || async {
        let tcp = TcpStream::connect(node.admin_addr).await.unwrap();
        client.connect(tcp).await.unwrap().stream
    };

    let mut stream = connect().await;
    // Anything before hello is refused, with the request's id.
    send_raw(
        &mut stream,
        &Request {
            id: 5,
            op: Op::List,
        }
        .encode(),
    )
    .await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.id, 5);
    let (kind, message) = error_of(&response);
    assert_eq!(kind, ErrorKind::BadRequest);
    assert!(message.contains("must be hello"), "{message}");
    // Another protocol version.
    let hello = |version| Request {
        id: 6,
        op: Op::Hello {
            version,
            session_evidence: false,
        },
    };
    send_raw(&mut stream, &hello(PROTOCOL_VERSION + 1).encode()).await;
    let (kind, message) = error_of(&read_response(&mut stream).await);
    assert_eq!(kind, ErrorKind::Unsupported);
    assert!(message.contains("protocol version"), "{message}");
    send_raw(&mut stream, &hello(PROTOCOL_VERSION).encode()).await;
    assert!(matches!(
        read_response(&mut stream).await.outcome,
        Ok(Reply::Hello { .. })
    ));
    // Not CBOR at all.
    send_raw(&mut stream, b"GET / HTTP/1.1\r\n\r\n").await;
    let (kind, message) = error_of(&read_response(&mut stream).await);
    assert_eq!(kind, ErrorKind::BadRequest);
    assert!(message.contains("malformed request"), "{message}");
    // An operation from a later protocol version: unsupported, and the id survives.
    let future = [
        0xa2, 0x62, b'i', b'd', 0x18, 42, 0x62, b'o', b'p', 0x67, b'm', b'i', b'g', b'r', b'a',
        b't', b'e',
    ];
    send_raw(&mut stream, &future).await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.id, 42);
    assert_eq!(error_of(&response).0, ErrorKind::Unsupported);
    // A name that would escape the data directory.
    let escape = Request {
        id: 7,
        op: Op::Unload {
            name: "../../etc".into(),
        },
    };
    send_raw(&mut stream, &escape.encode()).await;
    let (kind, message) = error_of(&read_response(&mut stream).await);
    assert_eq!(kind, ErrorKind::BadRequest);
    assert!(message.contains("module name"), "{message}");
    // The session still works.
    send_raw(
        &mut stream,
        &Request {
            id: 8,
            op: Op::Status,
        }
        .encode(),
    )
    .await;
    assert!(matches!(
        read_response(&mut stream).await.outcome,
        Ok(Reply::Status(_))
    ));
    // A frame header announcing 4 GiB: refused before anything is allocated, session closed.
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    stream.flush().await.unwrap();
    let (kind, message) = error_of(&read_response(&mut stream).await);
    assert_eq!(kind, ErrorKind::BadRequest);
    assert!(message.contains("larger than"), "{message}");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty());

    // A client the node refuses is answered only if its first frame is small (a hello): a large
    // one is not read at all, so refused clients cannot make the node buffer megabytes.
    let stranger = AdminKey::load_or_create(&dir.path().join("stranger.pem")).unwrap();
    let (cert, private_key) = stranger.certificate().unwrap();
    let policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    let stranger = AtlsClient::unattested(
        cert,
        private_key,
        Arc::new(PeerVerifier::new(policy, Endorsements::default())),
    )
    .unwrap();
    let tcp = TcpStream::connect(node.admin_addr).await.unwrap();
    let mut stream = stranger.connect(tcp).await.unwrap().stream;
    let big = vec![0u8; 1 << 20];
    let _ = send_raw_result(&mut stream, &big).await;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(
        rest.is_empty(),
        "a refused client's 1 MiB frame was read and answered"
    );
    // A small first request is answered with the reason.
    let tcp = TcpStream::connect(node.admin_addr).await.unwrap();
    let mut stream = stranger.connect(tcp).await.unwrap().stream;
    send_raw(
        &mut stream,
        &Request {
            id: 9,
            op: Op::Status,
        }
        .encode(),
    )
    .await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.id, 9);
    let (kind, message) = error_of(&response);
    assert_eq!(kind, ErrorKind::Unauthorised);
    assert!(
        message.contains("is not in this node's admin.authorized_keys"),
        "{message}"
    );

    node.shutdown().await;
}

/// Like `send_raw`, but the node may close the connection while we write.
async fn send_raw_result<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(payload).await?;
    stream.flush().await
}
