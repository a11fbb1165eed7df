//! The node's configuration file (TOML). Unknown keys are errors, so a typo cannot silently
//! loosen anything; relative paths are resolved against the file's directory; errors carry the
//! file and line. The simulated TEE is used only when `platform = "sim"` says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use platform::PlatformChoice;
use runtime::{LimitSetting, memory_bytes_of_mib};
use serde::Deserialize;
use toml::Spanned;

use crate::error::NodeError;
use crate::mqtt::MqttConfig;

/// Largest accepted output queue, so a typo cannot disable the limit (fuel, memory and deadline
/// are bounded by [`runtime::LimitSetting`]).
const MAX_OUTPUT_QUEUE: u64 = 1 << 20;

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name (in its certificate claims and logs).
    pub name: String,
    /// Where modules, sealed state and the sealing secret live.
    pub data_dir: PathBuf,
    /// Which TEE to attest with.
    pub platform: PlatformChoice,
    /// Attested TLS admin listener (`127.0.0.1:0` picks a port).
    pub admin_listen: SocketAddr,
    /// Plain-HTTP Prometheus listener on a loopback address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Appraisal policy for peers (attested admin clients); `None`: the strict default policy.
    pub peer_policy: Option<PathBuf>,
    /// Limits every module runs under.
    pub limits: ModuleLimits,
    /// Who may administer the node.
    pub admin: AdminAuth,
    /// The MQTT broker the node runs, if any (`[mqtt]`; paths resolved against the file).
    pub mqtt: Option<MqttConfig>,
}

/// Default limits for modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLimits {
    /// Fuel (instruction budget) per call.
    pub fuel_per_call: u64,
    /// Wall-clock deadline per call.
    pub deadline: Duration,
    /// Linear memory cap per module, bytes.
    pub memory_bytes: usize,
    /// Buffered output events per module; the oldest is dropped (and counted) beyond this.
    pub output_queue: usize,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        Self {
            fuel_per_call: runtime::DEFAULT_FUEL_PER_CALL,
            deadline: runtime::DEFAULT_DEADLINE,
            memory_bytes: runtime::DEFAULT_MEMORY_BYTES,
            output_queue: 1024,
        }
    }
}

/// Admin authorisation, like SSH `authorized_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminAuth {
    /// SHA-256 hashes of the SubjectPublicKeyInfo of admin keys (`teemesh admin key`).
    pub authorized_keys: Vec<[u8; 32]>,
    /// Also admit clients whose attestation the peer policy affirms (off by default).
    pub allow_attested_clients: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    data_dir: PathBuf,
    platform: String,
    admin_listen: String,
    metrics_listen: Option<String>,
    peer_policy: Option<PathBuf>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    admin: RawAdmin,
    mqtt: Option<MqttConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel_per_call: Option<Spanned<u64>>,
    deadline_ms: Option<Spanned<u64>>,
    memory_mib: Option<Spanned<u64>>,
    output_queue: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default)]
    authorized_keys: Vec<Spanned<String>>,
    #[serde(default)]
    allow_attested_clients: bool,
}

