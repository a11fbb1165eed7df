//! What the deployer, the demo and `bench events` share: starting an in-process node on the
//! simulated TEE, uploading a module and verifying the claims its node signs for it, and the two
//! ends of a connection with a fresh key wrapped to each module's attested channel key.

use anyhow::{Context as _, Result, bail};
use atls::{PeerVerifier, SignedModuleClaims, verify_module_claims};
use attest::{AppraisalPolicy, Digest256, Measurement256, Measurement384};
use events::wrap::{ModulePublicKey, WrapContext, wrap_key};
use events::{ConnectionId, ConnectionKey};
use node::protocol::{
    Bytes, ConnectSpec, ConnectionEnd, EventProtection, ModuleManifest, Op, Reply,
};
use node::{AdminClient, AdminKey, NodeConfig, RunningNode};

use crate::admin_cmd::refusal;
use crate::atls_cmd::PeerRefused;

/// Starts node `name` in this process on the simulated TEE, its data in `dir/name`, admitting
/// `key` as admin and peers under the policy file `dir/peer_policy`.
pub(crate) async fn start_sim_node(
    dir: &std::path::Path,
    name: &str,
    key: &AdminKey,
    peer_policy: &str,
) -> Result<RunningNode> {
    start_sim_node_with(dir, name, key, peer_policy, "").await
}

/// [`start_sim_node`] with `extra` appended to the node's configuration (TOML tables after
/// `[admin]`, e.g. an `[mqtt]` section).
pub(crate) async fn start_sim_node_with(
    dir: &std::path::Path,
    name: &str,
    key: &AdminKey,
    peer_policy: &str,
    extra: &str,
) -> Result<RunningNode> {
    let config = NodeConfig::parse(
        &format!(
            "name = \"{name}\"\ndata_dir = \"{name}\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\npeer_policy = \"{peer_policy}\"\n[admin]\nauthorized_keys = [\"{}\"]\n{extra}",
            key.hash_string()
        ),
        dir,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(node::start(&config, platform::PlatformRoots::default()).await?)
}

/// The demo mesh's policy: simulated evidence admitted only with the simulated TEE's own
/// `measurement` (this executable's).
pub(crate) fn sim_mesh_policy(measurement: Measurement384) -> AppraisalPolicy {
    let mut policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    policy.sim.measurement.0 = vec![measurement];
    policy
}

/// Writes the same policy as `dir/peers.toml`, for demo nodes' `peer_policy`.
pub(crate) fn write_sim_peer_policy(
    dir: &std::path::Path,
    measurement: Measurement384,
) -> Result<()> {
    std::fs::write(
        dir.join("peers.toml"),
        format!(
            "allow_simulated = true\n[sim]\nmeasurement = \"{}\"\n",
            measurement.to_hex()
        ),
    )?;
    Ok(())
}

/// A module uploaded to a node whose signed claims were verified.
#[derive(Debug, Clone)]
pub(crate) struct AttestedModule {
    pub(crate) name: String,
    /// SHA-256 of its bytes, as the claims state.
    pub(crate) measurement: [u8; 32],
    /// The X25519 key its node holds for it, as the claims state.
    pub(crate) channel_key: ModulePublicKey,
    /// Its ports, as the node reported them.
    pub(crate) manifest: ModuleManifest,
    /// The claims as the node signed them (JSON), and the node's certificate they verify
    /// under: what a migration shows the module's other instance.
    pub(crate) signed_claims_json: String,
    pub(crate) node_certificate: Vec<u8>,
}

/// Uploads `wasm` as module `name` and verifies the claims the node signs for it under
/// `verifier`: the node's evidence, the signature, the certificate of this very session, and
/// the measurement (the hash of `wasm`, so a node running other code is refused).
pub(crate) async fn load_attested(
    client: &mut AdminClient,
    verifier: &PeerVerifier,
    name: &str,
    wasm: &[u8],
) -> Result<AttestedModule> {
    let reply = client
        .request(Op::Load {
            name: name.to_owned(),
            wasm: Bytes(wasm.to_vec()),
        })
        .await
        .map_err(|e| refusal(e).context(format!("module {name}: load")))?;
    let Reply::Module(info) = reply else {
        bail!("module {name}: the node did not answer the load");
    };
    verify_claims(client, verifier, name, Digest256::of(wasm).0, info.manifest).await
}

/// Fetches the claims the node signs for its module `name` and verifies them under `verifier`:
/// the node's evidence, the signature, the certificate of this very session, and that the
/// module's measurement is `measurement`.
pub(crate) async fn verify_claims(
    client: &mut AdminClient,
    verifier: &PeerVerifier,
    name: &str,
    measurement: [u8; 32],
    manifest: ModuleManifest,
) -> Result<AttestedModule> {
    let Reply::Claims {
        signed_claims_json,
        node_certificate,
    } = client
        .request(Op::Claims {
            module: name.to_owned(),
        })
        .await
        .map_err(refusal)?
    else {
        bail!("module {name}: the node sent no claims");
    };
    let signed: SignedModuleClaims = serde_json::from_str(&signed_claims_json)
        .with_context(|| format!("module {name}: malformed claims"))?;
    if node_certificate.0 != client.node_certificate {
        return Err(PeerRefused(format!(
            "module {name}: claims signed under another certificate than the attested session's"
        ))
        .into());
    }
    let verified = verify_module_claims(&node_certificate.0, &signed, verifier)
        .map_err(|e| PeerRefused(format!("module {name}: {e}")))?;
    verified
        .require_measurement(&Measurement256(measurement))
        .map_err(|e| PeerRefused(format!("module {name}: {e}")))?;
    let channel_key = signed
        .claims
        .channel_key
        .with_context(|| format!("module {name}: the node named no channel key"))?;
    Ok(AttestedModule {
        name: name.to_owned(),
        measurement,
        channel_key: ModulePublicKey::from_bytes(channel_key.0),
        manifest,
        signed_claims_json,
        node_certificate: node_certificate.0,
    })
}

/// One side of a connection: a module, its port, and (for the receiver) where its node listens.
pub(crate) struct Endpoint<'a> {
    pub(crate) module: &'a AttestedModule,
    pub(crate) port: &'a str,
}

