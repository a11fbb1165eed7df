//! Endorsements: what vendors sign about platforms, needed to appraise evidence. Files are
//! recognised by content, not name, so one `--endorsements DIR` can hold everything:
//! - Intel collateral in dcap-qvl's `QuoteCollateralV3` JSON layout, or raw Intel PCS responses
//!   (TCB info and QE identity JSON bodies, issuer chains as PEM, PCK and root CA CRLs as DER/PEM);
//! - AMD VCEK/VLEK certificates (DER or PEM) and ASK/ASVK/ARK bundles for Milan, Genoa and Turin.

pub mod dcap;
pub mod snp;

use std::path::Path;

use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};

use crate::error::Error;
use crate::values::Digest256;

pub use dcap::{DcapCollateral, DcapParts};
pub use snp::{AmdCert, AmdRole};

/// Largest endorsement file we read.
const MAX_ENDORSEMENT_FILE: u64 = 4 * 1024 * 1024;

/// A set of endorsements, loaded from files, bytes or both.
#[derive(Debug, Clone, Default)]
pub struct Endorsements {
    dcap: Option<DcapCollateral>,
    dcap_parts: DcapParts,
    amd: Vec<AmdCert>,
    sources: Vec<String>,
    hasher_input: Vec<Digest256>,
}

