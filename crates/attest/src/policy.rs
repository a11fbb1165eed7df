//! The appraisal policy (TOML): which platforms, TCB statuses and advisories are acceptable, and
//! the reference values evidence must match. Defaults are the safe choice: no simulation, no
//! debug, only `UpToDate`, no advisories. Unknown keys are errors, so a typo cannot weaken a policy.

use serde::{Deserialize, Deserializer, Serialize};

use crate::claims::{Claims, PlatformClaims, SnpTcb};
use crate::error::Error;
use crate::time::{UnixTime, parse_duration_secs};
use crate::values::{Digest256, Measurement256, Measurement384, ReportData};

/// One accepted value or a list of accepted values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            One(T),
            Many(Vec<T>),
        }
        Ok(match Either::deserialize(d)? {
            Either::One(v) => Self(vec![v]),
            Either::Many(v) => Self(v),
        })
    }
}

impl<T: PartialEq + std::fmt::Display> OneOrMany<T> {
    /// Checks `actual` against the list; an empty list accepts anything.
    fn check(&self, field: &'static str, actual: &T) -> Result<(), Error> {
        if self.0.is_empty() || self.0.contains(actual) {
            return Ok(());
        }
        Err(Error::ReferenceValueMismatch {
            field,
            actual: actual.to_string(),
            expected: self
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        })
    }
}

/// A duration written as seconds or `30d`, `12h`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DurationSecs(pub u64);

impl<'de> Deserialize<'de> for DurationSecs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Secs(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Secs(s) => Ok(Self(s)),
            Either::Text(t) => parse_duration_secs(&t)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// SGX reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgxReference {
    /// Accepted MRENCLAVE values.
    #[serde(default)]
    pub mrenclave: OneOrMany<Measurement256>,
    /// Accepted MRSIGNER values.
    #[serde(default)]
    pub mrsigner: OneOrMany<Measurement256>,
    /// Required ISV product id.
    #[serde(default)]
    pub isv_prod_id: Option<u16>,
    /// Minimum ISV SVN.
    #[serde(default)]
    pub min_isv_svn: Option<u16>,
}

/// TDX reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxReference {
    /// Accepted MRTD values.
    #[serde(default)]
    pub mrtd: OneOrMany<Measurement384>,
    /// Accepted RTMR0 values.
    #[serde(default)]
    pub rtmr0: OneOrMany<Measurement384>,
    /// Accepted RTMR1 values.
    #[serde(default)]
    pub rtmr1: OneOrMany<Measurement384>,
    /// Accepted RTMR2 values.
    #[serde(default)]
    pub rtmr2: OneOrMany<Measurement384>,
    /// Accepted RTMR3 values.
    #[serde(default)]
    pub rtmr3: OneOrMany<Measurement384>,
}

/// Minimum SEV-SNP TCB components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpMinTcb {
    /// Boot loader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// TEE SPL.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// Microcode SPL.
    #[serde(default)]
    pub microcode: u8,
}

/// SEV-SNP reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpReference {
    /// Accepted launch measurements.
    #[serde(default)]
    pub measurement: OneOrMany<Measurement384>,
    /// Guest policy bits that must be set (e.g. `0x30000`).
    #[serde(default)]
    pub policy_required_bits: Option<u64>,
    /// Guest policy bits that must be clear (debug, bit 19, is governed by `allow_debug`).
    #[serde(default)]
    pub policy_forbidden_bits: Option<u64>,
    /// Minimum reported TCB.
    #[serde(default)]
    pub min_reported_tcb: Option<SnpMinTcb>,
    /// Accepted VMPLs (e.g. `[0]`).
    #[serde(default)]
    pub vmpl: OneOrMany<u32>,
}

/// Simulated-TEE reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimReference {
    /// Accepted executable measurements.
    #[serde(default)]
    pub measurement: OneOrMany<Measurement384>,
}

fn default_statuses() -> Vec<String> {
    vec!["UpToDate".to_owned()]
}