/// The receiver's and the sender's `Op::Connect` for connection `id` of `app` from `from` to
/// `to` (whose node listens at `to_address`), with a fresh random key wrapped to each module's
/// channel key for exactly its own end. The key itself is dropped (zeroised) on return.
pub(crate) fn connection_specs(
    app: &str,
    id: u32,
    protection: EventProtection,
    from: &Endpoint<'_>,
    to: &Endpoint<'_>,
    to_address: &str,
) -> Result<(ConnectSpec, ConnectSpec)> {
    let key = ConnectionKey::generate()?;
    let receiver = end_spec(app, id, protection, to, ConnectionEnd::Receiver, &key)?;
    let sender = end_spec(
        app,
        id,
        protection,
        from,
        ConnectionEnd::Sender {
            peer_address: to_address.to_owned(),
            peer_module: to.module.name.clone(),
        },
        &key,
    )?;
    Ok((receiver, sender))
}

fn end_spec(
    app: &str,
    id: u32,
    protection: EventProtection,
    endpoint: &Endpoint<'_>,
    end: ConnectionEnd,
    key: &ConnectionKey,
) -> Result<ConnectSpec> {
    let wrapped = wrap_key(
        key,
        &endpoint.module.channel_key,
        &WrapContext {
            app,
            connection: ConnectionId::new(id)?,
            module: &endpoint.module.name,
            port: endpoint.port,
            measurement: &endpoint.module.measurement,
        },
    )?;
    Ok(ConnectSpec {
        app: app.to_owned(),
        connection: id,
        module: endpoint.module.name.clone(),
        port: endpoint.port.to_owned(),
        end,
        protection,
        wrapped_encapsulated: Bytes(wrapped.encapsulated),
        wrapped_ciphertext: Bytes(wrapped.ciphertext),
    })
}
