//! Runs every hand-made bad input in testdata/bad-inputs/ through the parser its folder names and
//! checks the refusal: no panic, an `Err` of the variant in MANIFEST.toml, a one-line message.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use attest::{
    AppraisalPolicy, AttestationResult, Endorsements, Error, Evidence, ResultVerifyingKey,
    UnixTime, Verifier,
};
use common::{T_2025, endorsements};

/// The verifier key of the token inputs: Ed25519 with this seed (also used by fuzz/result_token).
const TOKEN_KEY_SEED: [u8; 32] = [0x42; 32];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    input: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Path below testdata/bad-inputs/; its folder names the parser.
    file: String,
    /// The `Error` variant expected.
    error: String,
    /// A substring of the expected message (may be empty).
    message: String,
    /// How the file was made.
    made: String,
    /// An open bug this input shows: reported, not failed on, until it is fixed.
    #[serde(default)]
    known_bug: Option<String>,
}

fn bad_inputs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/bad-inputs")
}

/// The parsers, with the endorsements the appraisal folders need loaded once.
struct Parsers {
    verifier: Verifier,
    sgx: Endorsements,
    snp: Endorsements,
    token_key: ResultVerifyingKey,
}

impl Parsers {
    fn new() -> Self {
        Self {
            verifier: Verifier::new(AppraisalPolicy::default()),
            sgx: endorsements(&["sgx/sgx_quote_collateral.json"]),
            snp: endorsements(&["snp/test-vcek.der", "snp/milan_ask_ark_asvk.pem"]),
            token_key: ResultVerifyingKey::Ed25519(
                ed25519_dalek::SigningKey::from_bytes(&TOKEN_KEY_SEED).verifying_key(),
            ),
        }
    }

    /// Runs `bytes` through the parser of `kind`; `Ok` means the input was (wrongly) accepted.
    fn run(&self, kind: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let text = || std::str::from_utf8(bytes).expect("text inputs are UTF-8");
        match kind {
            "evidence" => Evidence::from_bytes(bytes).map(drop),
            "appraise-dcap" => self
                .verifier
                .appraise_bytes(bytes, &self.sgx, T_2025)
                .map(drop),
            "appraise-snp" => self
                .verifier
                .appraise_bytes(bytes, &self.snp, T_2025)
                .map(drop),
            "endorsements" => {
                let mut endorsements = Endorsements::new();
                endorsements.add_bytes(name, bytes)?;
                endorsements.dcap_collateral().map(drop)
            }
            "policy" => AppraisalPolicy::from_toml(text()).map(drop),
            "token" => AttestationResult::verify(text(), &self.token_key, T_2025).map(drop),
            "time" => UnixTime::parse(text()).map(drop),
            "duration" => attest::time::parse_duration_secs(text()).map(drop),
            other => panic!("no parser for folder {other:?}: add it to bad_inputs.rs"),
        }
    }
}

/// The variant name, from the derived `Debug` (`EvidenceMalformed { .. }` → `EvidenceMalformed`).
fn variant_name(err: &Error) -> String {
    format!("{err:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// Everything wrong with how `entry`'s input was handled; empty when it was refused as expected.
fn check(parsers: &Parsers, entry: &Entry) -> Vec<String> {
    let path = bad_inputs_dir().join(&entry.file);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => return vec![format!("cannot read: {e}")],
    };
    let (kind, name) = entry.file.split_once('/').unwrap_or(("", &entry.file));
    let outcome = catch_unwind(AssertUnwindSafe(|| parsers.run(kind, name, &bytes)));
    let err = match outcome {
        Err(_) => return vec!["panicked".into()],
        Ok(Ok(())) => return vec!["accepted".into()],
        Ok(Err(err)) => err,
    };
    let message = err.to_string();
    let mut problems = Vec::new();
    let variant = variant_name(&err);
    if variant != entry.error {
        problems.push(format!("variant {variant}, expected {}", entry.error));
    }
    if !message.contains(&entry.message) {
        problems.push(format!("message lacks {:?}", entry.message));
    }
    if message.trim().is_empty() {
        problems.push("message is empty".into());
    }
    if message.chars().any(char::is_control) {
        problems.push("message is not one printable line".into());
    }
    if !problems.is_empty() {
        problems.push(format!("message was {message:?}"));
    }
    problems
}

fn load_manifest() -> Manifest {
    let path = bad_inputs_dir().join("MANIFEST.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for kind in std::fs::read_dir(dir).unwrap() {
        let kind = kind.unwrap().path();
        if !kind.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&kind).unwrap() {
            let file = file.unwrap().path();
            let rel = file
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(rel);
        }
    }
    files
}

#[test]
fn every_bad_input_has_exactly_one_manifest_entry() {
    let manifest = load_manifest();
    let mut listed = BTreeSet::new();
    for entry in &manifest.input {
        assert!(
            listed.insert(entry.file.clone()),
            "{} is listed twice",
            entry.file
        );
        assert!(
            !entry.made.trim().is_empty(),
            "{}: say how it was made",
            entry.file
        );
        assert!(!entry.error.is_empty(), "{}: name the variant", entry.file);
    }
    let present = files_below(&bad_inputs_dir());
    let unlisted: Vec<_> = present.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&present).collect();
    assert!(
        unlisted.is_empty(),
        "files without a MANIFEST.toml entry: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "MANIFEST.toml entries without a file: {missing:?}"
    );
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let manifest = load_manifest();
    let parsers = Parsers::new();
    // Panics are caught and reported per input; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let results: Vec<(&Entry, Vec<String>)> = manifest
        .input
        .iter()
        .map(|entry| (entry, check(&parsers, entry)))
        .collect();
    std::panic::set_hook(hook);

    let mut failures = Vec::new();
    for (entry, problems) in &results {
        match (&entry.known_bug, problems.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!("{}: {}", entry.file, problems.join("; "))),
            (Some(bug), false) => {
                eprintln!("known bug ({bug}) still shown by {}: {}", entry.file, problems.join("; "));
            }
            (Some(bug), true) => failures.push(format!(
                "{}: refused cleanly now; the known bug ({bug}) looks fixed, remove `known_bug` from its MANIFEST.toml entry",
                entry.file
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused as MANIFEST.toml expects:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// The named bad inputs of the fuzz corpus (`fuzz/corpus/<target>/bad-NAME`) are copies of
/// entries here (`testdata/bad-inputs/<folder>/NAME.<ext>`), so the manifest's expectation covers
/// them and the fuzzer starts from them.
#[test]
fn fuzz_corpus_bad_inputs_are_manifest_entries() {
    let manifest = load_manifest();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut checked = 0;
    for (target, folder) in [
        ("evidence", "evidence"),
        ("appraise_dcap", "appraise-dcap"),
        ("appraise_snp", "appraise-snp"),
    ] {
        for file in std::fs::read_dir(corpus.join(target)).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(stem) = name.strip_prefix("bad-") else {
                continue;
            };
            let entry = manifest
                .input
                .iter()
                .find(|e| {
                    e.file
                        .strip_prefix(&format!("{folder}/"))
                        .and_then(|f| f.rsplit_once('.'))
                        .is_some_and(|(s, _)| s == stem)
                })
                .unwrap_or_else(|| {
                    panic!("{target}/{name}: no {folder}/{stem}.* in MANIFEST.toml")
                });
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(bad_inputs_dir().join(&entry.file)).unwrap(),
                "{target}/{name} differs from {}",
                entry.file
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no bad-* inputs in the fuzz corpus");
}
