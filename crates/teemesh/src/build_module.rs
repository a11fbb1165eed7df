//! Builds the component of a module that `teemesh deploy` gets as `source:` + `language:`, with
//! `scripts/build-module.sh`: the binary embeds that script and wasmtime 48's WASI adapter, so
//! the deployer and `scripts/build-examples.sh` run one recipe, and building an example's sources
//! gives the measurement committed in `examples/SHA256SUMS`.
//!
//! The build's output goes to a log file, shown only when the build fails. Everything lives in
//! the build directory (`TEEMESH_BUILD_DIR`, else `$TEEMESH_HOME/build`): `cargo/` (cargo's
//! cache of the Wasm builds, std included), `logs/<module>.log`, and `components/<sha256>.wasm`,
//! every component built, named by its measurement.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use attest::Digest256;
use mesh::descriptor::Language;
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

/// The build recipe, shared with `scripts/build-examples.sh`.
const RECIPE: &str = include_str!("../../../scripts/build-module.sh");
/// The recipe's exit code when a tool is missing; its stderr then names each one and the Debian
/// package (or command) that provides it.
const TOOLCHAIN_MISSING: i32 = 3;
/// How much of a failed build's log is shown.
const FAILED_LOG_LINES: usize = 40;

/// Builds the `source:` modules of one deployment; a source directory named by several modules
/// is built once.
#[derive(Default)]
pub(crate) struct SourceBuilder {
    built: HashMap<(PathBuf, &'static str), Vec<u8>>,
}

impl SourceBuilder {
    /// Builds module `module` from the source directory `source` (resolved against the
    /// descriptor) and returns the component's bytes. Prints one progress line when it starts
    /// and one with the elapsed time when it is done.
    pub(crate) fn build(
        &mut self,
        module: &str,
        source: &Path,
        language: Language,
    ) -> Result<Vec<u8>> {
        let language = language_name(language);
        let source = std::fs::canonicalize(source).with_context(|| {
            format!(
                "module {module}: cannot read its source directory {}",
                source.display()
            )
        })?;
        let key = (source, language);
        if let Some(wasm) = self.built.get(&key) {
            eprintln!(
                "      {module}: built already from {} ({language})",
                key.0.display()
            );
            return Ok(wasm.clone());
        }
        let wasm = run_recipe(module, &key.0, language)?;
        self.built.insert(key, wasm.clone());
        Ok(wasm)
    }
}

fn language_name(language: Language) -> &'static str {
    match language {
        Language::Rust => "rust",
        Language::C => "c",
    }
}

/// Where the component with bytes `wasm` that a build produced is kept.
pub(crate) fn component_file(wasm: &[u8]) -> PathBuf {
    build_dir()
        .join("components")
        .join(format!("{}.wasm", hex::encode(Digest256::of(wasm).0)))
}

/// Where builds are cached and logged.
fn build_dir() -> PathBuf {
    std::env::var_os("TEEMESH_BUILD_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| crate::home::teemesh_home().join("build"), PathBuf::from)
}

fn run_recipe(module: &str, source: &Path, language: &str) -> Result<Vec<u8>> {
    let started = Instant::now();
    eprintln!(
        "      building {module} from {} ({language})…",
        source.display()
    );
    let dir = build_dir();
    let components = dir.join("components");
    let logs = dir.join("logs");
    for folder in [&components, &logs] {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the build directory {}", folder.display()))?;
    }
    let adapter = write_adapter(&dir)?;
    let log_path = logs.join(format!("{module}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let output = components.join(format!(".{module}.{}.wasm", std::process::id()));
    let status = Command::new("bash")
        .arg("-c")
        .arg(RECIPE)
        .arg("build-module.sh")
        .arg("--adapter")
        .arg(&adapter)
        .arg("--target-dir")
        .arg(dir.join("cargo"))
        .arg(language)
        .arg(source)
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| {
            format!("module {module}: cannot run bash, which builds modules from source")
        })?;
    let elapsed = started.elapsed().as_secs_f64();
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.code() == Some(TOOLCHAIN_MISSING) {
        let missing: Vec<&str> = log_text
            .lines()
            .filter(|line| line.starts_with("missing: ") || line.starts_with("install with: "))
            .collect();
        bail!(
            "module {module}: cannot build its {language} source: the Wasm toolchain is incomplete: {}",
            missing.join("; ")
        );
    }
    if !status.success() {
        let lines: Vec<&str> = log_text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(FAILED_LOG_LINES)..];
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "      {module}: the build's last {} lines ({}):",
            tail.len(),
            log_path.display()
        );
        for line in tail {
            let _ = writeln!(stderr, "      | {line}");
        }
        bail!(
            "module {module}: building its {language} source {} failed after {elapsed:.1} s ({status}; its output is above, all of it in {})",
            source.display(),
            log_path.display()
        );
    }
    let wasm = std::fs::read(&output)
        .with_context(|| format!("module {module}: the build wrote no {}", output.display()))?;
    let measurement = hex::encode(Digest256::of(&wasm).0);
    let component = components.join(format!("{measurement}.wasm"));
    std::fs::rename(&output, &component).with_context(|| {
        format!(
            "cannot rename {} to {}",
            output.display(),
            component.display()
        )
    })?;
    eprintln!(
        "      built {module} in {elapsed:.1} s (log {})",
        log_path.display()
    );
    Ok(wasm)
}

/// The WASI adapter the recipe links into each component, written once per build directory
/// (atomically, so a concurrent deployment never reads half of it).
fn write_adapter(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("wasi_snapshot_preview1.reactor.wasm");
    if std::fs::read(&path).is_ok_and(|bytes| bytes == WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER) {
        return Ok(path);
    }
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)?;
    file.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
