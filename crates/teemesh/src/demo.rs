//! `teemesh demo`: a guided tour on embedded defaults. Starts simulated nodes in-process, appraises
//! each one's nonce-bound evidence (refusing a node running a modified binary and a replayed
//! report), hands a relying party a signed attestation result, and verifies the bundled real
//! SGX/TDX/SEV-SNP evidence at its fixed time, then connects the nodes over mutually attested TLS, hosts modules and an application, and
//! shows the attested MQTT broker inside a node. Exits non-zero if any outcome is not the expected one.

use anyhow::{Result, bail};
use attest::{
    AppraisalPolicy, AttestationResult, Endorsements, Measurement384, ReportData, ResultAlgorithm,
    ResultSigningKey, SimulatedAttester, UnixTime, Verifier, issue_result_token,
};
use clap::Args;
use sha2::{Digest as _, Sha512};

use crate::fixtures;
use crate::table::{Table, short};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many honest simulated nodes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    nodes: u8,
}

/// A node of the demo mesh: a name and the (simulated) TEE it runs in.
struct DemoNode {
    name: String,
    attester: SimulatedAttester,
}

impl DemoNode {
    /// Evidence answering a verifier's challenge: report_data = SHA-512(nonce ‖ node name).
    fn answer(&self, nonce: &[u8; 32], now: UnixTime) -> Vec<u8> {
        self.attester
            .report(&challenge_binding(nonce, &self.name), now)
    }
}

fn challenge_binding(nonce: &[u8; 32], name: &str) -> ReportData {
    let mut h = Sha512::new();
    h.update(b"teemesh-demo-challenge-v1");
    h.update(nonce);
    h.update(name.as_bytes());
    ReportData(h.finalize().into())
}

fn fresh_nonce(i: u8) -> [u8; 32] {
    use sha2::Sha256;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(t.to_le_bytes());
    h.update([i]);
    h.update(std::process::id().to_le_bytes());
    h.finalize().into()
}

