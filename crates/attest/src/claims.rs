//! Typed claims read from evidence, and `VerifiedClaims`: the only proof, in the type system, that
//! a verifier appraised evidence and its policy affirmed it. Consumers (attested TLS, MQTT ACLs, the
//! deployer, contracts) match on these typed fields, never on raw quote bytes.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::time::UnixTime;
use crate::values::{Digest256, Measurement256, Measurement384, ReportData};

/// Which kind of TEE produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// Intel SGX (DCAP quote v3).
    Sgx,
    /// Intel TDX (DCAP quote v4/v5).
    Tdx,
    /// AMD SEV-SNP attestation report.
    Snp,
    /// The simulated TEE: no hardware protection at all.
    Sim,
}

impl PlatformKind {
    /// The short lower-case name used in JSON and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sgx => "sgx",
            Self::Tdx => "tdx",
            Self::Snp => "snp",
            Self::Sim => "sim",
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SGX enclave identity from the report body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgxClaims {
    /// MRENCLAVE.
    pub mrenclave: Measurement256,
    /// MRSIGNER.
    pub mrsigner: Measurement256,
    /// ISV product id.
    pub isv_prod_id: u16,
    /// ISV security version.
    pub isv_svn: u16,
    /// Enclave attributes (flags ‖ xfrm), 16 bytes hex.
    pub attributes: String,
    /// CPU security version, 16 bytes hex.
    pub cpu_svn: String,
}

/// TDX trust-domain identity from the TD report body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxClaims {
    /// Quote version (4 or 5).
    pub quote_version: u16,
    /// MRTD: the initial TD contents.
    pub mrtd: Measurement384,
    /// RTMR0..3 runtime measurement registers.
    pub rtmr: [Measurement384; 4],
    /// MRCONFIGID.
    pub mr_config_id: Measurement384,
    /// MROWNER.
    pub mr_owner: Measurement384,
    /// MROWNERCONFIG.
    pub mr_owner_config: Measurement384,
    /// MRSEAM: the TDX module.
    pub mr_seam: Measurement384,
    /// TD attributes, 8 bytes hex.
    pub td_attributes: String,
    /// XFAM, 8 bytes hex.
    pub xfam: String,
    /// TEE TCB SVN, 16 bytes hex.
    pub tee_tcb_svn: String,
}

/// Which AMD key signed an SEV-SNP report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnpSigningKey {
    /// Versioned Chip Endorsement Key (per chip and TCB).
    #[serde(rename = "VCEK")]
    Vcek,
    /// Versioned Loaded Endorsement Key (per cloud provider).
    #[serde(rename = "VLEK")]
    Vlek,
}

impl fmt::Display for SnpSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vcek => "VCEK",
            Self::Vlek => "VLEK",
        })
    }
}

/// SEV-SNP TCB version, decoded for the processor generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpTcb {
    /// The raw 8 bytes (little-endian u64), hex.
    #[serde(with = "hex_array8")]
    pub raw: [u8; 8],
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later only).
    pub fmc: Option<u8>,
}

impl SnpTcb {
    /// Decodes the 8 raw bytes; `turin_layout` selects the Turin (family 1Ah) field order.
    pub fn decode(raw: [u8; 8], turin_layout: bool) -> Self {
        if turin_layout {
            Self {
                raw,
                fmc: Some(raw[0]),
                bootloader: raw[1],
                tee: raw[2],
                snp: raw[3],
                microcode: raw[7],
            }
        } else {
            Self {
                raw,
                fmc: None,
                bootloader: raw[0],
                tee: raw[1],
                snp: raw[6],
                microcode: raw[7],
            }
        }
    }
}

mod hex_array8 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 8], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| D::Error::custom("expected 8 bytes"))
    }
}

