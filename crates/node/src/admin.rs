//! The admin API on the node's side: attested TLS sessions, authorisation (admin keys by
//! hash, optionally attested clients the peer policy affirms), then framed requests answered in
//! order. Every request is logged with the peer's identity and its outcome, never its payload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atls::{AtlsServer, NodeIdentity, Peer};
use node_protocol::{
    Bytes, ErrorKind, ErrorReply, MAX_FRAME_LEN, MqttListener, Op, PROTOCOL_VERSION, ProtocolError,
    Reply, Request, Response, StatusReply, frame_len,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::config::{AdminAuth, format_key_hash};
use crate::metrics::Metrics;
use crate::modules::ModuleHost;

/// How long a client has for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a session may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a client has to send the rest of a frame once it started.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);
/// Output events returned by one `outputs` request at most.
const MAX_OUTPUTS_PER_REQUEST: usize = 4096;
/// Largest frame read from a client the node refused (only to answer it with the reason): a
/// hello is a few dozen bytes.
const UNAUTHORISED_FRAME_LIMIT: usize = 64 << 10;
/// Buffer reserved for a frame before its bytes arrive.
const INITIAL_FRAME_CAPACITY: usize = 64 << 10;

/// What every admin session needs.
pub(crate) struct AdminContext {
    pub(crate) host: Arc<ModuleHost>,
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth: AdminAuth,
    pub(crate) platform: String,
    pub(crate) simulated: bool,
    pub(crate) shutting_down: tokio::sync::watch::Receiver<bool>,
    /// The MQTT broker's listeners, for `Status`.
    pub(crate) mqtt_listeners: Vec<crate::mqtt::BoundListener>,
}

/// Serves one admin connection to its end.
pub(crate) async fn serve_connection(
    ctx: Arc<AdminContext>,
    server: AtlsServer,
    tcp: TcpStream,
    from: SocketAddr,
) {
    let _ = tcp.set_nodelay(true);
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, server.accept(tcp)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            ctx.metrics.admin_connection(false);
            let message = e.to_string();
            if message.contains("attestation was refused")
                || matches!(e, atls::AtlsError::Appraisal(_))
            {
                ctx.metrics.attestation_refused();
            }
            tracing::warn!(%from, reason = %message, "admin connection refused in the handshake");
            return;
        }
        Err(_) => {
            ctx.metrics.admin_connection(false);
            tracing::warn!(%from, "admin connection refused: no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs());
            return;
        }
    };
    let (who, authorised) = authorise(&ctx.auth, &conn.peer, conn.peer_key_sha256);
    ctx.metrics.admin_connection(authorised.is_ok());
    let mut stream = conn.stream;
    let role = match authorised {
        Ok(role) => role,
        Err(reason) => {
            tracing::warn!(%from, peer = %who, %reason, "admin client refused");
            // Answer its first request with the reason, so the operator sees it too.
            if let Ok(Ok(Some(frame))) = tokio::time::timeout(
                FRAME_TIMEOUT,
                read_frame_within(&mut stream, UNAUTHORISED_FRAME_LIMIT),
            )
            .await
            {
                let id = Request::decode(&frame).map(|r| r.id).unwrap_or(0);
                let response = Response {
                    id,
                    outcome: Err(ErrorReply::new(ErrorKind::Unauthorised, reason)),
                };
                let _ = write_response(&mut stream, &response).await;
            }
            let _ = stream.shutdown().await;
            return;
        }
    };
    tracing::info!(%from, peer = %who, ?role, "admin session opened");
    // Requests are read here and answered, in order, by a writer task: events and requests for
    // modules are queued on their module's worker and the next request is read while they run,
    // so a peer's pipelined events are handled back to back.
    let (mut reader, writer) = tokio::io::split(stream);
    let (answers, queued) = tokio::sync::mpsc::channel::<Answer>(PIPELINE);
    let writer = tokio::spawn(write_answers(
        writer,
        queued,
        ctx.metrics.clone(),
        from,
        who.clone(),
    ));
    let mut greeted = false;
    let mut shutting_down = ctx.shutting_down.clone();
    loop {
        // Between requests a session ends as soon as the node shuts down; a request already
        // read is answered first.
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader)) => next,
            _ = shutting_down.wait_for(|&down| down) => break,
        };
        let frame = match next {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(%from, peer = %who, "admin session ended: {e}");
                let _ = answers
                    .send(Answer::Ready {
                        id: 0,
                        op: "malformed",
                        outcome: Box::new(Err(ErrorReply::new(
                            ErrorKind::BadRequest,
                            e.to_string(),
                        ))),
                    })
                    .await;
                break;
            }
            Err(_) => {
                tracing::info!(%from, peer = %who, "admin session idle for {} s; closing", IDLE_TIMEOUT.as_secs());
                break;
            }
        };
        let answer = match Request::decode(&frame) {
            Ok(request) => {
                let (id, op) = (request.id, request.op.name());
                let refused = if !greeted && !matches!(request.op, Op::Hello { .. }) {
                    Some(ErrorReply::new(
                        ErrorKind::BadRequest,
                        "the first request of a session must be hello",
                    ))
                } else if role == Role::EventPeer
                    && !matches!(
                        request.op,
                        Op::Hello { .. } | Op::Status | Op::Event { .. } | Op::Ask { .. }
                    )
                {
                    Some(ErrorReply::new(ErrorKind::Unauthorised, EVENT_PEER_ONLY))
                } else {
                    None
                };
                let down = *ctx.shutting_down.borrow();
                match (refused, request.op) {
                    (Some(e), _) => Answer::Ready {
                        id,
                        op,
                        outcome: Box::new(Err(e)),
                    },
                    (None, Op::Event { module, envelope }) if !down => {
                        match ctx.host.enqueue_event(&module, envelope.0).await {
                            Ok(pending) => Answer::Event { id, pending },
                            // The module's queue stayed full: refusing this event would lose it
                            // (later ones would overtake it). Closing the session makes the
                            // peer send everything unacknowledged again, in order, later.
                            Err(e) if e.kind == ErrorKind::Busy => {
                                tracing::warn!(%from, peer = %who, module = %module, "module too busy for events; closing the peer's session so it resends later");
                                break;
                            }
                            Err(e) => Answer::Ready {
                                id,
                                op,
                                outcome: Box::new(Err(e)),
                            },
                        }
                    }
                    (None, Op::Ask { module, envelope }) if !down => {
                        match ctx.host.enqueue_ask(&module, envelope.0).await {
                            Ok(pending) => Answer::Ask { id, pending },
                            Err(e) => Answer::Ready {
                                id,
                                op,
                                outcome: Box::new(Err(e)),
                            },
                        }
                    }
                    (None, request_op) => {
                        let outcome = dispatch(&ctx, request_op, &conn.exporter).await;
                        greeted |= outcome
                            .as_ref()
                            .is_ok_and(|r| matches!(r, Reply::Hello { .. }));
                        Answer::Ready {
                            id,
                            op,
                            outcome: Box::new(outcome),
                        }
                    }
                }
            }
            Err(ProtocolError::Unsupported {
                id,
                version,
                detail,
            }) => Answer::Ready {
                id,
                op: "unsupported",
                outcome: Box::new(Err(ErrorReply::new(
                    ErrorKind::Unsupported,
                    format!(
                        "this node speaks admin protocol version {version} and does not support this request: {detail}"
                    ),
                ))),
            },
            Err(e) => Answer::Ready {
                id: 0,
                op: "malformed",
                outcome: Box::new(Err(ErrorReply::new(ErrorKind::BadRequest, e.to_string()))),
            },
        };
        if answers.send(answer).await.is_err() {
            // The writer stopped: the client is gone.
            break;
        }
    }
    drop(answers);
    if let Ok(mut writer) = writer.await {
        let _ = writer.shutdown().await;
    }
    tracing::info!(%from, peer = %who, "admin session closed");
}

