//! AMD KDS: the VCEK for a SEV-SNP report's chip and reported TCB, and the ASK/ARK chain of its
//! product line. VLEKs are not served by KDS to the public, so VLEK-signed reports are refused.

use std::fmt;
use std::str::FromStr;

use attest::claims::{SnpSigningKey, SnpTcb};
use attest::evidence::SnpReport;

use crate::config::{FetcherConfig, trim_base};
use crate::error::Error;
use crate::fetcher::Resource;

/// An AMD EPYC product line, as KDS names it in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnpProduct {
    /// 3rd generation EPYC (family 19h, models 0h–Fh).
    Milan,
    /// 4th generation EPYC (family 19h, models 10h–1Fh and A0h–AFh).
    Genoa,
    /// 5th generation EPYC (family 1Ah).
    Turin,
}

impl SnpProduct {
    /// The name KDS uses: `Milan`, `Genoa`, `Turin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        }
    }
}

impl fmt::Display for SnpProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnpProduct {
    type Err = String;

    /// Case-insensitive `milan`, `genoa` or `turin`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "milan" => Ok(Self::Milan),
            "genoa" => Ok(Self::Genoa),
            "turin" => Ok(Self::Turin),
            _ => Err(format!(
                "unknown SEV-SNP product {s:?}: expected milan, genoa or turin"
            )),
        }
    }
}

/// The product line of `report`: from its CPUID fields (version 3 and later), else `given`.
pub(crate) fn product_for(
    report: &SnpReport,
    given: Option<SnpProduct>,
) -> Result<SnpProduct, Error> {
    let version = report.claims.report_version;
    let from_report = match (report.cpuid_family, report.cpuid_model) {
        (Some(family), Some(model)) => Some(
            report
                .claims
                .product
                .as_deref()
                .and_then(|p| p.parse::<SnpProduct>().ok())
                .ok_or_else(|| {
                    Error::unsupported(format!(
                        "CPUID family {family:#x} model {model:#x} is not a known SEV-SNP product (Milan, Genoa, Turin)"
                    ))
                })?,
        ),
        _ => None,
    };
    match (from_report, given) {
        (Some(own), Some(given)) if own != given => Err(Error::unsupported(format!(
            "the report's CPUID says {own}, but {given} was given as its product"
        ))),
        (Some(product), _) | (None, Some(product)) => Ok(product),
        (None, None) => Err(Error::unsupported(format!(
            "a version {version} SEV-SNP report does not say which product made it; name it (milan, genoa or turin)"
        ))),
    }
}

/// The KDS requests for a VCEK-signed `report` from `product`.
pub(crate) fn resources(
    config: &FetcherConfig,
    report: &SnpReport,
    product: SnpProduct,
) -> Result<Vec<Resource>, Error> {
    if report.claims.signing_key == SnpSigningKey::Vlek {
        return Err(Error::unsupported(
            "the report is signed by a VLEK, which AMD KDS does not serve (it is provisioned to the \
             cloud provider): take it from the host's certificate table and pass it as an endorsement",
        ));
    }
    let chip_id = hex::decode(&report.claims.chip_id)
        .map_err(|e| Error::unsupported(format!("chip id is not hex: {e}")))?;
    if chip_id.iter().all(|b| *b == 0) {
        return Err(Error::unsupported(
            "the report's chip id is masked (all zero), and KDS needs it to find the VCEK",
        ));
    }
    // Turin's KDS URLs take the first 8 bytes of the chip id; earlier products all 64.
    let hwid = match product {
        SnpProduct::Turin => hex::encode(chip_id.get(..8).unwrap_or(&chip_id)),
        SnpProduct::Milan | SnpProduct::Genoa => hex::encode(&chip_id),
    };
    let turin = product == SnpProduct::Turin;
    let tcb = SnpTcb::decode(report.claims.reported_tcb.raw, turin);
    let mut query = String::new();
    if turin {
        let fmc = tcb.fmc.unwrap_or_default();
        query.push_str(&format!("fmcSPL={fmc}&"));
    }
    query.push_str(&format!(
        "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    ));
    let kds = trim_base(&config.amd_kds_base);
    Ok(vec![
        Resource {
            url: format!("{kds}/vcek/v1/{product}/{hwid}?{query}"),
            name: "vcek.der",
            issuer_chain: None,
        },
        Resource {
            url: format!("{kds}/vcek/v1/{product}/cert_chain"),
            name: "ask_ark.pem",
            issuer_chain: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_parse_case_insensitively() {
        assert_eq!("milan".parse(), Ok(SnpProduct::Milan));
        assert_eq!("Genoa".parse(), Ok(SnpProduct::Genoa));
        assert_eq!("TURIN".parse(), Ok(SnpProduct::Turin));
        assert!("bergamo".parse::<SnpProduct>().is_err());
        assert_eq!(SnpProduct::Turin.to_string(), "Turin");
    }
}