/// SEV-SNP guest identity from the attestation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpClaims {
    /// Report format version (2, 3, 5).
    pub report_version: u32,
    /// Launch measurement.
    pub measurement: Measurement384,
    /// Host-provided data, 32 bytes hex.
    pub host_data: String,
    /// Guest policy bits.
    pub policy: u64,
    /// VM privilege level that requested the report.
    pub vmpl: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// The TCB the signing key was derived from.
    pub reported_tcb: SnpTcb,
    /// Chip id (zero when masked), 64 bytes hex.
    pub chip_id: String,
    /// Which key signed the report.
    pub signing_key: SnpSigningKey,
    /// Product line the endorsement chain belongs to (Milan, Genoa, Turin), once verified.
    pub product: Option<String>,
    /// ID key digest, 48 bytes hex.
    pub id_key_digest: String,
    /// Author key digest, 48 bytes hex.
    pub author_key_digest: String,
    /// Family id, 16 bytes hex.
    pub family_id: String,
    /// Image id, 16 bytes hex.
    pub image_id: String,
}

/// Simulated-TEE identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClaims {
    /// SHA-384 of the executable that produced the evidence.
    pub measurement: Measurement384,
    /// When the simulated report was produced.
    pub timestamp: UnixTime,
}

/// Platform-specific part of the claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// One value per appraisal, never stored in bulk: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum PlatformClaims {
    /// SGX enclave.
    Sgx(SgxClaims),
    /// TDX trust domain.
    Tdx(TdxClaims),
    /// SEV-SNP guest.
    Snp(SnpClaims),
    /// Simulated TEE.
    Sim(SimClaims),
}

/// TCB verdict from Intel collateral (SGX, TDX).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcbVerdict {
    /// `UpToDate`, `SWHardeningNeeded`, `ConfigurationNeeded`, `OutOfDate`, ...
    pub status: String,
    /// Intel security advisories that apply.
    pub advisory_ids: Vec<String>,
}

/// Everything a verifier learned from one piece of evidence. Plain data: holding a `Claims` proves
/// nothing; holding a [`VerifiedClaims`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Platform-specific identity.
    pub platform: PlatformClaims,
    /// The 64 bytes the attester bound into the evidence.
    pub report_data: ReportData,
    /// Whether the TEE runs in debug mode (its memory is readable by the host).
    pub debug: bool,
    /// TCB status from collateral (SGX/TDX only).
    pub tcb: Option<TcbVerdict>,
    /// SHA-256 of the raw evidence bytes.
    pub evidence_digest: Digest256,
}

impl Claims {
    /// The platform kind.
    pub fn platform_kind(&self) -> PlatformKind {
        match self.platform {
            PlatformClaims::Sgx(_) => PlatformKind::Sgx,
            PlatformClaims::Tdx(_) => PlatformKind::Tdx,
            PlatformClaims::Snp(_) => PlatformKind::Snp,
            PlatformClaims::Sim(_) => PlatformKind::Sim,
        }
    }

    /// True for evidence from the simulated TEE, which protects nothing.
    pub fn is_simulated(&self) -> bool {
        matches!(self.platform, PlatformClaims::Sim(_))
    }

    /// The platform's main measurement as lower-case hex: MRENCLAVE (SGX), MRTD (TDX), launch
    /// measurement (SNP), executable hash (sim). Used by ACLs and the deployer.
    pub fn primary_measurement_hex(&self) -> String {
        match &self.platform {
            PlatformClaims::Sgx(c) => c.mrenclave.to_hex(),
            PlatformClaims::Tdx(c) => c.mrtd.to_hex(),
            PlatformClaims::Snp(c) => c.measurement.to_hex(),
            PlatformClaims::Sim(c) => c.measurement.to_hex(),
        }
    }

