//! Attestation results: a signed, expiring token (a JWT shaped like an EAR, Entity Attestation
//! Result) that relying parties verify with the verifier's public key instead of re-appraising
//! evidence. Also a compact secp256k1 (EIP-191) signature over a result digest for contracts.

pub mod eip191;
pub mod keys;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::claims::{Claims, VerifiedClaims};
use crate::error::Error;
use crate::time::UnixTime;

pub use keys::{ResultAlgorithm, ResultSigningKey, ResultVerifyingKey};

/// The EAR profile we follow.
pub const EAR_PROFILE: &str = "tag:github.com,2023:veraison/ear";
/// Clock skew tolerated when checking `iat`.
const MAX_SKEW_SECS: u64 = 60;
/// Largest token we parse.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// EAR status of an appraisal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// Affirmed with nothing to note.
    Affirming,
    /// Affirmed, with warnings (simulation, debug, accepted advisories).
    Warning,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Serialize, Deserialize)]
struct VerifierId {
    developer: String,
    build: String,
}

#[derive(Serialize, Deserialize)]
struct Submod {
    #[serde(rename = "ear.status")]
    status: ResultStatus,
    #[serde(rename = "teemesh.claims")]
    claims: Claims,
    #[serde(rename = "teemesh.warnings", default)]
    warnings: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    eat_profile: String,
    iat: u64,
    exp: u64,
    #[serde(rename = "ear.verifier-id")]
    verifier_id: VerifierId,
    #[serde(rename = "teemesh.simulated")]
    simulated: bool,
    submods: std::collections::BTreeMap<String, Submod>,
}

/// A verified attestation result: what a relying party knows after checking a token.
///
/// Only [`AttestationResult::verify`] constructs it, after checking signature and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationResult {
    claims: Claims,
    status: ResultStatus,
    warnings: Vec<String>,
    issued_at: UnixTime,
    expires_at: UnixTime,
    key_id: String,
}

/// Issues a signed result token for `verified`, valid until the earlier of `now + ttl_secs` and
/// the end of the endorsements' validity.
pub fn issue_result_token(
    verified: &VerifiedClaims,
    key: &ResultSigningKey,
    ttl_secs: u64,
) -> Result<(String, UnixTime), Error> {
    let iat = verified.appraised_at();
    let exp = iat.plus(ttl_secs).min(verified.valid_until());
    let header = Header {
        alg: key.algorithm().jose_name().to_owned(),
        typ: "JWT".into(),
        kid: key.public_key().key_id(),
    };
    let status = if verified.warnings().is_empty() {
        ResultStatus::Affirming
    } else {
        ResultStatus::Warning
    };
    let mut submods = std::collections::BTreeMap::new();
    submods.insert(
        verified.platform_kind().as_str().to_owned(),
        Submod {
            status,
            claims: verified.claims().clone(),
            warnings: verified.warnings().to_vec(),
        },
    );
    let payload = Payload {
        eat_profile: EAR_PROFILE.into(),
        iat: iat.as_secs(),
        exp: exp.as_secs(),
        verifier_id: VerifierId {
            developer: "teemesh".into(),
            build: concat!("teemesh-attest ", env!("CARGO_PKG_VERSION")).into(),
        },
        simulated: verified.is_simulated(),
        submods,
    };
    let signing_input = format!("{}.{}", b64_json(&header)?, b64_json(&payload)?);
    let signature = key.sign(signing_input.as_bytes());
    Ok((format!("{signing_input}.{}", B64.encode(signature)), exp))
}

fn b64_json<T: Serialize>(value: &T) -> Result<String, Error> {
    let json = serde_json::to_vec(value).map_err(|e| malformed(e.to_string()))?;
    Ok(B64.encode(json))
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::TokenMalformed {
        // serde_json quotes the offending input (a forged token's payload) in its messages.
        reason: crate::error::one_line(reason.into()),
    }
}

impl AttestationResult {
    /// Verifies a token: the algorithm must be the key's, the signature must verify, and `now`
    /// must lie in [iat − 60 s, exp].
    pub fn verify(token: &str, key: &ResultVerifyingKey, now: UnixTime) -> Result<Self, Error> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!("{} bytes is too long", token.len())));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three base64url parts separated by '.'"));
        };
        let header: Header = serde_json::from_slice(
            &B64.decode(h)
                .map_err(|e| malformed(format!("header: {e}")))?,
        )
        .map_err(|e| malformed(format!("header: {e}")))?;
        if header.alg != key.algorithm().jose_name() {
            return Err(Error::TokenSignatureInvalid {
                reason: format!(
                    "token alg {:?}, verifier key is {}",
                    header.alg,
                    key.algorithm().jose_name()
                ),
            });
        }
        let signature = B64
            .decode(s)
            .map_err(|e| malformed(format!("signature: {e}")))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        key.verify(signing_input.as_bytes(), &signature)
            .map_err(|reason| Error::TokenSignatureInvalid { reason })?;
        let payload: Payload = serde_json::from_slice(
            &B64.decode(p)
                .map_err(|e| malformed(format!("payload: {e}")))?,
        )
        .map_err(|e| malformed(format!("payload: {e}")))?;
        if payload.eat_profile != EAR_PROFILE {
            return Err(malformed(format!("eat_profile {:?}", payload.eat_profile)));
        }
        let (iat, exp) = (UnixTime(payload.iat), UnixTime(payload.exp));
        if now > exp {
            return Err(Error::TokenExpired { expired: exp, now });
        }
        if iat.as_secs() > now.as_secs().saturating_add(MAX_SKEW_SECS) {
            return Err(Error::TokenNotYetValid { issued: iat, now });
        }
        let mut submods = payload.submods.into_iter();
        let (Some((name, submod)), None) = (submods.next(), submods.next()) else {
            return Err(malformed("expected exactly one submod"));
        };
        if name != submod.claims.platform_kind().as_str()
            || payload.simulated != submod.claims.is_simulated()
        {
            return Err(malformed(
                "submod name or teemesh.simulated disagrees with the claims",
            ));
        }
        Ok(Self {
            claims: submod.claims,
            status: submod.status,
            warnings: submod.warnings,
            issued_at: iat,
            expires_at: exp,
            key_id: header.kid,
        })
    }

    /// The claims the verifier affirmed.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// EAR status.
    pub fn status(&self) -> ResultStatus {
        self.status
    }

    /// Warnings the verifier attached.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `iat`.
    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }

    /// `exp`.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The `kid` of the verifier key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}