/// Answers queued in a session beyond which reading its next request waits.
const PIPELINE: usize = 1024;
/// Answers written in one TLS write at most.
const ANSWER_BATCH: usize = 64;

/// One request's answer, in the order the requests came.
enum Answer {
    Ready {
        id: u64,
        op: &'static str,
        outcome: Box<Result<Reply, ErrorReply>>,
    },
    /// An event queued on its module's worker.
    Event {
        id: u64,
        pending: crate::modules::Pending,
    },
    /// A protected request queued on its module's worker.
    Ask {
        id: u64,
        pending: crate::modules::Pending,
    },
}

/// Writes a session's answers in request order, each logged and counted; several ready ones go
/// in one write. Returns the write half when the session ends (or a write fails).
async fn write_answers<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut answers: tokio::sync::mpsc::Receiver<Answer>,
    metrics: Arc<Metrics>,
    from: SocketAddr,
    who: String,
) -> W {
    let settle = |pending: crate::modules::Pending| async move {
        pending.await.unwrap_or_else(|_| {
            Err(ErrorReply::new(
                ErrorKind::Internal,
                "the module's worker stopped during the call",
            ))
        })
    };
    let mut batch = Vec::new();
    let mut in_batch = 0;
    while let Some(answer) = answers.recv().await {
        let (id, op, outcome) = match answer {
            Answer::Ready { id, op, outcome } => (id, op, *outcome),
            Answer::Event { id, pending } => (
                id,
                "event",
                settle(pending).await.map(|(_, _, event)| {
                    let (counter, missing) = event.unwrap_or_default();
                    Reply::Delivered { counter, missing }
                }),
            ),
            Answer::Ask { id, pending } => (
                id,
                "ask",
                settle(pending).await.map(|(sealed, _, _)| Reply::Answer {
                    envelope: Bytes(sealed),
                }),
            ),
        };
        let outcome_label = match &outcome {
            Ok(_) => "ok",
            Err(e) => kind_label(e.kind),
        };
        metrics.request(op, outcome_label);
        match &outcome {
            Ok(_) => {
                tracing::info!(%from, peer = %who, request = id, op, outcome = outcome_label, "admin request")
            }
            Err(e) => {
                tracing::warn!(%from, peer = %who, request = id, op, outcome = outcome_label, error = %e.message, "admin request failed")
            }
        }
        match node_protocol::encode_frame(&Response { id, outcome }.encode()) {
            Ok(frame) => batch.extend_from_slice(&frame),
            Err(e) => tracing::warn!(%from, peer = %who, request = id, "answer not sent: {e}"),
        }
        in_batch += 1;
        if answers.is_empty() || in_batch >= ANSWER_BATCH {
            if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
                return writer;
            }
            batch.clear();
            in_batch = 0;
        }
    }
    if !batch.is_empty() {
        let _ = writer.write_all(&batch).await;
        let _ = writer.flush().await;
    }
    writer
}