impl Endorsements {
    /// No endorsements (enough for simulated evidence).
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every path: a file is classified by content; a directory contributes each regular
    /// file in it (sorted by name, not recursive).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, Error> {
        let mut out = Self::new();
        for path in paths {
            out.add_path(path.as_ref())?;
        }
        Ok(out)
    }

    /// Adds one file or directory.
    pub fn add_path(&mut self, path: &Path) -> Result<(), Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for entry in entries {
                let bytes = read_bounded(&entry)?;
                // A directory may hold the evidence next to its collateral: skip it.
                if crate::evidence::Evidence::from_bytes(&bytes).is_ok() {
                    tracing::debug!(path = %entry.display(), "skipping evidence file in endorsements directory");
                    continue;
                }
                self.add_bytes(&entry.display().to_string(), &bytes)?;
            }
            return Ok(());
        }
        let bytes = read_bounded(path)?;
        self.add_bytes(&path.display().to_string(), &bytes)
    }

    /// Adds one endorsement given as bytes; `name` is used in error messages.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let trimmed = trim_ascii(bytes);
        if trimmed.first() == Some(&b'{') {
            self.add_json(name, trimmed)?;
        } else if trimmed.starts_with(b"-----BEGIN")
            || (contains(trimmed, b"-----BEGIN") && std::str::from_utf8(trimmed).is_ok())
        {
            self.add_pem(name, trimmed)?;
        } else if bytes.first() == Some(&0x30) {
            // DER is binary: its last byte may well be 0x09, 0x0a or 0x20 (the Milan ARK ends
            // in 0x09), so it is never trimmed.
            self.add_der(name, bytes)?;
        } else {
            return Err(Error::endorsement(
                name,
                "not JSON collateral, a PEM bundle, or a DER certificate/CRL",
            ));
        }
        self.sources.push(name.to_owned());
        self.hasher_input.push(Digest256::of(bytes));
        Ok(())
    }

    fn add_json(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::endorsement(name, format!("invalid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| Error::endorsement(name, "JSON is not an object"))?;
        if object.contains_key("tcb_info") && object.contains_key("qe_identity") {
            let collateral = DcapCollateral::from_json(name, bytes)?;
            self.dcap = Some(collateral);
            Ok(())
        } else if object.contains_key("tcbInfo") || object.contains_key("enclaveIdentity") {
            self.dcap_parts.add_pcs_json(name, bytes)
        } else {
            Err(Error::endorsement(
                name,
                "JSON is neither QuoteCollateralV3 (tcb_info, qe_identity, ...) nor an Intel PCS \
                 response (tcbInfo or enclaveIdentity)",
            ))
        }
    }

    fn add_pem(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::endorsement(name, "PEM text is not UTF-8"))?;
        let mut certs = Vec::new();
        for block in pem_blocks(text) {
            let (label, der) = der::pem::decode_vec(block.as_bytes())
                .map_err(|e| Error::endorsement(name, format!("bad PEM block: {e}")))?;
            match label {
                "CERTIFICATE" => certs.push(der),
                "X509 CRL" => self.dcap_parts.add_crl(name, &der)?,
                other => {
                    return Err(Error::endorsement(
                        name,
                        format!("unexpected PEM block {other}"),
                    ));
                }
            }
        }
        if certs.is_empty() {
            return Ok(());
        }
        self.add_certs(name, &certs, Some(text))
    }

    fn add_der(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if x509_cert::Certificate::from_der(bytes).is_ok() {
            return self.add_certs(name, &[bytes.to_vec()], None);
        }
        if x509_cert::crl::CertificateList::from_der(bytes).is_ok() {
            return self.dcap_parts.add_crl(name, bytes);
        }
        Err(Error::endorsement(
            name,
            "DER is neither an X.509 certificate nor a CRL",
        ))
    }

    /// Sorts certificates into AMD roles or Intel issuer chains by their subject.
    fn add_certs(
        &mut self,
        name: &str,
        ders: &[Vec<u8>],
        pem_text: Option<&str>,
    ) -> Result<(), Error> {
        let mut intel_chain: Vec<&[u8]> = Vec::new();
        for der in ders {
            let cert = x509_cert::Certificate::from_der(der)
                .map_err(|e| Error::endorsement(name, format!("bad certificate: {e}")))?;
            let cn = common_name(&cert.tbs_certificate.subject).unwrap_or_default();
            if let Some(role) = AmdRole::from_common_name(&cn) {
                self.amd
                    .push(AmdCert::new(name, role, &cn, der.clone(), cert)?);
            } else if cn.starts_with("Intel SGX") {
                intel_chain.push(der);
            } else {
                return Err(Error::endorsement(
                    name,
                    format!(
                        "certificate {cn:?} is neither an AMD (ARK/ASK/ASVK/VCEK/VLEK) nor an Intel SGX certificate"
                    ),
                ));
            }
        }
        if !intel_chain.is_empty() {
            let pem = match pem_text {
                Some(text) => text.to_owned(),
                None => intel_chain.iter().map(|d| to_pem(d)).collect(),
            };
            self.dcap_parts.add_issuer_chain(name, &intel_chain, pem)?;
        }
        Ok(())
    }

    /// Intel collateral, either given whole or assembled from raw PCS responses.
    pub fn dcap_collateral(&self) -> Result<Option<DcapCollateral>, Error> {
        if let Some(c) = &self.dcap {
            return Ok(Some(c.clone()));
        }
        self.dcap_parts.assemble()
    }

    /// AMD certificates (keys and CAs) that were supplied.
    pub fn amd_certs(&self) -> &[AmdCert] {
        &self.amd
    }

    /// Names of everything loaded, in order.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// A digest identifying this set of endorsements (for caches).
    pub fn digest(&self) -> Digest256 {
        let mut hasher = Sha256::new();
        for d in &self.hasher_input {
            hasher.update(d.as_bytes());
        }
        Digest256(hasher.finalize().into())
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_ENDORSEMENT_FILE {
        return Err(Error::endorsement(
            path.display().to_string(),
            format!("{} bytes is larger than any endorsement", meta.len()),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits PEM text into its `-----BEGIN ... -----END ...-----` blocks.
pub(crate) fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}

pub(crate) fn to_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// The subject's common name, if any.
pub(crate) fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    const CN: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == CN {
                let value = atv.value.to_der().ok()?;
                let any = der::asn1::Any::from_der(&value).ok()?;
                return std::str::from_utf8(any.value()).ok().map(str::to_owned);
            }
        }
    }
    None
}

/// Converts an X.509 time to Unix seconds.
pub(crate) fn x509_time(t: &x509_cert::time::Time) -> crate::time::UnixTime {
    crate::time::UnixTime(t.to_unix_duration().as_secs())
}
