//! The checks a descriptor must pass beyond its shape: unique names and addresses, references
//! to nodes, modules and ports that exist, port kinds that fit, one source per input, and
//! policies that suit their node's platform. The first failure is returned, at its field.
//!
//! Rules a reader might not guess: a port name is unique within its module across all five
//! kinds (so `module.port` has one meaning); an input has at most one source (one connection or
//! one periodic event), so each event on it comes from one sender with one counter; a request
//! goes to at most one handler (it gets one response); outputs may fan out and handlers may
//! serve several requests. A topic end publishes an output or feeds an input (never a request
//! or a handler), on a declared broker; an input fed by a topic has that as its one source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use attest::policy::AppraisalPolicy;

use super::model::{
    AppSpec, ConnectionSpec, EndSpec, ModuleSpec, Platform, PolicySpec, PortKind, PortRef, TopicEnd,
};
use super::{Located, ReadFile};
use crate::error::{Error, FieldPath};

pub(super) fn check(
    spec: &AppSpec,
    base_dir: &Path,
    read_file: ReadFile<'_>,
    located: &Located<'_>,
) -> Result<Vec<AppraisalPolicy>, Error> {
    let root = FieldPath::default();
    let err = |path: FieldPath, message: String| Err(located.error(path, message));

    for (field, empty) in [
        ("nodes", spec.nodes.is_empty()),
        ("modules", spec.modules.is_empty()),
    ] {
        if empty {
            return err(
                root.key(field),
                format!("an application has at least one of its {field}"),
            );
        }
    }

    // Nodes.
    let mut policies = Vec::with_capacity(spec.nodes.len());
    let mut node_names = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        let path = root.key("nodes").index(i);
        if let Some(first) = node_names.insert(node.name.as_str(), i) {
            return err(
                path.key("name"),
                format!(
                    "duplicate node name \"{}\" (also nodes[{first}])",
                    node.name
                ),
            );
        }
        if let Some(first) = addresses.insert(node.address.to_string(), i) {
            return err(
                path.key("address"),
                format!("address {} is also nodes[{first}]'s", node.address),
            );
        }
        let policy = match &node.policy {
            PolicySpec::Inline(policy) => (**policy).clone(),
            PolicySpec::File(file) => {
                let full = base_dir.join(file);
                let text = read_file(&full).map_err(|e| {
                    located.error(
                        path.key("policy"),
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                AppraisalPolicy::from_toml(&text).map_err(|e| {
                    located.error(path.key("policy"), format!("{}: {e}", file.display()))
                })?
            }
        };
        let policy_path = path.key("policy");
        match (node.platform, policy.allow_simulated) {
            (Platform::Sim, false) => {
                return err(
                    policy_path,
                    "a node of platform sim needs allow_simulated: true in its policy (the \
                     simulated TEE protects nothing; say so explicitly)"
                        .into(),
                );
            }
            (Platform::Sgx | Platform::Tdx | Platform::Snp, true) => {
                return err(
                    policy_path.key("allow_simulated"),
                    format!(
                        "allow_simulated is only for nodes of platform sim; this node is {}",
                        node.platform
                    ),
                );
            }
            _ => {}
        }
        for other in [Platform::Sgx, Platform::Tdx, Platform::Snp, Platform::Sim] {
            if other != node.platform && has_reference_values(&policy, other) {
                return err(
                    policy_path.key(&other.to_string()),
                    format!(
                        "{other} reference values on a node of platform {} would never be used",
                        node.platform
                    ),
                );
            }
        }
        policies.push(policy);
    }
    let node_list = || list(spec.nodes.iter().map(|n| n.name.as_str()));

    // Modules.
    let mut module_names = BTreeMap::new();
    for (i, module) in spec.modules.iter().enumerate() {
        let path = root.key("modules").index(i);
        if let Some(first) = module_names.insert(module.name.as_str(), i) {
            return err(
                path.key("name"),
                format!(
                    "duplicate module name \"{}\" (also modules[{first}])",
                    module.name
                ),
            );
        }
        if module.code().is_none() {
            return err(
                path,
                "give either wasm: FILE, or source: DIR with language: rust|c".into(),
            );
        }
        let Some(node_index) = node_names.get(module.node.as_str()).copied() else {
            return err(
                path.key("node"),
                format!("no node named \"{}\" (nodes: {})", module.node, node_list()),
            );
        };
        let mut seen: BTreeMap<&str, PortKind> = BTreeMap::new();
        for kind in PortKind::ALL {
            for (j, port) in module.ports(kind).iter().enumerate() {
                if let Some(first) = seen.insert(port.as_str(), kind) {
                    return err(
                        path.key(kind.field()).index(j),
                        format!(
                            "port \"{port}\" is already declared as {}; a port name is unique \
                             within its module",
                            first.with_article()
                        ),
                    );
                }
            }
        }
        if spec.appraisal.require_reference_values {
            let node = &spec.nodes[node_index];
            if let Some(policy) = policies.get(node_index)
                && !has_reference_values(policy, node.platform)
            {
                return err(
                    path.key("node"),
                    format!(
                        "node \"{}\" has no {} reference values in its policy, and \
                         appraisal.require_reference_values is true",
                        node.name, node.platform
                    ),
                );
            }
        }
    }
    // Indexes, so that checking stays linear in the size of the descriptor.
    let mut port_kinds: BTreeMap<(&str, &str), PortKind> = BTreeMap::new();
    for module in &spec.modules {
        for kind in PortKind::ALL {
            for port in module.ports(kind) {
                port_kinds.insert((module.name.as_str(), port.as_str()), kind);
            }
        }
    }
    let module_of = |port: &PortRef| {
        module_names
            .get(port.module.as_str())
            .and_then(|&i| spec.modules.get(i))
    };
    let resolve = |path: &FieldPath, port: &PortRef| -> Result<(&ModuleSpec, PortKind), Error> {
        let Some(module) = module_of(port) else {
            return Err(located.error(
                path.clone(),
                format!(
                    "no module named \"{}\" (modules: {})",
                    port.module,
                    list(spec.modules.iter().map(|m| m.name.as_str()))
                ),
            ));
        };
        let kind = port_kinds
            .get(&(port.module.as_str(), port.port.as_str()))
            .copied()
            .ok_or_else(|| {
                let ports: Vec<&str> = PortKind::ALL
                    .into_iter()
                    .flat_map(|k| module.ports(k).iter().map(|p| p.as_str()))
                    .collect();
                located.error(
                    path.clone(),
                    format!(
                        "module \"{}\" declares no port \"{}\" (its ports: {})",
                        port.module,
                        port.port,
                        list(ports.into_iter())
                    ),
                )
            })?;
        Ok((module, kind))
    };

    // Brokers: unique names and addresses; topic ends name one of them, with a topic that
    // suits their direction and a QoS the bridge supports.
    let mut broker_names = BTreeMap::new();
    let mut broker_addresses = BTreeMap::new();
    for (i, broker) in spec.brokers.iter().enumerate() {
        let path = root.key("brokers").index(i);
        if let Some(first) = broker_names.insert(broker.name.as_str(), i) {
            return err(
                path.key("name"),
                format!(
                    "duplicate broker name \"{}\" (also brokers[{first}])",
                    broker.name
                ),
            );
        }
        if let Some(first) = broker_addresses.insert(broker.address.to_string(), i) {
            return err(
                path.key("address"),
                format!("address {} is also brokers[{first}]'s", broker.address),
            );
        }
    }
    let check_topic_end = |path: &FieldPath, end: &TopicEnd, publish: bool| -> Result<(), Error> {
        if !broker_names.contains_key(end.broker.as_str()) {
            return Err(located.error(
                path.key("broker"),
                format!(
                    "no broker named \"{}\" (brokers: {})",
                    end.broker,
                    list(spec.brokers.iter().map(|b| b.name.as_str()))
                ),
            ));
        }
        let checked = if publish {
            mqtt::topic::validate_topic_name(&end.topic)
        } else {
            mqtt::topic::validate_topic_filter(&end.topic)
        };
        if let Err(e) = checked {
            let role = if publish {
                "an output publishes on a topic name"
            } else {
                "an input subscribes to a topic filter"
            };
            return Err(located.error(path.key("topic"), format!("{e} ({role})")));
        }
        if end.qos > 1 {
            return Err(located.error(
                path.key("qos"),
                format!(
                    "qos {} is not supported by topic ends; use 0 (at most once) or 1 (at least \
                     once)",
                    end.qos
                ),
            ));
        }
        Ok(())
    };
    let check_no_protection = |path: &FieldPath, connection: &ConnectionSpec| {
        if connection.protection.is_some() {
            return Err(located.error(
                path.key("protection"),
                "protection is for connections between two modules; a broker reads the events \
                 it routes (attested TLS protects each hop)"
                    .into(),
            ));
        }
        Ok(())
    };

    // Connections: output → input, request → handler, output → topic, topic → input; one
    // source per input, one handler per request.
    let mut input_sources: BTreeMap<String, String> = BTreeMap::new();
    let mut request_targets: BTreeMap<String, usize> = BTreeMap::new();
    for (i, connection) in spec.connections.iter().enumerate() {
        let path = root.key("connections").index(i);
        let (from, to) = match (&connection.from, &connection.to) {
            (EndSpec::Port(from), EndSpec::Port(to)) => (from, to),
            (EndSpec::Topic(_), EndSpec::Topic(_)) => {
                return err(
                    path,
                    "a connection has a module's port at one end at least; topic to topic is \
                     the broker's routing"
                        .into(),
                );
            }
            (EndSpec::Port(from), EndSpec::Topic(topic)) => {
                let (_, kind) = resolve(&path.key("from"), from)?;
                if kind != PortKind::Output {
                    return err(
                        path.key("from"),
                        format!(
                            "{from} is {}; a connection to a topic goes from an output (its \
                             events are published)",
                            kind.with_article()
                        ),
                    );
                }
                check_topic_end(&path.key("to"), topic, true)?;
                check_no_protection(&path, connection)?;
                continue;
            }
            (EndSpec::Topic(topic), EndSpec::Port(to)) => {
                check_topic_end(&path.key("from"), topic, false)?;
                let (_, kind) = resolve(&path.key("to"), to)?;
                if kind != PortKind::Input {
                    return err(
                        path.key("to"),
                        format!(
                            "{to} is {}; a connection from a topic goes to an input (it \
                             subscribes)",
                            kind.with_article()
                        ),
                    );
                }
                check_no_protection(&path, connection)?;
                let source = format!("connections[{i}]");
                if let Some(first) = input_sources.insert(to.to_string(), source) {
                    return err(
                        path.key("to"),
                        format!("input {to} is already fed by {first}; an input has one source"),
                    );
                }
                continue;
            }
        };
        let (_, from_kind) = resolve(&path.key("from"), from)?;
        let (_, to_kind) = resolve(&path.key("to"), to)?;
        let wanted = match from_kind {
            PortKind::Output => PortKind::Input,
            PortKind::Request => PortKind::Handler,
            other => {
                return err(
                    path.key("from"),
                    format!(
                        "{} is {}; a connection goes from an output or a request",
                        from,
                        other.with_article()
                    ),
                );
            }
        };
        if to_kind != wanted {
            return err(
                path.key("to"),
                format!(
                    "{} is {}; {} is {}, and {} connects to {}",
                    to,
                    to_kind.with_article(),
                    from,
                    from_kind.with_article(),
                    from_kind.with_article(),
                    wanted.with_article()
                ),
            );
        }
        if to_kind == PortKind::Input {
            let source = format!("connections[{i}]");
            if let Some(first) = input_sources.insert(to.to_string(), source) {
                return err(
                    path.key("to"),
                    format!(
                        "input {} is already fed by {first}; an input has one source",
                        to
                    ),
                );
            }
        } else if let Some(first) = request_targets.insert(from.to_string(), i) {
            return err(
                path.key("from"),
                format!(
                    "request {} is already connected by connections[{first}]; a request has one \
                     handler",
                    from
                ),
            );
        }
    }

    // Exposed entries and handlers.
    let mut exposed = BTreeSet::new();
    for (i, entry) in spec.expose.iter().enumerate() {
        let path = root.key("expose").index(i);
        let (_, kind) = resolve(&path, entry)?;
        if !matches!(kind, PortKind::Entry | PortKind::Handler) {
            return err(
                path,
                format!(
                    "{entry} is {}; only entries and handlers can be exposed",
                    kind.with_article()
                ),
            );
        }
        if !exposed.insert(entry.to_string()) {
            return err(path, format!("{entry} is exposed twice"));
        }
    }

    // Periodic events feed inputs, and count as the input's one source.
    for (i, periodic) in spec.periodic.iter().enumerate() {
        let path = root.key("periodic").index(i);
        let (_, kind) = resolve(&path.key("to"), &periodic.to)?;
        if kind != PortKind::Input {
            return err(
                path.key("to"),
                format!(
                    "{} is {}; periodic events feed an input",
                    periodic.to,
                    kind.with_article()
                ),
            );
        }
        if let Some(first) = input_sources.insert(periodic.to.to_string(), format!("periodic[{i}]"))
        {
            return err(
                path.key("to"),
                format!(
                    "input {} is already fed by {first}; an input has one source",
                    periodic.to
                ),
            );
        }
    }
    Ok(policies)
}

/// Whether the policy pins any measurement for `platform`.
fn has_reference_values(policy: &AppraisalPolicy, platform: Platform) -> bool {
    match platform {
        Platform::Sgx => !policy.sgx.mrenclave.0.is_empty() || !policy.sgx.mrsigner.0.is_empty(),
        Platform::Tdx => [
            &policy.tdx.mrtd,
            &policy.tdx.rtmr0,
            &policy.tdx.rtmr1,
            &policy.tdx.rtmr2,
            &policy.tdx.rtmr3,
        ]
        .iter()
        .any(|values| !values.0.is_empty()),
        Platform::Snp => !policy.snp.measurement.0.is_empty(),
        Platform::Sim => !policy.sim.measurement.0.is_empty(),
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