impl NodeConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::Config {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|message| NodeError::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML `text`, resolving relative paths against `base`. Errors are one line,
    /// prefixed with `line N:` when the position is known.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            match e.span() {
                Some(span) => format!("line {}: {message}", line_of(span.start)),
                None => message,
            }
        })?;
        let mqtt = match raw.mqtt {
            Some(mut mqtt) => {
                if let Some((offset, message)) = mqtt.node_refusal() {
                    return Err(format!("line {}: {message}", line_of(offset)));
                }
                mqtt.resolve_paths(base);
                Some(mqtt)
            }
            None => None,
        };
        let name = raw.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err("name must have 1 to 64 characters, no control characters".into());
        }
        let platform: PlatformChoice = raw.platform.parse().map_err(|e| {
            format!("platform: {e} (expected sim, auto, configfs-tsm, tdx, snp or gramine)")
        })?;
        let admin_listen: SocketAddr = raw
            .admin_listen
            .parse()
            .map_err(|e| format!("admin_listen {:?}: {e}", raw.admin_listen))?;
        let metrics_listen = match raw.metrics_listen {
            Some(text) => {
                let addr: SocketAddr = text
                    .parse()
                    .map_err(|e| format!("metrics_listen {text:?}: {e}"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "metrics_listen {addr}: plain-HTTP metrics are served on a loopback address only (127.0.0.1 or ::1)"
                    ));
                }
                Some(addr)
            }
            None => None,
        };
        let limits = raw.limits.check(&line_of)?;
        let authorized_keys = raw
            .admin
            .authorized_keys
            .iter()
            .map(|k| {
                parse_key_hash(k.get_ref()).map_err(|e| {
                    format!(
                        "line {}: admin.authorized_keys: {e}",
                        line_of(k.span().start)
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            data_dir: base.join(raw.data_dir),
            platform,
            admin_listen,
            metrics_listen,
            peer_policy: raw.peer_policy.map(|p| base.join(p)),
            limits,
            admin: AdminAuth {
                authorized_keys,
                allow_attested_clients: raw.admin.allow_attested_clients,
            },
            mqtt,
        })
    }
}

impl RawLimits {
    /// Each key in its range, or an error naming the key, its line, the value and the range;
    /// absent keys take the defaults.
    fn check(&self, line_of: &dyn Fn(usize) -> usize) -> Result<ModuleLimits, String> {
        let defaults = ModuleLimits::default();
        let key = |name: &str, value: &Spanned<u64>, why: &dyn std::fmt::Display| {
            format!("line {}: limits.{name}: {why}", line_of(value.span().start))
        };
        let setting = |name: &str, value: &Option<Spanned<u64>>, setting: LimitSetting| {
            value
                .as_ref()
                .map(|v| setting.check(*v.get_ref()).map_err(|e| key(name, v, &e)))
                .transpose()
        };
        let fuel_per_call = setting(
            "fuel_per_call",
            &self.fuel_per_call,
            LimitSetting::FuelPerCall,
        )?
        .unwrap_or(defaults.fuel_per_call);
        let deadline = setting("deadline_ms", &self.deadline_ms, LimitSetting::DeadlineMs)?
            .map_or(defaults.deadline, Duration::from_millis);
        let memory_bytes = setting("memory_mib", &self.memory_mib, LimitSetting::MemoryMib)?
            .map_or(defaults.memory_bytes, memory_bytes_of_mib);
        let output_queue = match &self.output_queue {
            Some(v) if !(1..=MAX_OUTPUT_QUEUE).contains(v.get_ref()) => {
                let why = format!(
                    "{} is out of range: expected 1 to {MAX_OUTPUT_QUEUE} (buffered output events per module)",
                    v.get_ref()
                );
                return Err(key("output_queue", v, &why));
            }
            Some(v) => usize::try_from(*v.get_ref()).unwrap_or(usize::MAX),
            None => defaults.output_queue,
        };
        Ok(ModuleLimits {
            fuel_per_call,
            deadline,
            memory_bytes,
            output_queue,
        })
    }
}

/// Parses `sha256:<64 hex digits>`, the line `teemesh admin key` prints.
pub fn parse_key_hash(text: &str) -> Result<[u8; 32], String> {
    let shown = text.escape_debug();
    let hex_part = text.strip_prefix("sha256:").ok_or_else(|| {
        format!("\"{shown}\" must look like sha256:<64 hex digits> (the line `teemesh admin key` prints)")
    })?;
    if hex_part.starts_with("sha256:") {
        return Err(format!(
            "\"{shown}\" says sha256: twice: put the line `teemesh admin key` prints as it is, without another sha256: in front"
        ));
    }
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "\"{shown}\": expected sha256: and 64 hex digits, got {} characters after sha256:",
            hex_part.chars().count()
        ));
    }
    let bytes = hex::decode(hex_part).map_err(|e| format!("\"{shown}\": {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("\"{shown}\": expected 32 bytes (64 hex digits)"))
}