fn default_result_ttl() -> DurationSecs {
    DurationSecs(3600)
}

/// An appraisal policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppraisalPolicy {
    /// Accept evidence from the simulated TEE. Never true by default.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Accept evidence from debug TEEs (their memory is open to the host).
    #[serde(default)]
    pub allow_debug: bool,
    /// Intel TCB statuses to accept.
    #[serde(default = "default_statuses")]
    pub accepted_tcb_statuses: Vec<String>,
    /// Intel advisories to tolerate; `["*"]` tolerates any.
    #[serde(default)]
    pub allowed_advisories: Vec<String>,
    /// Maximum age of the TCB info / QE identity at verification time.
    #[serde(default)]
    pub max_collateral_age: Option<DurationSecs>,
    /// Maximum age of evidence that carries a timestamp (simulated reports).
    #[serde(default)]
    pub max_evidence_age: Option<DurationSecs>,
    /// The report_data the evidence must carry (64 bytes hex).
    #[serde(default)]
    pub report_data: Option<ReportData>,
    /// Lifetime of attestation result tokens (capped by the endorsements' validity).
    #[serde(default = "default_result_ttl")]
    pub result_ttl: DurationSecs,
    /// SGX reference values.
    #[serde(default)]
    pub sgx: SgxReference,
    /// TDX reference values.
    #[serde(default)]
    pub tdx: TdxReference,
    /// SEV-SNP reference values.
    #[serde(default)]
    pub snp: SnpReference,
    /// Simulated-TEE reference values.
    #[serde(default)]
    pub sim: SimReference,
}

impl Default for AppraisalPolicy {
    fn default() -> Self {
        Self {
            allow_simulated: false,
            allow_debug: false,
            accepted_tcb_statuses: default_statuses(),
            allowed_advisories: Vec::new(),
            max_collateral_age: None,
            max_evidence_age: None,
            report_data: None,
            result_ttl: default_result_ttl(),
            sgx: SgxReference::default(),
            tdx: TdxReference::default(),
            snp: SnpReference::default(),
            sim: SimReference::default(),
        }
    }
}

/// Facts from the endorsements that the policy judges (not part of the claims).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EndorsementFacts {
    /// The oldest issue date of the TCB info / QE identity, if any.
    pub(crate) collateral_issued: Option<UnixTime>,
}

