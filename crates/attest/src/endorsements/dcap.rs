//! Intel DCAP collateral: TCB info, QE identity, their issuer chains, and the PCK and root CA CRLs.
//! Accepted whole (dcap-qvl's `QuoteCollateralV3` JSON) or as the raw Intel PCS responses, which
//! are assembled here. Validity dates are read once so the appraisal can explain expiry precisely.

use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;
use serde_json::value::RawValue;
use x509_cert::der::Decode;

use super::common_name;
use crate::error::Error;
use crate::time::UnixTime;

/// The validity window of one collateral item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Issue date / thisUpdate.
    pub issued: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
}

/// Complete DCAP collateral with its validity windows.
#[derive(Debug, Clone)]
pub struct DcapCollateral {
    /// The collateral in dcap-qvl's layout.
    pub collateral: QuoteCollateralV3,
    /// TCB info issueDate..nextUpdate.
    pub tcb_info: Window,
    /// QE identity issueDate..nextUpdate.
    pub qe_identity: Window,
    /// Root CA CRL thisUpdate..nextUpdate.
    pub root_ca_crl: Window,
    /// PCK CRL thisUpdate..nextUpdate.
    pub pck_crl: Window,
    /// `SGX` or `TDX`, from the TCB info.
    pub tcb_info_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatedJson {
    #[serde(default)]
    id: Option<String>,
    issue_date: String,
    next_update: String,
}

fn json_window(source: &str, what: &str, text: &str) -> Result<(Window, Option<String>), Error> {
    let dated: DatedJson = serde_json::from_str(text)
        .map_err(|e| Error::endorsement(source, format!("{what}: {e}")))?;
    let issued = UnixTime::parse(&dated.issue_date)
        .map_err(|e| Error::endorsement(source, format!("{what} issueDate: {e}")))?;
    let next_update = UnixTime::parse(&dated.next_update)
        .map_err(|e| Error::endorsement(source, format!("{what} nextUpdate: {e}")))?;
    Ok((
        Window {
            issued,
            next_update,
        },
        dated.id,
    ))
}

fn crl_window(source: &str, what: &str, der: &[u8]) -> Result<Window, Error> {
    let crl = x509_cert::crl::CertificateList::from_der(der)
        .map_err(|e| Error::endorsement(source, format!("{what} is not a DER CRL: {e}")))?;
    let next = crl
        .tbs_cert_list
        .next_update
        .ok_or_else(|| Error::endorsement(source, format!("{what} has no nextUpdate")))?;
    Ok(Window {
        issued: super::x509_time(&crl.tbs_cert_list.this_update),
        next_update: super::x509_time(&next),
    })
}

impl DcapCollateral {
    /// Parses `QuoteCollateralV3` JSON.
    pub fn from_json(source: &str, bytes: &[u8]) -> Result<Self, Error> {
        let collateral: QuoteCollateralV3 = serde_json::from_slice(bytes)
            .map_err(|e| Error::endorsement(source, format!("not QuoteCollateralV3 JSON: {e}")))?;
        Self::from_collateral(source, collateral)
    }

    /// Reads the validity windows of complete collateral.
    pub fn from_collateral(source: &str, collateral: QuoteCollateralV3) -> Result<Self, Error> {
        let (tcb_info, id) = json_window(source, "tcb_info", &collateral.tcb_info)?;
        let (qe_identity, _) = json_window(source, "qe_identity", &collateral.qe_identity)?;
        let root_ca_crl = crl_window(source, "root_ca_crl", &collateral.root_ca_crl)?;
        let pck_crl = crl_window(source, "pck_crl", &collateral.pck_crl)?;
        Ok(Self {
            tcb_info,
            qe_identity,
            root_ca_crl,
            pck_crl,
            tcb_info_id: id.unwrap_or_default(),
            collateral,
        })
    }