/// Formats a key hash as `sha256:<hex>`.
pub fn format_key_hash(hash: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "name = \"n\"\ndata_dir = \"data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\n";

    fn parse(text: &str) -> Result<NodeConfig, String> {
        NodeConfig::parse(text, Path::new("/etc/teemesh"))
    }

    #[test]
    fn minimal_config_has_strict_defaults() {
        let config = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.platform, PlatformChoice::Sim);
        assert_eq!(config.data_dir, Path::new("/etc/teemesh/data"));
        assert!(config.admin.authorized_keys.is_empty());
        assert!(!config.admin.allow_attested_clients);
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.limits, ModuleLimits::default());
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let err = parse(&format!("{MINIMAL}[limits]\nfuel = 5\n")).unwrap_err();
        assert!(err.starts_with("line 6:"), "{err}");
        assert!(err.contains("unknown field `fuel`"), "{err}");
        let err = parse(&format!("{MINIMAL}allow_everything = true\n")).unwrap_err();
        assert!(err.starts_with("line 5:"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse(&MINIMAL.replace("\"sim\"", "\"tpm\"")).unwrap_err();
        assert!(err.starts_with("platform:"), "{err}");
        let err = parse(&format!("{MINIMAL}metrics_listen = \"0.0.0.0:9000\"\n")).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let err = parse(&format!(
            "{MINIMAL}[admin]\nauthorized_keys = [\"md5:00\"]\n"
        ))
        .unwrap_err();
        assert!(err.contains("sha256:<64 hex digits>"), "{err}");
        // With the line of the key, and a hint for a doubled prefix.
        let lines = MINIMAL.matches('\n').count();
        let err = parse(&format!(
            "{MINIMAL}[admin]\nauthorized_keys = [\n  \"sha256:sha256:{}\",\n]\n",
            "ef".repeat(32)
        ))
        .unwrap_err();
        assert!(
            err.starts_with(&format!("line {}: admin.authorized_keys:", lines + 3)),
            "{err}"
        );
        assert!(err.contains("sha256: twice"), "{err}");
        let err = parse(&format!("{MINIMAL}[limits]\nmemory_mib = 0\n")).unwrap_err();
        assert!(err.contains("memory_mib"), "{err}");
        let err = parse("name = \"n\"\n").unwrap_err();
        assert!(err.contains("missing field"), "{err}");
        let err = parse("name = \n").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn out_of_range_limits_are_refused_with_their_key_line_and_range() {
        for (key, value, range) in [
            ("memory_mib", "999999999", "expected 1 to 4096 MiB"),
            ("memory_mib", "0", "expected 1 to 4096 MiB"),
            (
                "fuel_per_call",
                "1000000000001",
                "expected 1 to 1000000000000",
            ),
            ("fuel_per_call", "0", "expected 1 to 1000000000000"),
            ("deadline_ms", "3600001", "expected 1 to 3600000 ms"),
            ("deadline_ms", "0", "expected 1 to 3600000 ms"),
            ("output_queue", "1048577", "expected 1 to 1048576"),
            ("output_queue", "0", "expected 1 to 1048576"),
        ] {
            let err = parse(&format!(
                "{MINIMAL}[limits]\n# per module call\n{key} = {value}\n"
            ))
            .unwrap_err();
            assert!(
                err.starts_with(&format!("line 7: limits.{key}: {value}")),
                "{err}"
            );
            assert!(err.contains(range), "{err}");
        }
    }

    #[test]
    fn limits_at_the_ends_of_their_ranges_are_accepted() {
        let config = parse(&format!(
            "{MINIMAL}[limits]\nfuel_per_call = 1000000000000\ndeadline_ms = 3600000\nmemory_mib = 4096\noutput_queue = 1048576\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.limits,
            ModuleLimits {
                fuel_per_call: runtime::MAX_FUEL_PER_CALL,
                deadline: Duration::from_secs(3600),
                memory_bytes: memory_bytes_of_mib(4096),
                output_queue: 1 << 20,
            }
        );
        let config = parse(&format!(
            "{MINIMAL}[limits]\nfuel_per_call = 1\ndeadline_ms = 1\nmemory_mib = 1\noutput_queue = 1\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.limits.memory_bytes, 1 << 20);
        assert_eq!(config.limits.deadline, Duration::from_millis(1));
    }

    #[test]
    fn mqtt_section_is_checked_and_its_paths_resolved() {
        let config = parse(&format!(
            "{MINIMAL}[[mqtt.listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\npolicy = \"p.toml\"\n[mqtt.persistence]\npath = \"mqtt.redb\"\n[mqtt.acl]\ndefault = \"allow\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let mqtt = config.mqtt.expect("[mqtt]");
        assert_eq!(
            mqtt.listener[0].policy.as_deref(),
            Some(Path::new("/etc/teemesh/p.toml"))
        );
        assert_eq!(
            mqtt.persistence.map(|p| p.path),
            Some(PathBuf::from("/etc/teemesh/mqtt.redb"))
        );
        assert!(
            parse(MINIMAL)
                .unwrap_or_else(|e| panic!("{e}"))
                .mqtt
                .is_none()
        );
        // Twins: an unknown key, an unknown kind, and the node's own identity overridden.
        let err = parse(&format!(
            "{MINIMAL}[[mqtt.listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\nport = 1\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("line 8:") && err.contains("unknown field `port`"),
            "{err}"
        );
        let err = parse(&format!(
            "{MINIMAL}[[mqtt.listener]]\nkind = \"quic\"\naddress = \"127.0.0.1:0\"\n"
        ))
        .unwrap_err();
        assert!(err.starts_with("line 6:") && err.contains("quic"), "{err}");
        for field in ["platform = \"sim\"", "name = \"other\""] {
            let err = parse(&format!(
                "{MINIMAL}[[mqtt.listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\n{field}\n"
            ))
            .unwrap_err();
            assert!(
                err.starts_with("line 8:") && err.contains("node's own attested identity"),
                "{err}"
            );
        }
    }

    #[test]
    fn key_hashes_round_trip() {
        let hash = [0xab; 32];
        assert_eq!(parse_key_hash(&format_key_hash(&hash)), Ok(hash));
        assert!(parse_key_hash("sha256:abcd").is_err());
        // What a user writes when the README says sha256:<the hash teemesh admin key prints>.
        let doubled = format!("sha256:sha256:{}", "ab".repeat(32));
        let err = parse_key_hash(&doubled).unwrap_err();
        assert!(err.contains("sha256: twice"), "{err}");
        let err = parse_key_hash(&format!("sha256:{}", "a".repeat(63))).unwrap_err();
        assert!(err.contains("64 hex digits, got 63 characters"), "{err}");
        assert!(parse_key_hash(&format!("sha256:{}", "ab".repeat(32))).is_ok());
    }
}