/// What an authorised session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Everything: an admin key in `admin.authorized_keys`, or an attested client when
    /// `admin.allow_attested_clients` is set.
    Admin,
    /// Another attested node that the peer policy affirms: it may greet, ask for status and
    /// deliver events (which the node authenticates end to end anyway), nothing else.
    EventPeer,
}

/// The refusal an event peer gets for anything but events.
const EVENT_PEER_ONLY: &str = "attested peer nodes may only deliver events here: this node does not admit attested clients as admins (admin.allow_attested_clients = false) and their key is not in admin.authorized_keys";

/// Who the peer is (for logs) and what it may do on this node.
fn authorise(
    auth: &AdminAuth,
    peer: &Peer,
    key_hash: Option<[u8; 32]>,
) -> (String, Result<Role, String>) {
    let key = key_hash.map(|h| format_key_hash(&h));
    match peer {
        Peer::Attested(att) => {
            let who = format!(
                "attested {} {:?} key {}",
                att.verified.claims().platform_kind(),
                att.bound.node_name.as_deref().unwrap_or("?"),
                key.as_deref().unwrap_or("?")
            );
            let listed = key_hash.is_some_and(|h| auth.authorized_keys.contains(&h));
            if auth.allow_attested_clients || listed {
                (who, Ok(Role::Admin))
            } else {
                (who, Ok(Role::EventPeer))
            }
        }
        Peer::Unattested => match (key_hash, key) {
            (Some(hash), Some(key)) if auth.authorized_keys.contains(&hash) => (format!("admin key {key}"), Ok(Role::Admin)),
            (Some(_), Some(key)) => (
                format!("admin key {key}"),
                Err(format!("admin key {key} is not in this node's admin.authorized_keys")),
            ),
            _ => (
                "anonymous TLS client".into(),
                Err("present an admin key (teemesh admin key) that this node's admin.authorized_keys lists".into()),
            ),
        },
    }
}

