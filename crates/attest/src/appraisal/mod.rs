//! The verifier: appraises evidence with endorsements under a policy at a given time, and is the
//! only code that constructs [`VerifiedClaims`]. A cache keyed by (evidence, endorsements, policy)
//! makes re-appraising the same evidence cheap and honours each result's expiry.

mod cache;
mod dcap;
mod snp;

use crate::claims::{PlatformClaims, PlatformKind, VerifiedClaims};
use crate::endorsements::Endorsements;
use crate::error::Error;
use crate::evidence::{Evidence, EvidenceFormat};
use crate::policy::{AppraisalPolicy, EndorsementFacts};
use crate::time::UnixTime;

pub use cache::AppraisalCache;

/// Appraises evidence under one policy.
#[derive(Debug)]
pub struct Verifier {
    policy: AppraisalPolicy,
    cache: AppraisalCache,
}

impl Verifier {
    /// A verifier for `policy`, with a cache of 1024 results.
    pub fn new(policy: AppraisalPolicy) -> Self {
        Self {
            policy,
            cache: AppraisalCache::new(1024),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AppraisalPolicy {
        &self.policy
    }

    /// Parses and appraises raw evidence bytes.
    pub fn appraise_bytes(
        &self,
        evidence: &[u8],
        endorsements: &Endorsements,
        now: UnixTime,
    ) -> Result<VerifiedClaims, Error> {
        self.appraise(&Evidence::from_bytes(evidence)?, endorsements, now)
    }

    /// Appraises parsed evidence: checks every signature back to the vendor root, the
    /// endorsements' validity at `now`, then the policy.
    pub fn appraise(
        &self,
        evidence: &Evidence,
        endorsements: &Endorsements,
        now: UnixTime,
    ) -> Result<VerifiedClaims, Error> {
        let _span = tracing::debug_span!("appraise", platform = %evidence.platform()).entered();
        if evidence.platform() == PlatformKind::Sim && !self.policy.allow_simulated {
            return Err(Error::SimulatedNotAllowed);
        }
        let mut claims = evidence.unverified_claims();
        let mut facts = EndorsementFacts::default();
        let valid_until = match evidence.format() {
            EvidenceFormat::Dcap(_) => {
                let collateral = endorsements.dcap_collateral()?.ok_or_else(|| Error::EndorsementsMissing {
                    platform: evidence.platform(),
                    what: "Intel collateral: a QuoteCollateralV3 JSON file or the raw PCS responses (TCB info, QE identity, issuer chains, CRLs)".into(),
                })?;
                let outcome =
                    dcap::verify_quote(evidence.raw(), evidence.platform(), &collateral, now)?;
                claims.tcb = Some(outcome.tcb);
                facts.collateral_issued = Some(outcome.collateral_issued);
                outcome.valid_until
            }
            EvidenceFormat::Snp(report) => {
                let outcome = snp::verify_report(report, evidence.raw(), endorsements, now)?;
                if let PlatformClaims::Snp(c) = &mut claims.platform {
                    c.product = Some(outcome.product);
                }
                outcome.valid_until
            }
            EvidenceFormat::Sim(report) => {
                report.verify_signature()?;
                now.plus(self.policy.result_ttl.0)
            }
        };
        let warnings = self.policy.evaluate(&claims, facts, now)?;
        for w in &warnings {
            tracing::info!(platform = %claims.platform_kind(), "{w}");
        }
        Ok(VerifiedClaims::new(claims, now, valid_until, warnings))
    }

    /// Like [`Verifier::appraise_bytes`], but answers from the cache when the same evidence with
    /// the same endorsements was affirmed before and its result has not expired at `now`.
    /// Refusals are not cached.
    pub fn appraise_cached(
        &self,
        evidence: &[u8],
        endorsements: &Endorsements,
        now: UnixTime,
    ) -> Result<VerifiedClaims, Error> {
        let key = AppraisalCache::key(evidence, &endorsements.digest());
        if let Some(hit) = self.cache.get(&key, now) {
            return Ok(hit);
        }
        let verified = self.appraise_bytes(evidence, endorsements, now)?;
        self.cache.insert(key, verified.clone());
        Ok(verified)
    }

    /// The cache (for statistics).
    pub fn cache(&self) -> &AppraisalCache {
        &self.cache
    }
}
