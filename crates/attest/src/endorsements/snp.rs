//! AMD SEV-SNP endorsements: VCEK/VLEK certificates and the ASK/ASVK/ARK chain per product line.
//! AMD's ARKs (and the VCEK-issuing ASKs) for Milan, Genoa and Turin are built in; a supplied ARK
//! is only used if it is byte-identical to the built-in one.

use x509_cert::der::{Decode, DecodePem, Encode};

use crate::error::Error;
use crate::time::UnixTime;

/// The role of an AMD certificate, from its subject common name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdRole {
    /// AMD Root Key (`ARK-<product>`), self-signed.
    Ark,
    /// AMD SEV Key (`SEV-<product>`): signs VCEKs.
    Ask,
    /// AMD SEV VLEK Key (`SEV-VLEK-<product>`): signs VLEKs.
    Asvk,
    /// Versioned Chip Endorsement Key (`SEV-VCEK`).
    Vcek,
    /// Versioned Loaded Endorsement Key (`SEV-VLEK`).
    Vlek,
}

impl AmdRole {
    /// Classifies a subject CN; `None` if it is not an AMD SEV certificate.
    pub fn from_common_name(cn: &str) -> Option<Self> {
        match cn {
            "SEV-VCEK" => Some(Self::Vcek),
            "SEV-VLEK" => Some(Self::Vlek),
            _ if cn.starts_with("ARK-") => Some(Self::Ark),
            _ if cn.starts_with("SEV-VLEK-") => Some(Self::Asvk),
            _ if cn.starts_with("SEV-") => Some(Self::Ask),
            _ => None,
        }
    }
}

/// Product lines with built-in roots.
pub const PRODUCTS: [&str; 3] = ["Milan", "Genoa", "Turin"];

/// One AMD certificate with its parsed forms.
#[derive(Debug, Clone)]
pub struct AmdCert {
    /// Where it came from.
    pub source: String,
    /// Its role.
    pub role: AmdRole,
    /// Product line from the CN (`Milan`) or, for VCEK/VLEK, from the productName extension.
    pub product: Option<String>,
    /// Subject CN.
    pub common_name: String,
    /// DER bytes.
    pub der: Vec<u8>,
    /// Parsed by the `sev` crate (used for signature checks).
    pub sev: sev::certs::snp::Certificate,
    /// Parsed X.509.
    pub x509: x509_cert::Certificate,
}

/// AMD's VCEK extension OIDs (VCEK spec, table 8).
mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub(super) const PRODUCT_NAME: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.2");
    pub(super) const BL_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    pub(super) const TEE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    pub(super) const SNP_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    pub(super) const UCODE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    pub(super) const FMC_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    pub(super) const HWID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.4");
}

/// The TCB and chip id a VCEK/VLEK was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VekTcb {
    /// Boot loader SPL.
    pub bootloader: Option<u8>,
    /// TEE SPL.
    pub tee: Option<u8>,
    /// SNP SPL.
    pub snp: Option<u8>,
    /// Microcode SPL.
    pub microcode: Option<u8>,
    /// FMC SPL (Turin).
    pub fmc: Option<u8>,
    /// Hardware id (VCEK only).
    pub hwid: Option<Vec<u8>>,
}

impl AmdCert {
    pub(crate) fn new(
        source: &str,
        role: AmdRole,
        cn: &str,
        der: Vec<u8>,
        x509: x509_cert::Certificate,
    ) -> Result<Self, Error> {
        let sev = sev::certs::snp::Certificate::from_der(&der)
            .map_err(|e| Error::endorsement(source, format!("{cn}: {e}")))?;
        let product = match role {
            AmdRole::Ark => cn.strip_prefix("ARK-").map(str::to_owned),
            AmdRole::Asvk => cn.strip_prefix("SEV-VLEK-").map(str::to_owned),
            AmdRole::Ask => cn.strip_prefix("SEV-").map(str::to_owned),
            AmdRole::Vcek | AmdRole::Vlek => product_name_extension(&x509),
        };
        Ok(Self {
            source: source.to_owned(),
            role,
            product,
            common_name: cn.to_owned(),
            der,
            sev,
            x509,
        })
    }

    /// Parses a built-in PEM certificate.
    fn builtin(pem: &[u8], role: AmdRole) -> Result<Self, Error> {
        let name = "built-in AMD certificate";
        let x509 = x509_cert::Certificate::from_pem(pem)
            .map_err(|e| Error::endorsement(name, e.to_string()))?;
        let der = x509
            .to_der()
            .map_err(|e| Error::endorsement(name, e.to_string()))?;
        let cn = super::common_name(&x509.tbs_certificate.subject).unwrap_or_default();
        Self::new(name, role, &cn, der, x509)
    }

    /// notBefore..notAfter.
    pub fn validity(&self) -> (UnixTime, UnixTime) {
        let v = &self.x509.tbs_certificate.validity;
        (
            super::x509_time(&v.not_before),
            super::x509_time(&v.not_after),
        )
    }

    /// The TCB extensions of a VCEK/VLEK.
    pub fn vek_tcb(&self) -> VekTcb {
        let mut tcb = VekTcb::default();
        for ext in self.x509.tbs_certificate.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            let spl = || u8::from_der(value).ok();
            match ext.extn_id {
                oid::BL_SPL => tcb.bootloader = spl(),
                oid::TEE_SPL => tcb.tee = spl(),
                oid::SNP_SPL => tcb.snp = spl(),
                oid::UCODE_SPL => tcb.microcode = spl(),
                oid::FMC_SPL => tcb.fmc = spl(),
                oid::HWID => {
                    // Raw 64 bytes in AMD's certificates; tolerate an OCTET STRING wrapper.
                    let raw = der::asn1::OctetString::from_der(value)
                        .map(|o| o.as_bytes().to_vec())
                        .unwrap_or_else(|_| value.to_vec());
                    tcb.hwid = Some(raw);
                }
                _ => {}
            }
        }
        tcb
    }
}

fn product_name_extension(cert: &x509_cert::Certificate) -> Option<String> {
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid::PRODUCT_NAME)?;
    let any = der::asn1::Any::from_der(ext.extn_value.as_bytes()).ok()?;
    let text = std::str::from_utf8(any.value()).ok()?;
    // "Milan-B0" -> "Milan"
    Some(text.split('-').next().unwrap_or(text).to_owned())
}

/// AMD's built-in ARK and ASK for a product line.
pub fn builtin_ark_ask(product: &str) -> Result<(AmdCert, AmdCert), Error> {
    use sev::certs::snp::builtin::{genoa, milan, turin};
    let (ark, ask) = match product {
        "Milan" => (milan::ARK, milan::ASK),
        "Genoa" => (genoa::ARK, genoa::ASK),
        "Turin" => (turin::ARK, turin::ASK),
        other => {
            return Err(Error::endorsement(
                "built-in AMD roots",
                format!("no built-in root for product {other:?} (known: Milan, Genoa, Turin)"),
            ));
        }
    };
    Ok((
        AmdCert::builtin(ark, AmdRole::Ark)?,
        AmdCert::builtin(ask, AmdRole::Ask)?,
    ))
}