fn mesh_policy(measurement: &Measurement384, expected: &ReportData) -> Result<AppraisalPolicy> {
    let toml = format!(
        "allow_simulated = true\nmax_evidence_age = \"5m\"\nreport_data = \"{}\"\n[sim]\nmeasurement = \"{}\"\n",
        expected.to_hex(),
        measurement.to_hex()
    );
    Ok(AppraisalPolicy::from_toml(&toml)?)
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let mut surprises = Vec::new();
    println!("teemesh demo — nodes that prove what they are before anyone trusts them\n");
    let measurement = platform::executable_measurement()?;
    let now = UnixTime::now();

    println!(
        "[1/8] Starting {} simulated nodes in this process",
        args.nodes
    );
    println!(
        "  !! SIMULATED TEE: these nodes have NO hardware protection. Their evidence is signed by a"
    );
    println!(
        "  !! published simulated vendor key and is accepted below only because the mesh policy says"
    );
    println!(
        "  !! allow_simulated = true. On TDX, SEV-SNP or SGX the same steps use real hardware evidence.\n"
    );
    let mut nodes: Vec<DemoNode> = (0..args.nodes)
        .map(|i| DemoNode {
            name: format!("node-{}", char::from(b'a' + i)),
            attester: SimulatedAttester::new(measurement),
        })
        .collect();
    // A node whose binary was modified: its measurement differs from the reference value.
    let mut tampered = measurement;
    tampered.0[0] ^= 0xFF;
    nodes.push(DemoNode {
        name: "mallory (modified binary)".into(),
        attester: SimulatedAttester::new(tampered),
    });
    let mut started = Table::new(&[
        "node",
        "platform",
        "measurement (SHA-384 of its executable)",
    ]);
    for node in &nodes {
        started.row(vec![
            node.name.clone(),
            "sim".into(),
            short(&node.attester.measurement().to_hex(), 32),
        ]);
    }
    println!("{}\n", started.render());

    println!("[2/8] Appraising each node's evidence under the mesh policy");
    println!(
        "  policy: allow_simulated = true, sim.measurement = {}, report_data = SHA-512(fresh nonce ‖ node name)",
        short(&measurement.to_hex(), 16)
    );
    let mut decisions = Table::new(&["node", "challenge", "decision", "detail"]);
    let mut first_affirmed = None;
    let honest = usize::from(args.nodes);
    for (i, node) in nodes.iter().enumerate() {
        let nonce = fresh_nonce(i as u8);
        let expected = challenge_binding(&nonce, &node.name);
        let verifier = Verifier::new(mesh_policy(&measurement, &expected)?);
        let outcome = verifier.appraise_bytes(&node.answer(&nonce, now), &Endorsements::new(), now);
        let should_affirm = i < honest;
        match &outcome {
            Ok(v) => {
                decisions.row(vec![
                    node.name.clone(),
                    short(&hex::encode(nonce), 12),
                    "AFFIRMED (simulated)".into(),
                    format!(
                        "measurement {} matches; evidence bound to this nonce",
                        short(&v.primary_measurement_hex(), 12)
                    ),
                ]);
                first_affirmed.get_or_insert_with(|| v.clone());
            }
            Err(e) => decisions.row(vec![
                node.name.clone(),
                short(&hex::encode(nonce), 12),
                "REFUSED".into(),
                e.to_string(),
            ]),
        }
        if outcome.is_ok() != should_affirm {
            surprises.push(format!(
                "{}: unexpected outcome {:?}",
                node.name,
                outcome.as_ref().err()
            ));
        }
    }
    // Replay: node-a's answer to an old challenge offered against a new one.
    let old_nonce = fresh_nonce(200);
    let replayed = nodes[0].answer(&old_nonce, now);
    let new_nonce = fresh_nonce(201);
    let verifier = Verifier::new(mesh_policy(
        &measurement,
        &challenge_binding(&new_nonce, &nodes[0].name),
    )?);
    match verifier.appraise_bytes(&replayed, &Endorsements::new(), now) {
        Ok(_) => surprises.push("replayed evidence was affirmed".into()),
        Err(e) => decisions.row(vec![
            "node-a (replayed answer)".into(),
            short(&hex::encode(new_nonce), 12),
            "REFUSED".into(),
            e.to_string(),
        ]),
    }
    println!("{}\n", decisions.render());

    println!(
        "[3/8] A relying party checks node-a through a signed attestation result (no evidence re-appraised)"
    );
    let Some(verified) = first_affirmed else {
        bail!("no node was affirmed");
    };
    let key = ResultSigningKey::generate(ResultAlgorithm::EdDsa);
    let (token, exp) = issue_result_token(&verified, &key, 600)?;
    let result = AttestationResult::verify(&token, &key.public_key(), now)?;
    println!(
        "  token: {} ({} bytes, EdDSA, verifier key id {})",
        short(&token, 48),
        token.len(),
        result.key_id()
    );
    println!(
        "  verified: platform {}, simulated {}, status {:?}, expires {}",
        result.claims().platform_kind(),
        result.claims().is_simulated(),
        result.status(),
        exp
    );
    for w in result.warnings() {
        println!("  warning carried in the result: {w}");
    }
    println!();

    println!(
        "[4/8] Real vendor evidence bundled with teemesh, appraised at each fixture's fixed time"
    );
    let mut real = Table::new(&[
        "evidence",
        "platform",
        "verified at",
        "outcome",
        "measurement",
        "TCB / detail",
    ]);
    for f in fixtures::ALL {
        let verifier = Verifier::new(AppraisalPolicy::from_toml(f.policy)?);
        let evidence = attest::Evidence::from_bytes(f.evidence)?;
        let outcome = verifier.appraise(&evidence, &f.endorsements()?, f.at);
        let claims = evidence.unverified_claims();
        let (verdict, detail) = match &outcome {
            Ok(v) => (
                "AFFIRMED".to_owned(),
                v.tcb.as_ref().map_or_else(
                    || "signature chain to AMD root verified".to_owned(),
                    |t| {
                        if t.advisory_ids.is_empty() {
                            t.status.clone()
                        } else {
                            format!("{} ({})", t.status, t.advisory_ids.join(", "))
                        }
                    },
                ),
            ),
            Err(e) => ("REFUSED".to_owned(), e.to_string()),
        };
        if outcome.is_ok() != f.expect_affirmed {
            surprises.push(format!(
                "{}: expected {}",
                f.name,
                if f.expect_affirmed {
                    "affirmed"
                } else {
                    "refused"
                }
            ));
        }
        real.row(vec![
            f.name.into(),
            evidence.platform().to_string(),
            f.at.to_string(),
            verdict,
            short(&claims.primary_measurement_hex(), 16),
            detail,
        ]);
    }
    println!("{}\n", real.render());

    println!(
        "[5/8] The nodes connect over mutually attested TLS: both ends prove themselves in the handshake"
    );
    surprises.extend(crate::demo_atls::run(measurement)?);

    println!(
        "[6/8] A node daemon hosts the Rust sensor filter: uploaded, called and its claims verified over the admin API"
    );
    surprises.extend(crate::demo_node::run(measurement)?);

    println!(
        "[7/8] An application across three nodes: sensor → filter → actuator, events sealed end to end; update and migration while events flow"
    );
    surprises.extend(crate::demo_app::run(measurement)?);

    println!(
        "[8/8] The attested MQTT broker inside a node: a module publishes and subscribes as its verified claims allow"
    );
    surprises.extend(crate::demo_mqtt::run(measurement)?);

    if !surprises.is_empty() {
        bail!(
            "demo outcomes differ from the expected ones: {}",
            surprises.join("; ")
        );
    }
    println!(
        "Summary: {honest} simulated nodes affirmed (clearly labelled simulated), a modified binary and a replayed"
    );
    println!(
        "answer refused, a signed result verified by a relying party, and {} real SGX/TDX/SEV-SNP",
        fixtures::ALL.len()
    );
    println!(
        "appraisals matched their expected outcomes; nodes connected over mutually attested TLS while a"
    );
    println!(
        "modified binary and a copied certificate were refused; a node hosted the sensor filter behind its"
    );
    println!(
        "attested admin API and signed its module claims; three nodes ran a sensor → filter → actuator"
    );
    println!(
        "application over sealed event channels, the actuator refused an injected alert, and the filter"
    );
    println!(
        "was updated and the actuator migrated while events flowed, none lost or repeated; a node's"
    );
    println!(
        "attested MQTT broker admitted the filter by its node-signed claims, its alerts reached an"
    );
    println!("outside subscriber that appraised the broker, and a forged alert was refused. Next:");
    println!(
        "`teemesh attest verify --help`, `teemesh atls serve --platform sim`, `teemesh node --config FILE`,"
    );
    println!("`teemesh deploy APP.yaml` and `teemesh mqtt sub --help`.");
    Ok(())
}
