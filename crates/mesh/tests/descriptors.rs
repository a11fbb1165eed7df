//! The descriptor against real files: the examples validate, every bad descriptor in
//! `testdata/bad-descriptors` is refused with the message its last lines expect (file, line,
//! column, field), the JSON Schema agrees with the parser, and a descriptor survives a round trip.

use std::path::{Path, PathBuf};

use mesh::Descriptor;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<PathBuf> {
    let dir = repo().join("examples/apps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/apps")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "examples/apps has its descriptors");
    files
}

fn bad_descriptors() -> Vec<PathBuf> {
    let dir = repo().join("testdata/bad-descriptors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/bad-descriptors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "bad descriptors present");
    files
}

fn schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(repo().join("schema/app-descriptor.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn read_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// Parses `path` as the CLI would, but names it by its file name so messages are stable.
fn parse(path: &Path) -> Result<Descriptor, mesh::Error> {
    let text = std::fs::read_to_string(path).expect("readable");
    let name = path.file_name().expect("name").to_string_lossy();
    Descriptor::parse(&text, &name, path.parent().expect("dir"), &read_file)
}

/// The trailing `# error: ...` and `# schema: ...` lines of a bad descriptor.
fn expectations(text: &str) -> (Option<String>, Option<String>) {
    let find = |tag: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(tag).map(str::to_owned))
    };
    (find("# error: "), find("# schema: "))
}

#[test]
fn examples_validate_and_match_the_schema() {
    let schema = schema();
    for path in examples() {
        let descriptor = parse(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(descriptor.spec().modules.len(), 3, "{}", path.display());
        let text = std::fs::read_to_string(&path).expect("readable");
        let json = mesh::yaml_to_json(&text, "example").expect("json");
        let errors: Vec<String> = schema.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn the_example_reads_its_policy_file() {
    let descriptor =
        Descriptor::load(&repo().join("examples/apps/sensor-alarm.yaml")).expect("valid");
    let policy = descriptor.node_policy("node-b").expect("node-b");
    assert_eq!(policy.tdx.mrtd.0.len(), 1);
    assert!(!policy.allow_simulated);
    let filter = &descriptor.spec().modules[1];
    assert_eq!(
        descriptor.node_of(filter).map(|n| n.platform),
        Some(mesh::descriptor::Platform::Tdx)
    );
    let wasm = match filter.code() {
        Some(mesh::descriptor::ModuleCode::Wasm(path)) => descriptor.resolve(path),
        other => panic!("{other:?}"),
    };
    let bytes = std::fs::read(&wasm).expect("the filter's component exists");
    let measurement = filter.measurement.expect("pinned").to_string();
    let sums = std::fs::read_to_string(repo().join("examples/SHA256SUMS")).expect("sums");
    assert!(sums.contains(&format!(
        "{measurement}  sensor-filter/sensor-filter-rust.wasm"
    )));
    assert!(!bytes.is_empty());
}

#[test]
fn bad_descriptors_are_refused_with_their_expected_message() {
    let schema = schema();
    let bless = std::env::var_os("MESH_BLESS").is_some();
    let mut failures = Vec::new();
    for path in bad_descriptors() {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let actual = match parse(&path) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        // The schema's verdict: YAML the loader refuses never reaches a schema.
        let verdict = match mesh::yaml_to_json(&text, &name) {
            Err(_) => "n/a (not loadable YAML)",
            Ok(json) if schema.is_valid(&json) => "accepts",
            Ok(_) => "refuses",
        };
        let (expected_error, expected_schema) = expectations(&text);
        if bless && expected_error.is_none() {
            let blessed = format!("{text}# error: {actual}\n# schema: {verdict}\n");
            std::fs::write(&path, blessed).expect("bless");
            continue;
        }
        if expected_error.as_deref() != Some(actual.as_str()) {
            failures.push(format!(
                "{name}:\n  expected {expected_error:?}\n  actual   {actual:?}"
            ));
        }
        if expected_schema.as_deref() != Some(verdict) {
            failures.push(format!(
                "{name}: schema expected {expected_schema:?}, actual {verdict:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_descriptor_survives_a_round_trip_through_json() {
    for path in examples() {
        let descriptor = parse(&path).expect("valid");
        // JSON is YAML: the JSON form parses back to the same descriptor.
        let json = serde_json::to_string_pretty(&descriptor.to_json()).expect("json");
        let again = Descriptor::parse(
            &json,
            "round-trip.json",
            path.parent().expect("dir"),
            &read_file,
        )
        .unwrap_or_else(|e| panic!("{}: {e}\n{json}", path.display()));
        assert_eq!(again.spec(), descriptor.spec());
    }
}

/// The keys of every object in the schema are exactly the fields the parser knows: a field
/// added on one side and not the other fails here.
#[test]
fn the_schema_lists_exactly_the_fields_the_parser_knows() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schema/app-descriptor.schema.json")).expect("schema"),
    )
    .expect("json");
    let keys_of = |value: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let schema_keys = |pointer: &str| keys_of(schema.pointer(pointer).expect(pointer));
    // A descriptor that sets every optional field once.
    let text = r#"
app: all-fields
appraisal: {require_reference_values: false}
nodes:
  - {name: n, address: "127.0.0.1:1", platform: sim, policy: {allow_simulated: true}}
modules:
  - name: a
    wasm: a.wasm
    node: n
    measurement: "0000000000000000000000000000000000000000000000000000000000000000"
    inputs: [i]
    outputs: [o]
    requests: [r]
    handlers: [h]
    entries: [e]
    config: {x: 1}
  - {name: b, source: b/, language: c, node: n, inputs: [i, t], handlers: [h]}
brokers:
  - {name: mq, address: "127.0.0.1:8883"}
connections:
  - {from: a.o, to: b.i, protection: authenticated}
  - {from: a.r, to: b.h}
  - {from: a.o, to: {broker: mq, topic: a/o, qos: 0}}
  - {from: {broker: mq, topic: "a/+"}, to: b.t}
expose: [a.e]
periodic:
  - {to: a.i, every: 1s, payload: {}}
"#;
    let descriptor =
        Descriptor::parse(text, "all.yaml", Path::new("."), &read_file).expect("valid");
    let json = descriptor.to_json();
    assert_eq!(keys_of(&json), schema_keys("/properties"));
    assert_eq!(
        keys_of(&json["appraisal"]),
        schema_keys("/properties/appraisal/properties")
    );
    assert_eq!(
        keys_of(&json["nodes"][0]),
        schema_keys("/$defs/node/properties")
    );
    let mut module_keys = keys_of(&json["modules"][0]);
    module_keys.extend(keys_of(&json["modules"][1]));
    module_keys.sort();
    module_keys.dedup();
    assert_eq!(module_keys, schema_keys("/$defs/module/properties"));
    assert_eq!(
        keys_of(&json["connections"][0]),
        schema_keys("/$defs/connection/properties")
    );
    assert_eq!(
        keys_of(&json["periodic"][0]),
        schema_keys("/$defs/periodic/properties")
    );
    assert_eq!(
        keys_of(&json["brokers"][0]),
        schema_keys("/$defs/broker/properties")
    );
    assert_eq!(
        keys_of(&json["connections"][2]["to"]),
        schema_keys("/$defs/topicEnd/properties")
    );
    // The policy keys are attest's: every one of them, in the schema, and no other.
    let policy = serde_json::to_value(attest::policy::AppraisalPolicy::default()).expect("json");
    assert_eq!(keys_of(&policy), schema_keys("/$defs/policy/properties"));
    for platform in ["sgx", "tdx", "snp", "sim"] {
        assert_eq!(
            keys_of(&policy[platform]),
            schema_keys(&format!("/$defs/policy/properties/{platform}/properties")),
            "{platform}"
        );
    }
}

#[test]
fn errors_point_at_the_field_and_the_loader_refuses_oversized_input() {
    let text = "app: x\nnodes:\n  - name: n\n    address: \"127.0.0.1:1\"\n    platform: sim\n    policy: {allow_simulated: true}\nmodules:\n  - name: m\n    wasm: m.wasm\n    node: nowhere\n";
    let err = Descriptor::parse(text, "app.yaml", Path::new("."), &read_file).expect_err("bad");
    let at = err.location().expect("located");
    assert_eq!((at.line, at.column), (10, 11));
    assert_eq!(
        err.to_string(),
        "app.yaml:10:11: modules[0].node: no node named \"nowhere\" (nodes: n)"
    );
    let big = format!("app: x\n#{}\n", "a".repeat(mesh::yaml::MAX_BYTES));
    let err = Descriptor::parse(&big, "big.yaml", Path::new("."), &read_file).expect_err("big");
    assert!(err.to_string().starts_with("big.yaml: "), "{err}");
}

#[test]
fn topic_ends_publish_outputs_and_feed_inputs() {
    let text = r#"
app: plant
appraisal: {require_reference_values: false}
nodes:
  - {name: n, address: "127.0.0.1:1", platform: sim, policy: {allow_simulated: true}}
brokers:
  - name: plant-broker
    address: 127.0.0.1:8883
modules:
  - {name: filter, wasm: f.wasm, node: n, inputs: [reading], outputs: [alert]}
connections:
  - from: filter.alert
    to: {broker: plant-broker, topic: plant/alerts, qos: 1}
  - from: {broker: plant-broker, topic: "plant/+/readings"}
    to: filter.reading
"#;
    let descriptor =
        Descriptor::parse(text, "plant.yaml", Path::new("."), &read_file).expect("valid");
    let spec = descriptor.spec();
    let broker = descriptor.broker("plant-broker").expect("declared");
    assert_eq!(broker.address.to_string(), "127.0.0.1:8883");
    let publish = spec.connections[0].to.topic().expect("a topic end");
    assert_eq!(
        (publish.topic.as_str(), publish.qos, publish.broker.as_str()),
        ("plant/alerts", 1, "plant-broker")
    );
    assert_eq!(
        spec.connections[0].from.port().map(ToString::to_string),
        Some("filter.alert".to_owned())
    );
    let subscribe = spec.connections[1].from.topic().expect("a topic end");
    // QoS 1 unless written: an input fed by a topic loses nothing on a reconnect.
    assert_eq!(
        (subscribe.topic.as_str(), subscribe.qos),
        ("plant/+/readings", 1)
    );
    assert_eq!(spec.connections[1].protection, None);
    // The schema accepts it, and the JSON form says the same.
    let written = mesh::yaml_to_json(text, "plant.yaml").expect("json");
    let errors: Vec<String> = schema()
        .iter_errors(&written)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let json = descriptor.to_json();
    assert_eq!(json["connections"][1]["from"]["qos"], 1);
    let again = Descriptor::parse(&json.to_string(), "again.json", Path::new("."), &read_file)
        .expect("round trip");
    assert_eq!(again.spec(), spec);
    // The same input cannot also be fed by a module.
    let twice = text.replace(
        "connections:\n",
        "connections:\n  - {from: filter.alert, to: filter.reading}\n",
    );
    let err = Descriptor::parse(&twice, "twice.yaml", Path::new("."), &read_file)
        .expect_err("two sources");
    assert!(
        err.to_string()
            .contains("input filter.reading is already fed by connections[0]"),
        "{err}"
    );
}