    /// The flat JSON object of the CLI contract: `platform`, `simulated`, `tcb_status`,
    /// `advisory_ids`, `report_data` and the platform's measurements in lower-case hex.
    pub fn to_flat_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("platform".into(), json!(self.platform_kind().as_str()));
        out.insert("simulated".into(), json!(self.is_simulated()));
        out.insert("debug".into(), json!(self.debug));
        out.insert(
            "tcb_status".into(),
            self.tcb.as_ref().map_or(Value::Null, |t| json!(t.status)),
        );
        out.insert(
            "advisory_ids".into(),
            json!(
                self.tcb
                    .as_ref()
                    .map(|t| t.advisory_ids.clone())
                    .unwrap_or_default()
            ),
        );
        out.insert("report_data".into(), json!(self.report_data.to_hex()));
        match &self.platform {
            PlatformClaims::Sgx(c) => {
                out.insert("mrenclave".into(), json!(c.mrenclave.to_hex()));
                out.insert("mrsigner".into(), json!(c.mrsigner.to_hex()));
                out.insert("isv_prod_id".into(), json!(c.isv_prod_id));
                out.insert("isv_svn".into(), json!(c.isv_svn));
                out.insert("attributes".into(), json!(c.attributes));
                out.insert("cpu_svn".into(), json!(c.cpu_svn));
            }
            PlatformClaims::Tdx(c) => {
                out.insert("quote_version".into(), json!(c.quote_version));
                out.insert("mrtd".into(), json!(c.mrtd.to_hex()));
                for (i, r) in c.rtmr.iter().enumerate() {
                    out.insert(format!("rtmr{i}"), json!(r.to_hex()));
                }
                out.insert("mr_config_id".into(), json!(c.mr_config_id.to_hex()));
                out.insert("mr_owner".into(), json!(c.mr_owner.to_hex()));
                out.insert("mr_owner_config".into(), json!(c.mr_owner_config.to_hex()));
                out.insert("mr_seam".into(), json!(c.mr_seam.to_hex()));
                out.insert("td_attributes".into(), json!(c.td_attributes));
                out.insert("xfam".into(), json!(c.xfam));
                out.insert("tee_tcb_svn".into(), json!(c.tee_tcb_svn));
            }
            PlatformClaims::Snp(c) => {
                out.insert("report_version".into(), json!(c.report_version));
                out.insert("measurement".into(), json!(c.measurement.to_hex()));
                out.insert(
                    "reported_tcb".into(),
                    json!(hex::encode(c.reported_tcb.raw)),
                );
                out.insert(
                    "reported_tcb_decoded".into(),
                    serde_json::to_value(c.reported_tcb).unwrap_or(Value::Null),
                );
                out.insert("policy".into(), json!(format!("{:#x}", c.policy)));
                out.insert("vmpl".into(), json!(c.vmpl));
                out.insert("guest_svn".into(), json!(c.guest_svn));
                out.insert("host_data".into(), json!(c.host_data));
                out.insert("chip_id".into(), json!(c.chip_id));
                out.insert("signing_key".into(), json!(c.signing_key.to_string()));
                out.insert("product".into(), json!(c.product));
                out.insert("id_key_digest".into(), json!(c.id_key_digest));
                out.insert("author_key_digest".into(), json!(c.author_key_digest));
                out.insert("family_id".into(), json!(c.family_id));
                out.insert("image_id".into(), json!(c.image_id));
            }
            PlatformClaims::Sim(c) => {
                out.insert("measurement".into(), json!(c.measurement.to_hex()));
                out.insert("timestamp".into(), json!(c.timestamp.as_secs()));
            }
        }
        out.insert(
            "evidence_digest".into(),
            json!(self.evidence_digest.to_hex()),
        );
        out
    }
}

/// Claims a verifier appraised and its policy affirmed, at a time, valid until a time.
///
/// Its fields are private and only the verifier in this crate constructs it: a function that takes
/// `&VerifiedClaims` cannot be handed unverified data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    claims: Claims,
    appraised_at: UnixTime,
    valid_until: UnixTime,
    warnings: Vec<String>,
}

impl VerifiedClaims {
    pub(crate) fn new(
        claims: Claims,
        appraised_at: UnixTime,
        valid_until: UnixTime,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            claims,
            appraised_at,
            valid_until,
            warnings,
        }
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// When the appraisal ran (the verification time it was given).
    pub fn appraised_at(&self) -> UnixTime {
        self.appraised_at
    }

    /// After this time the endorsements behind the appraisal are no longer valid and it must be
    /// redone.
    pub fn valid_until(&self) -> UnixTime {
        self.valid_until
    }

    /// Things a human should know although the policy affirmed (simulation, debug, advisories).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl Deref for VerifiedClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}