async fn dispatch(ctx: &AdminContext, op: Op, exporter: &[u8; 32]) -> Result<Reply, ErrorReply> {
    if *ctx.shutting_down.borrow() && !matches!(op, Op::Hello { .. } | Op::Status | Op::List) {
        return Err(ErrorReply::new(
            ErrorKind::ShuttingDown,
            "the node is shutting down",
        ));
    }
    match op {
        Op::Hello {
            version,
            session_evidence,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(ErrorReply::new(
                    ErrorKind::Unsupported,
                    format!(
                        "this node speaks admin protocol version {PROTOCOL_VERSION}, the client {version}"
                    ),
                ));
            }
            let session_evidence = if session_evidence {
                let identity = ctx.identity.clone();
                let exporter = *exporter;
                let evidence = tokio::task::spawn_blocking(move || {
                    identity.session_evidence(&exporter, attest::UnixTime::now())
                })
                .await
                .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))?
                .map_err(|e| {
                    ErrorReply::new(
                        ErrorKind::Internal,
                        format!("cannot produce session evidence: {e}"),
                    )
                })?;
                Some(Bytes(evidence))
            } else {
                None
            };
            Ok(Reply::Hello {
                version: PROTOCOL_VERSION,
                node: ctx.identity.name().to_owned(),
                platform: ctx.platform.clone(),
                simulated: ctx.simulated,
                session_evidence,
            })
        }
        Op::Status => Ok(Reply::Status(StatusReply {
            node: ctx.identity.name().to_owned(),
            platform: ctx.platform.clone(),
            simulated: ctx.simulated,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            uptime_secs: ctx.metrics.uptime().as_secs(),
            modules: ctx.host.count() as u64,
            mqtt_listeners: ctx
                .mqtt_listeners
                .iter()
                .map(|l| MqttListener {
                    kind: l.kind.as_str().to_owned(),
                    address: l.address.to_string(),
                })
                .collect(),
        })),
        Op::Load { name, wasm } => ctx.host.load(&name, wasm.0, true).await.map(Reply::Module),
        Op::Update { name, wasm } => ctx.host.update(&name, wasm.0).await.map(Reply::Module),
        Op::Rekey { spec, activate } => ctx.host.rekey(&spec, activate).map(|()| Reply::Connected),
        Op::Export {
            module,
            app,
            recipient_claims,
            recipient_certificate,
        } => ctx
            .host
            .export(&module, &app, &recipient_claims, &recipient_certificate.0)
            .await
            .map(|handover| Reply::Exported {
                handover: Bytes(handover),
            }),
        Op::Import {
            module,
            app,
            handover,
            sender_claims,
            sender_certificate,
        } => ctx
            .host
            .import(
                &module,
                &app,
                &handover.0,
                &sender_claims,
                &sender_certificate.0,
            )
            .await
            .map(|()| Reply::Connected),
        Op::Thaw { module } => ctx.host.thaw(&module).map(|()| Reply::Connected),
        Op::Retarget {
            app,
            connection,
            module,
            peer_address,
        } => ctx
            .host
            .retarget(&module, &app, connection, &peer_address)
            .await
            .map(|()| Reply::Connected),
        Op::List => Ok(Reply::Modules(ctx.host.list())),
        Op::Unload { name } => ctx.host.unload(&name).await.map(|()| Reply::Unloaded),
        Op::Call {
            module,
            kind,
            port,
            data,
        } => {
            let (data, outputs) = ctx.host.call(&module, kind, &port, data.0).await?;
            Ok(Reply::Called {
                data: Bytes(data),
                outputs,
            })
        }
        Op::Outputs { module, max } => {
            let max = (max as usize).min(MAX_OUTPUTS_PER_REQUEST);
            let (events, dropped) = ctx.host.outputs(&module, max)?;
            Ok(Reply::Outputs { events, dropped })
        }
        Op::Connect(spec) => ctx.host.connect(&spec).map(|()| Reply::Connected),
        Op::Topic(spec) => ctx.host.attach_topic(&spec).map(|()| Reply::Connected),
        Op::Periodic {
            module,
            input,
            every_ms,
            payload,
        } => ctx
            .host
            .schedule(&module, &input, Duration::from_millis(every_ms), payload.0)
            .map(|()| Reply::Scheduled),
        Op::Ask { module, envelope } => {
            ctx.host
                .answer_request(&module, envelope.0)
                .await
                .map(|sealed| Reply::Answer {
                    envelope: Bytes(sealed),
                })
        }
        Op::Event { module, envelope } => ctx
            .host
            .deliver_event(&module, envelope.0)
            .await
            .map(|(counter, missing)| Reply::Delivered { counter, missing }),
        Op::Claims { module } => Ok(Reply::Claims {
            signed_claims_json: ctx.host.claims(&module)?,
            node_certificate: Bytes(ctx.identity.certificate().to_vec()),
        }),
    }
}

fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Unauthorised => "unauthorised",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Exists => "exists",
        ErrorKind::Busy => "busy",
        ErrorKind::InvalidModule => "invalid_module",
        ErrorKind::ModuleFailed => "module_failed",
        ErrorKind::GuestError => "guest_error",
        ErrorKind::EventRejected => "event_rejected",
        ErrorKind::ShuttingDown => "shutting_down",
        ErrorKind::Moved => "moved",
        ErrorKind::Internal => "internal",
        ErrorKind::Unknown => "unknown",
    }
}

