//! Appraising SEV-SNP reports: ARK (built in) → ASK/ASVK → VCEK/VLEK with the `sev` crate, each
//! link a distinct error; then the report signature over the raw signed bytes (not a re-encoding),
//! then the VCEK/VLEK's TCB and chip id against the report.

use p384::ecdsa::signature::Verifier as _;
use sev::certs::snp::Verifiable;

use crate::claims::{PlatformKind, SnpSigningKey};
use crate::endorsements::Endorsements;
use crate::endorsements::snp::{AmdCert, AmdRole, PRODUCTS, builtin_ark_ask};
use crate::error::Error;
use crate::evidence::snp::{SIGNED_LEN, SnpReport};
use crate::time::UnixTime;

/// What the SNP checks established.
pub(crate) struct SnpOutcome {
    pub(crate) product: String,
    pub(crate) valid_until: UnixTime,
}

fn key_role(key: SnpSigningKey) -> AmdRole {
    match key {
        SnpSigningKey::Vcek => AmdRole::Vcek,
        SnpSigningKey::Vlek => AmdRole::Vlek,
    }
}

fn check_validity(cert: &AmdCert, now: UnixTime) -> Result<UnixTime, Error> {
    let (not_before, not_after) = cert.validity();
    if now < not_before {
        return Err(Error::CollateralNotYetValid {
            what: format!("{} certificate", cert.common_name),
            issued: not_before,
            now,
        });
    }
    if now > not_after {
        return Err(Error::CollateralExpired {
            what: format!("{} certificate", cert.common_name),
            next_update: not_after,
            now,
        });
    }
    Ok(not_after)
}

/// A candidate chain: intermediate (ASK or ASVK) and root (ARK) for one product.
struct CaChain {
    product: String,
    intermediate: AmdCert,
    ark: AmdCert,
}

/// The chains to try: the supplied ones (their ARK must equal AMD's built-in ARK), or, if none
/// was supplied, the built-in ASK/ARK of every product line.
fn candidate_chains(endorsements: &Endorsements, key: &AmdCert) -> Result<Vec<CaChain>, Error> {
    let wanted = if key.role == AmdRole::Vlek {
        AmdRole::Asvk
    } else {
        AmdRole::Ask
    };
    let supplied: Vec<&AmdCert> = endorsements
        .amd_certs()
        .iter()
        .filter(|c| matches!(c.role, AmdRole::Ask | AmdRole::Asvk | AmdRole::Ark))
        .collect();
    let mut chains = Vec::new();
    if supplied.is_empty() {
        if key.role == AmdRole::Vlek {
            return Err(Error::EndorsementsMissing {
                platform: PlatformKind::Snp,
                what: "a VLEK report needs the ASVK/ARK bundle for its product (e.g. milan_ask_ark_asvk.pem)".into(),
            });
        }
        for product in PRODUCTS {
            let (ark, ask) = builtin_ark_ask(product)?;
            chains.push(CaChain {
                product: product.to_owned(),
                intermediate: ask,
                ark,
            });
        }
        return Ok(chains);
    }
    for inter in supplied.iter().filter(|c| c.role == wanted) {
        let Some(product) = inter.product.clone() else {
            continue;
        };
        let (builtin_ark, _) = builtin_ark_ask(&product)?;
        if let Some(ark) = supplied
            .iter()
            .find(|c| c.role == AmdRole::Ark && c.product.as_deref() == Some(product.as_str()))
            && ark.der != builtin_ark.der
        {
            return Err(Error::CertificateChainInvalid {
                chain: format!("{} ← {}", inter.common_name, ark.common_name),
                reason: format!(
                    "{} from {} is not AMD's {product} root key",
                    ark.common_name, ark.source
                ),
            });
        }
        chains.push(CaChain {
            product,
            intermediate: (*inter).clone(),
            ark: builtin_ark,
        });
    }
    if chains.is_empty() {
        return Err(Error::EndorsementsMissing {
            platform: PlatformKind::Snp,
            what: format!(
                "no {} certificate among the supplied AMD certificates to check the {}",
                if wanted == AmdRole::Asvk {
                    "ASVK (SEV-VLEK-<product>)"
                } else {
                    "ASK (SEV-<product>)"
                },
                key.common_name
            ),
        });
    }
    Ok(chains)
}

fn verify_chain(chain: &CaChain, key: &AmdCert, now: UnixTime) -> Result<UnixTime, Error> {
    let names = crate::error::one_line(format!(
        "{} ← {} ← {}",
        key.common_name, chain.intermediate.common_name, chain.ark.common_name
    ));
    let link = |what: &str, r: std::io::Result<()>| {
        r.map_err(|e| Error::CertificateChainInvalid {
            chain: names.clone(),
            reason: format!("{what}: {e}"),
        })
    };
    link(
        "ARK is not self-signed",
        (&chain.ark.sev, &chain.ark.sev).verify(),
    )?;
    link(
        &format!(
            "{} is not signed by {}",
            chain.intermediate.common_name, chain.ark.common_name
        ),
        (&chain.ark.sev, &chain.intermediate.sev).verify(),
    )?;
    link(
        &format!(
            "{} is not signed by {}",
            key.common_name, chain.intermediate.common_name
        ),
        (&chain.intermediate.sev, &key.sev).verify(),
    )?;
    let mut valid_until = check_validity(key, now)?;
    valid_until = valid_until.min(check_validity(&chain.intermediate, now)?);
    Ok(valid_until.min(check_validity(&chain.ark, now)?))
}

