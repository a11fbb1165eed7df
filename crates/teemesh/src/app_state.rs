//! The deployment state file that `teemesh deploy` writes and the `teemesh app` commands read:
//! where each module runs, what was attested, how the modules are wired. It holds no secret:
//! connection keys exist in plaintext only in the deployer's memory while it deploys and inside
//! the attested nodes; not even their wrapped form is kept (a re-key makes new ones).
//! Default place: `$TEEMESH_HOME/apps/<app>.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::home::teemesh_home;

/// What a deployment left behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppState {
    /// The application's name.
    pub(crate) app: String,
    /// The descriptor it was deployed from.
    pub(crate) descriptor: PathBuf,
    /// Unix seconds.
    pub(crate) deployed_at: u64,
    /// True when any node runs on the simulated TEE.
    pub(crate) simulated: bool,
    /// The nodes, as appraised at deploy time.
    pub(crate) nodes: Vec<NodeState>,
    /// The modules.
    pub(crate) modules: Vec<ModuleState>,
    /// The connections.
    pub(crate) connections: Vec<ConnectionState>,
    /// Entries users may call (`module.entry`).
    pub(crate) expose: Vec<String>,
    /// Set by `teemesh app disable`: the modules were unloaded.
    #[serde(default)]
    pub(crate) disabled: bool,
    /// The timers feeding inputs (set again on a module's new node when it migrates).
    #[serde(default)]
    pub(crate) periodic: Vec<PeriodicState>,
    /// The MQTT topic ends: they live in their module's node and go with it (unload, reset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) topics: Vec<TopicState>,
}

/// A module port bridged to an MQTT topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicState {
    /// `module.port`.
    pub(crate) port: String,
    /// `publish` (an output) or `subscribe` (an input).
    pub(crate) direction: String,
    /// The broker's name in the descriptor.
    pub(crate) broker: String,
    /// `host:port` of its attested TLS listener.
    pub(crate) broker_address: String,
    /// The topic name or filter.
    pub(crate) topic: String,
    pub(crate) qos: u8,
}

/// A timer feeding an input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodicState {
    /// `module.input`.
    pub(crate) to: String,
    pub(crate) every_ms: u64,
    /// The event each tick delivers (public: it is in the descriptor), as text or hex.
    pub(crate) payload: String,
    /// `utf8` or `hex`: how `payload` holds the bytes.
    #[serde(default = "utf8")]
    pub(crate) payload_encoding: String,
}

fn utf8() -> String {
    "utf8".into()
}

impl PeriodicState {
    /// A timer's payload bytes, kept as text when they are UTF-8.
    pub(crate) fn with_payload(to: String, every_ms: u64, payload: Vec<u8>) -> Self {
        let (payload, payload_encoding) = match String::from_utf8(payload) {
            Ok(text) => (text, utf8()),
            Err(e) => (hex::encode(e.into_bytes()), "hex".into()),
        };
        Self {
            to,
            every_ms,
            payload,
            payload_encoding,
        }
    }

    /// The payload's bytes.
    pub(crate) fn payload_bytes(&self) -> Result<Vec<u8>> {
        match self.payload_encoding.as_str() {
            "hex" => hex::decode(&self.payload).context("a periodic payload is not hex"),
            "utf8" => Ok(self.payload.as_bytes().to_vec()),
            other => bail!("unknown payload encoding {other:?} in the state file"),
        }
    }
}

/// A node of the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeState {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) platform: String,
    /// The appraisal policy it was admitted under (TOML), used again by `teemesh app`.
    pub(crate) policy: String,
    /// The platform measurement its evidence proved (hex).
    pub(crate) measurement: String,
}

/// A module of the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModuleState {
    pub(crate) name: String,
    pub(crate) node: String,
    /// SHA-256 of its Wasm bytes (hex), as its verified claims state.
    pub(crate) measurement: String,
    /// Its channel public key (hex), as its verified claims state.
    pub(crate) channel_key: String,
    /// The component file it was loaded from (a migration uploads it to the new node).
    #[serde(default)]
    pub(crate) wasm: Option<PathBuf>,
}

/// A connection of the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionState {
    pub(crate) id: u32,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) protection: String,
}

/// Where the state of `app` lives by default.
pub(crate) fn default_path(app: &str) -> PathBuf {
    teemesh_home().join("apps").join(format!("{app}.json"))
}

impl AppState {
    /// Writes the state (0600, atomically).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            file.write_all(&json)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Reads the state at `path`, or of the one application deployed from this home.
    pub(crate) fn load(path: Option<&Path>, app: Option<&str>) -> Result<(Self, PathBuf)> {
        let path = match (path, app) {
            (Some(path), _) => path.to_owned(),
            (None, Some(app)) => default_path(app),
            (None, None) => {
                let dir = teemesh_home().join("apps");
                let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map(|entries| {
                        entries
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| p.extension().is_some_and(|x| x == "json"))
                            .collect()
                    })
                    .unwrap_or_default();
                match found.len() {
                    0 => bail!(
                        "no deployed application in {} (teemesh deploy APP.yaml first, or --state FILE)",
                        dir.display()
                    ),
                    1 => found.remove(0),
                    _ => bail!(
                        "several applications are deployed from {}; name one with --app",
                        dir.display()
                    ),
                }
            }
        };
        let text = std::fs::read(&path)
            .with_context(|| format!("cannot read the deployment state {}", path.display()))?;
        let state = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a deployment state file", path.display()))?;
        Ok((state, path))
    }

    /// Refuses a disabled application.
    /// The connections with an end at `module` (every connection for `None`).
    pub(crate) fn connections_of(&self, module: Option<&str>) -> Vec<&ConnectionState> {
        let at = |reference: &str, module: &str| {
            reference.split_once('.').is_some_and(|(m, _)| m == module)
        };
        self.connections
            .iter()
            .filter(|c| module.is_none_or(|m| at(&c.from, m) || at(&c.to, m)))
            .collect()
    }

    pub(crate) fn require_enabled(&self) -> Result<()> {
        if self.disabled {
            bail!(
                "app {} is disabled (teemesh app disable); deploy it again after teemesh app reset",
                self.app
            );
        }
        Ok(())
    }

    pub(crate) fn module(&self, name: &str) -> Result<&ModuleState> {
        self.modules
            .iter()
            .find(|m| m.name == name)
            .with_context(|| {
                let names: Vec<&str> = self.modules.iter().map(|m| m.name.as_str()).collect();
                format!(
                    "app {} has no module {name:?} (modules: {})",
                    self.app,
                    names.join(", ")
                )
            })
    }

    pub(crate) fn node(&self, name: &str) -> Result<&NodeState> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("app {} has no node {name:?}", self.app))
    }
}