/// Reads one frame: `Ok(None)` at a clean end of stream before a header.
pub(crate) async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<Vec<u8>>, ProtocolError> {
    read_frame_within(stream, MAX_FRAME_LEN).await
}

/// Reads one frame of at most `limit` bytes. Memory grows with the bytes that arrive, not with
/// the length a header announces, so a peer cannot make the node reserve a large buffer by
/// sending four bytes.
async fn read_frame_within<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<Option<Vec<u8>>, ProtocolError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(ProtocolError::Invalid(format!("connection failed: {e}"))),
    }
    let len = frame_len(header)?;
    if len > limit {
        return Err(ProtocolError::Invalid(format!(
            "a {len}-byte frame where at most {limit} bytes are accepted"
        )));
    }
    let mut payload = Vec::with_capacity(len.min(INITIAL_FRAME_CAPACITY));
    let read = tokio::time::timeout(
        FRAME_TIMEOUT,
        (&mut *stream).take(len as u64).read_to_end(&mut payload),
    )
    .await
    .map_err(|_| {
        ProtocolError::Invalid(format!(
            "the rest of a {len}-byte frame did not arrive within {} s",
            FRAME_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| ProtocolError::Invalid(format!("the connection ended inside a frame: {e}")))?;
    if read != len {
        return Err(ProtocolError::Invalid(format!(
            "the connection ended inside a frame ({read} of {len} bytes)"
        )));
    }
    Ok(Some(payload))
}

/// Writes one framed payload.
pub(crate) async fn write_payload<S: AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> std::io::Result<()> {
    let frame = node_protocol::encode_frame(payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    stream.write_all(&frame).await?;
    stream.flush().await
}

async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
) -> std::io::Result<()> {
    write_payload(stream, &response.encode()).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use atls::{NodeIdentity, PeerVerifier};
    use attest::{AppraisalPolicy, Endorsements, Measurement384, UnixTime};

    use super::*;

    /// An attested peer as the node's verifier sees it: a simulated identity appraised under a
    /// policy that allows simulation.
    fn attested_peer() -> (Peer, [u8; 32]) {
        let attester = Arc::new(platform::Simulated::with_measurement(Measurement384(
            [3; 48],
        )));
        let identity = NodeIdentity::generate(attester, "deployer", UnixTime::now()).unwrap();
        let policy = AppraisalPolicy::from_toml("allow_simulated = true").unwrap();
        let verifier = PeerVerifier::new(policy, Endorsements::default());
        let peer = verifier
            .appraise_certificate(identity.certificate())
            .unwrap();
        assert!(matches!(peer, Peer::Attested(_)));
        (peer, [9; 32])
    }

    fn auth(keys: &[[u8; 32]], allow_attested_clients: bool) -> AdminAuth {
        AdminAuth {
            authorized_keys: keys.to_vec(),
            allow_attested_clients,
        }
    }

    #[test]
    fn attested_clients_administer_only_when_the_config_says_so_or_their_key_is_listed() {
        let (peer, key) = attested_peer();
        let (who, verdict) = authorise(&auth(&[], false), &peer, Some(key));
        assert!(who.starts_with("attested sim \"deployer\""), "{who}");
        assert_eq!(verdict, Ok(Role::EventPeer), "only events by default");
        assert!(EVENT_PEER_ONLY.contains("allow_attested_clients = false"));
        assert_eq!(
            authorise(&auth(&[], true), &peer, Some(key)).1,
            Ok(Role::Admin)
        );
        assert_eq!(
            authorise(&auth(&[key], false), &peer, Some(key)).1,
            Ok(Role::Admin)
        );
    }

    #[test]
    fn plain_clients_need_a_listed_key_and_attestation_does_not_substitute_for_one() {
        let listed = [1; 32];
        let other = [2; 32];
        // allow_attested_clients admits attested peers, never unattested ones.
        for allow_attested in [false, true] {
            let config = auth(&[listed], allow_attested);
            assert_eq!(
                authorise(&config, &Peer::Unattested, Some(listed)).1,
                Ok(Role::Admin)
            );
            let (who, verdict) = authorise(&config, &Peer::Unattested, Some(other));
            assert!(who.starts_with("admin key sha256:"), "{who}");
            assert!(
                verdict
                    .unwrap_err()
                    .contains("is not in this node's admin.authorized_keys")
            );
            let (who, verdict) = authorise(&config, &Peer::Unattested, None);
            assert_eq!(who, "anonymous TLS client");
            assert!(verdict.unwrap_err().contains("teemesh admin key"));
        }
    }
}
