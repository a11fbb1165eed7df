//! Intel PCS v4: the four responses that endorse an SGX or TDX quote, chosen by the FMSPC and
//! PCK CA in the quote's PCK certificate.

use attest::PlatformKind;
use attest::evidence::PckPlatform;

use crate::config::{FetcherConfig, trim_base};
use crate::error::Error;
use crate::fetcher::{IssuerChain, Resource};

/// The TCB info and QE identity issuer chain (Intel SGX TCB Signing → Root CA). PCS v4 names it
/// `TCB-Info-Issuer-Chain`, v3 and some PCCS versions `SGX-TCB-Info-Issuer-Chain`.
const TCB_INFO_CHAIN: IssuerChain = IssuerChain {
    headers: &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
    name: "tcb_info_issuer_chain.pem",
};
const QE_IDENTITY_CHAIN: IssuerChain = IssuerChain {
    headers: &["SGX-Enclave-Identity-Issuer-Chain"],
    name: "qe_identity_issuer_chain.pem",
};
const PCK_CRL_CHAIN: IssuerChain = IssuerChain {
    headers: &["SGX-PCK-CRL-Issuer-Chain"],
    name: "pck_crl_issuer_chain.pem",
};

/// The PCS requests for a quote from `platform` whose PCK certificate names `pck`.
pub(crate) fn resources(
    config: &FetcherConfig,
    platform: PlatformKind,
    pck: &PckPlatform,
) -> Result<Vec<Resource>, Error> {
    let tee = match platform {
        PlatformKind::Sgx => "sgx",
        PlatformKind::Tdx => "tdx",
        other => {
            return Err(Error::unsupported(format!(
                "{} evidence is not a DCAP quote",
                other.as_str()
            )));
        }
    };
    let pcs = trim_base(&config.intel_pcs_base);
    let fmspc = hex::encode_upper(pck.fmspc);
    Ok(vec![
        Resource {
            url: format!("{pcs}/{tee}/certification/v4/tcb?fmspc={fmspc}"),
            name: "tcb_info.json",
            issuer_chain: Some(TCB_INFO_CHAIN),
        },
        Resource {
            url: format!("{pcs}/{tee}/certification/v4/qe/identity"),
            name: "qe_identity.json",
            issuer_chain: Some(QE_IDENTITY_CHAIN),
        },
        // PCK CRLs are SGX resources for TDX too: the PCK certificate is the same kind.
        Resource {
            url: format!(
                "{pcs}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
                pck.ca.as_str()
            ),
            name: "pck_crl.der",
            issuer_chain: Some(PCK_CRL_CHAIN),
        },
        Resource {
            url: format!("{}/IntelSGXRootCA.der", trim_base(&config.intel_certs_base)),
            name: "root_ca_crl.der",
            issuer_chain: None,
        },
    ])
}