impl AppraisalPolicy {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::PolicyInvalid {
            reason: crate::error::one_line(e),
        })
    }

    /// Reads a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::PolicyInvalid { reason } => Error::PolicyInvalid {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// The policy as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// A digest identifying this policy (for caches).
    pub fn digest(&self) -> Digest256 {
        Digest256::of(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Judges verified claims. Returns warnings for things accepted but worth telling a human.
    pub(crate) fn evaluate(
        &self,
        claims: &Claims,
        facts: EndorsementFacts,
        now: UnixTime,
    ) -> Result<Vec<String>, Error> {
        let mut warnings = Vec::new();
        let platform = claims.platform_kind();
        if claims.is_simulated() {
            if !self.allow_simulated {
                return Err(Error::SimulatedNotAllowed);
            }
            warnings.push(
                "SIMULATED TEE: this evidence has no hardware protection; accepted only because the policy sets allow_simulated".to_owned(),
            );
        }
        if claims.debug {
            if !self.allow_debug {
                return Err(Error::DebugNotAllowed { platform });
            }
            warnings.push(format!("DEBUG {platform} TEE: its memory is readable by the host; accepted because the policy sets allow_debug"));
        }
        if let Some(tcb) = &claims.tcb {
            if !self.accepted_tcb_statuses.iter().any(|s| s == &tcb.status) {
                return Err(Error::TcbStatusNotAccepted {
                    status: tcb.status.clone(),
                    accepted: self.accepted_tcb_statuses.clone(),
                });
            }
            let any = self.allowed_advisories.iter().any(|a| a == "*");
            let refused: Vec<String> = tcb
                .advisory_ids
                .iter()
                .filter(|id| !any && !self.allowed_advisories.contains(id))
                .cloned()
                .collect();
            if !refused.is_empty() {
                return Err(Error::AdvisoriesNotAllowed { ids: refused });
            }
            if tcb.status != "UpToDate" {
                warnings.push(format!("TCB status {} accepted by policy", tcb.status));
            }
            if !tcb.advisory_ids.is_empty() {
                warnings.push(format!(
                    "advisories accepted by policy: {}",
                    tcb.advisory_ids.join(", ")
                ));
            }
        }
        if let (Some(max), Some(issued)) = (self.max_collateral_age, facts.collateral_issued) {
            let age = now.as_secs().saturating_sub(issued.as_secs());
            if age > max.0 {
                return Err(Error::CollateralTooOld {
                    what: "TCB info / QE identity".into(),
                    age_secs: age,
                    max_secs: max.0,
                });
            }
        }
        self.check_reference_values(claims, now)?;
        if let Some(expected) = &self.report_data
            && expected != &claims.report_data
        {
            return Err(Error::ReportDataMismatch {
                actual: claims.report_data.to_hex(),
                expected: expected.to_hex(),
            });
        }
        Ok(warnings)
    }

    fn check_reference_values(&self, claims: &Claims, now: UnixTime) -> Result<(), Error> {
        match &claims.platform {
            PlatformClaims::Sgx(c) => {
                self.sgx.mrenclave.check("mrenclave", &c.mrenclave)?;
                self.sgx.mrsigner.check("mrsigner", &c.mrsigner)?;
                if let Some(id) = self.sgx.isv_prod_id {
                    OneOrMany(vec![id]).check("isv_prod_id", &c.isv_prod_id)?;
                }
                if let Some(min) = self.sgx.min_isv_svn {
                    at_least("isv_svn", c.isv_svn.into(), min.into())?;
                }
            }
            PlatformClaims::Tdx(c) => {
                self.tdx.mrtd.check("mrtd", &c.mrtd)?;
                self.tdx.rtmr0.check("rtmr0", &c.rtmr[0])?;
                self.tdx.rtmr1.check("rtmr1", &c.rtmr[1])?;
                self.tdx.rtmr2.check("rtmr2", &c.rtmr[2])?;
                self.tdx.rtmr3.check("rtmr3", &c.rtmr[3])?;
            }
            PlatformClaims::Snp(c) => {
                self.snp.measurement.check("measurement", &c.measurement)?;
                self.snp.vmpl.check("vmpl", &c.vmpl)?;
                if let Some(bits) = self.snp.policy_required_bits
                    && c.policy & bits != bits
                {
                    return Err(Error::SnpGuestPolicyViolation {
                        actual: c.policy,
                        reason: format!("required bits {bits:#x} are not all set"),
                    });
                }
                if let Some(bits) = self.snp.policy_forbidden_bits
                    && c.policy & bits != 0
                {
                    return Err(Error::SnpGuestPolicyViolation {
                        actual: c.policy,
                        reason: format!("forbidden bits {:#x} are set", c.policy & bits),
                    });
                }
                if let Some(min) = self.snp.min_reported_tcb {
                    check_min_tcb(&c.reported_tcb, &min)?;
                }
            }
            PlatformClaims::Sim(c) => {
                self.sim.measurement.check("measurement", &c.measurement)?;
                if c.timestamp.as_secs() > now.as_secs().saturating_add(300) {
                    return Err(Error::EvidenceFromFuture {
                        timestamp: c.timestamp,
                        now,
                    });
                }
                if let Some(max) = self.max_evidence_age {
                    let age = now.as_secs().saturating_sub(c.timestamp.as_secs());
                    if age > max.0 {
                        return Err(Error::EvidenceTooOld {
                            age_secs: age,
                            max_secs: max.0,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

fn at_least(field: &'static str, actual: u64, minimum: u64) -> Result<(), Error> {
    if actual < minimum {
        return Err(Error::SecurityVersionTooLow {
            field,
            actual,
            minimum,
        });
    }
    Ok(())
}

fn check_min_tcb(tcb: &SnpTcb, min: &SnpMinTcb) -> Result<(), Error> {
    at_least(
        "reported_tcb.bootloader",
        tcb.bootloader.into(),
        min.bootloader.into(),
    )?;
    at_least("reported_tcb.tee", tcb.tee.into(), min.tee.into())?;
    at_least("reported_tcb.snp", tcb.snp.into(), min.snp.into())?;
    at_least(
        "reported_tcb.microcode",
        tcb.microcode.into(),
        min.microcode.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{SgxClaims, TcbVerdict};

    fn sgx_claims(debug: bool) -> Claims {
        Claims {
            platform: PlatformClaims::Sgx(SgxClaims {
                mrenclave: Measurement256([1; 32]),
                mrsigner: Measurement256([2; 32]),
                isv_prod_id: 0,
                isv_svn: 3,
                attributes: String::new(),
                cpu_svn: String::new(),
            }),
            report_data: ReportData([0; 64]),
            debug,
            tcb: Some(TcbVerdict {
                status: "UpToDate".into(),
                advisory_ids: vec![],
            }),
            evidence_digest: Digest256([0; 32]),
        }
    }

    #[test]
    fn defaults_are_strict() {
        let p = AppraisalPolicy::from_toml("").unwrap();
        assert_eq!(p, AppraisalPolicy::default());
        assert!(!p.allow_simulated && !p.allow_debug);
        assert_eq!(p.accepted_tcb_statuses, ["UpToDate"]);
        assert!(p.allowed_advisories.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = AppraisalPolicy::from_toml("allow_simulation = true").unwrap_err();
        assert!(matches!(err, Error::PolicyInvalid { .. }), "{err}");
        assert!(err.to_string().contains("allow_simulation"), "{err}");
    }

    #[test]
    fn debug_needs_opt_in() {
        let strict = AppraisalPolicy::default();
        let err = strict
            .evaluate(&sgx_claims(true), EndorsementFacts::default(), UnixTime(0))
            .unwrap_err();
        assert!(matches!(err, Error::DebugNotAllowed { .. }), "{err}");
        let lax = AppraisalPolicy::from_toml("allow_debug = true").unwrap();
        let warnings = lax
            .evaluate(&sgx_claims(true), EndorsementFacts::default(), UnixTime(0))
            .unwrap();
        assert!(warnings.iter().any(|w| w.contains("DEBUG")));
    }

    #[test]
    fn reference_values_and_svn() {
        let p = AppraisalPolicy::from_toml(&format!(
            "[sgx]\nmrenclave = \"{}\"\nmin_isv_svn = 4\n",
            "01".repeat(32)
        ))
        .unwrap();
        let err = p
            .evaluate(&sgx_claims(false), EndorsementFacts::default(), UnixTime(0))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SecurityVersionTooLow {
                    field: "isv_svn",
                    ..
                }
            ),
            "{err}"
        );
        let p =
            AppraisalPolicy::from_toml(&format!("[sgx]\nmrsigner = [\"{}\"]\n", "03".repeat(32)))
                .unwrap();
        let err = p
            .evaluate(&sgx_claims(false), EndorsementFacts::default(), UnixTime(0))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ReferenceValueMismatch {
                    field: "mrsigner",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn collateral_age() {
        let p = AppraisalPolicy::from_toml("max_collateral_age = \"1d\"").unwrap();
        let facts = EndorsementFacts {
            collateral_issued: Some(UnixTime(0)),
        };
        assert!(
            p.evaluate(&sgx_claims(false), facts, UnixTime(86_400))
                .is_ok()
        );
        let err = p
            .evaluate(&sgx_claims(false), facts, UnixTime(86_401))
            .unwrap_err();
        assert!(matches!(err, Error::CollateralTooOld { .. }), "{err}");
    }
}