    /// The earliest nextUpdate of all items: after it, this collateral cannot affirm anything.
    pub fn valid_until(&self) -> UnixTime {
        [
            self.tcb_info,
            self.qe_identity,
            self.root_ca_crl,
            self.pck_crl,
        ]
        .iter()
        .map(|w| w.next_update)
        .min()
        .unwrap_or_default()
    }
}

/// Raw Intel PCS responses, collected until they form complete collateral.
#[derive(Debug, Clone, Default)]
pub struct DcapParts {
    tcb_info: Option<(String, Vec<u8>)>,
    qe_identity: Option<(String, Vec<u8>)>,
    tcb_signing_chain: Option<String>,
    pck_ca_chain: Option<String>,
    root_ca_crl: Option<Vec<u8>>,
    pck_crl: Option<Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PcsSigned<'a> {
    #[serde(borrow, default)]
    tcb_info: Option<&'a RawValue>,
    #[serde(borrow, default)]
    enclave_identity: Option<&'a RawValue>,
    signature: String,
}

fn set_once<T>(slot: &mut Option<T>, value: T, source: &str, what: &str) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::endorsement(
            source,
            format!("a second {what} was given; give one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

impl DcapParts {
    /// A PCS `tcb` or `qe/identity` response body. The signed text is kept byte for byte.
    pub(crate) fn add_pcs_json(&mut self, source: &str, bytes: &[u8]) -> Result<(), Error> {
        let signed: PcsSigned<'_> = serde_json::from_slice(bytes)
            .map_err(|e| Error::endorsement(source, format!("not an Intel PCS response: {e}")))?;
        let signature = hex::decode(&signed.signature)
            .map_err(|e| Error::endorsement(source, format!("signature is not hex: {e}")))?;
        match (signed.tcb_info, signed.enclave_identity) {
            (Some(body), None) => set_once(
                &mut self.tcb_info,
                (body.get().to_owned(), signature),
                source,
                "TCB info",
            ),
            (None, Some(body)) => set_once(
                &mut self.qe_identity,
                (body.get().to_owned(), signature),
                source,
                "QE identity",
            ),
            _ => Err(Error::endorsement(
                source,
                "expected exactly one of tcbInfo or enclaveIdentity",
            )),
        }
    }

    /// A CRL, sorted by its issuer.
    pub(crate) fn add_crl(&mut self, source: &str, der: &[u8]) -> Result<(), Error> {
        let crl = x509_cert::crl::CertificateList::from_der(der)
            .map_err(|e| Error::endorsement(source, format!("bad CRL: {e}")))?;
        let issuer = common_name(&crl.tbs_cert_list.issuer).unwrap_or_default();
        match issuer.as_str() {
            "Intel SGX Root CA" => {
                set_once(&mut self.root_ca_crl, der.to_vec(), source, "root CA CRL")
            }
            "Intel SGX PCK Platform CA" | "Intel SGX PCK Processor CA" => {
                set_once(&mut self.pck_crl, der.to_vec(), source, "PCK CRL")
            }
            other => Err(Error::endorsement(
                source,
                format!("CRL from unexpected issuer {other:?}"),
            )),
        }
    }

    /// An Intel issuer chain (PEM), sorted by its leaf.
    pub(crate) fn add_issuer_chain(
        &mut self,
        source: &str,
        ders: &[&[u8]],
        pem: String,
    ) -> Result<(), Error> {
        let Some(leaf) = ders.first() else {
            return Ok(());
        };
        let cert = x509_cert::Certificate::from_der(leaf)
            .map_err(|e| Error::endorsement(source, format!("bad certificate: {e}")))?;
        let cn = common_name(&cert.tbs_certificate.subject).unwrap_or_default();
        match cn.as_str() {
            "Intel SGX TCB Signing" => set_once(
                &mut self.tcb_signing_chain,
                pem,
                source,
                "TCB signing chain",
            ),
            "Intel SGX PCK Platform CA" | "Intel SGX PCK Processor CA" => {
                set_once(&mut self.pck_ca_chain, pem, source, "PCK CA chain")
            }
            // The root alone adds nothing: Intel's root CA is built in.
            "Intel SGX Root CA" => Ok(()),
            other => Err(Error::endorsement(
                source,
                format!("unexpected Intel certificate {other:?}"),
            )),
        }
    }

    fn is_empty(&self) -> bool {
        self.tcb_info.is_none()
            && self.qe_identity.is_none()
            && self.tcb_signing_chain.is_none()
            && self.pck_ca_chain.is_none()
            && self.root_ca_crl.is_none()
            && self.pck_crl.is_none()
    }

    /// Complete collateral, `None` if nothing DCAP was given, or an error naming what is missing.
    pub(crate) fn assemble(&self) -> Result<Option<DcapCollateral>, Error> {
        if self.is_empty() {
            return Ok(None);
        }
        let missing = |what: &str| {
            Error::endorsement(
                "Intel PCS collateral",
                format!(
                    "incomplete: {what} is missing (need TCB info, QE identity, TCB signing chain, PCK CA chain, PCK CRL, root CA CRL)"
                ),
            )
        };
        let (tcb_info, tcb_info_signature) =
            self.tcb_info.clone().ok_or_else(|| missing("TCB info"))?;
        let (qe_identity, qe_identity_signature) = self
            .qe_identity
            .clone()
            .ok_or_else(|| missing("QE identity"))?;
        let tcb_chain = self
            .tcb_signing_chain
            .clone()
            .ok_or_else(|| missing("TCB signing chain"))?;
        let collateral = QuoteCollateralV3 {
            pck_crl_issuer_chain: self
                .pck_ca_chain
                .clone()
                .ok_or_else(|| missing("PCK CA chain"))?,
            root_ca_crl: self
                .root_ca_crl
                .clone()
                .ok_or_else(|| missing("root CA CRL"))?,
            pck_crl: self.pck_crl.clone().ok_or_else(|| missing("PCK CRL"))?,
            tcb_info_issuer_chain: tcb_chain.clone(),
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain: tcb_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        };
        DcapCollateral::from_collateral("Intel PCS collateral", collateral).map(Some)
    }
}