fn verify_report_signature(report: &SnpReport, raw: &[u8], key: &AmdCert) -> Result<(), Error> {
    let invalid = |reason: String| Error::EvidenceSignatureInvalid {
        platform: PlatformKind::Snp,
        reason,
    };
    let public =
        p384::ecdsa::VerifyingKey::from_sec1_bytes(key.sev.public_key_sec1()).map_err(|e| {
            invalid(format!(
                "{} does not hold a P-384 key: {e}",
                key.common_name
            ))
        })?;
    let signature = p384::ecdsa::Signature::from_scalars(report.signature_r, report.signature_s)
        .map_err(|e| invalid(format!("signature is not a valid P-384 signature: {e}")))?;
    let signed = raw
        .get(..SIGNED_LEN)
        .ok_or_else(|| invalid("report truncated".into()))?;
    public.verify(signed, &signature).map_err(|_| {
        invalid(format!(
            "the report is not signed by the {} offered",
            key.common_name
        ))
    })
}

fn check_key_matches_report(report: &SnpReport, key: &AmdCert) -> Result<(), Error> {
    let tcb = key.vek_tcb();
    let reported = &report.claims.reported_tcb;
    let fields = [
        ("bootloader", tcb.bootloader, Some(reported.bootloader)),
        ("tee", tcb.tee, Some(reported.tee)),
        ("snp", tcb.snp, Some(reported.snp)),
        ("microcode", tcb.microcode, Some(reported.microcode)),
        ("fmc", tcb.fmc, reported.fmc),
    ];
    for (name, cert_value, report_value) in fields {
        if let (Some(c), Some(r)) = (cert_value, report_value)
            && c != r
        {
            return Err(Error::SnpEndorsementMismatch {
                reason: format!(
                    "{} was issued for {name} SPL {c}, the report's reported_tcb has {r}",
                    key.common_name
                ),
            });
        }
    }
    if key.role == AmdRole::Vcek {
        let chip_id = hex::decode(&report.claims.chip_id).unwrap_or_default();
        let masked = chip_id.iter().all(|b| *b == 0);
        if let Some(hwid) = tcb.hwid
            && !masked
            && hwid != chip_id
        {
            return Err(Error::SnpEndorsementMismatch {
                reason:
                    "the VCEK was issued for another chip (hwid differs from the report's chip_id)"
                        .into(),
            });
        }
    }
    Ok(())
}

/// Full SNP appraisal of the signature path.
pub(crate) fn verify_report(
    report: &SnpReport,
    raw: &[u8],
    endorsements: &Endorsements,
    now: UnixTime,
) -> Result<SnpOutcome, Error> {
    let wanted = key_role(report.claims.signing_key);
    let keys: Vec<&AmdCert> = endorsements
        .amd_certs()
        .iter()
        .filter(|c| matches!(c.role, AmdRole::Vcek | AmdRole::Vlek))
        .collect();
    let Some(key) = keys.iter().find(|c| c.role == wanted) else {
        if let Some(other) = keys.first() {
            return Err(Error::SnpSigningKeyMismatch {
                report_says: report.claims.signing_key.to_string(),
                offered: other.common_name.trim_start_matches("SEV-").to_owned(),
            });
        }
        return Err(Error::EndorsementsMissing {
            platform: PlatformKind::Snp,
            what: format!(
                "the report is signed by a {}: supply its certificate (DER or PEM) with --endorsements",
                report.claims.signing_key
            ),
        });
    };
    let mut chains = candidate_chains(endorsements, key)?;
    // Try the product the report or the key names first; fall back to the others.
    let preferred = report
        .claims
        .product
        .clone()
        .or_else(|| key.product.clone());
    chains.sort_by_key(|c| Some(&c.product) != preferred.as_ref());
    let mut first_error = None;
    let mut verified = None;
    for chain in &chains {
        match verify_chain(chain, key, now) {
            Ok(valid_until) => {
                verified = Some((chain.product.clone(), valid_until));
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some((product, valid_until)) = verified else {
        return Err(first_error.unwrap_or(Error::EndorsementsMissing {
            platform: PlatformKind::Snp,
            what: "no certificate chain to try".into(),
        }));
    };
    verify_report_signature(report, raw, key)?;
    check_key_matches_report(report, key)?;
    Ok(SnpOutcome {
        product,
        valid_until,
    })
}
