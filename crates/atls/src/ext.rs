//! The evidence a certificate carries, in the interoperable RA-TLS layout.
//!
//! The X.509 extension `tcg-dice-tagged-evidence` (OID 2.23.133.5.4.9) holds a CBOR tag whose number
//! names the evidence format, around a two-element array `[evidence, claims-buffer]`:
//!
//! ```text
//! tag(60000 Intel TEE quote | 1414352641 SEV-SNP report | 1414352642 teemesh simulated report)(
//!     [ bstr evidence, bstr claims-buffer ])
//! claims-buffer = CBOR map, every value a byte string:
//!     "pubkey-hash" => CBOR [hash-alg-id, bstr SHA-x(SubjectPublicKeyInfo DER)]   (required)
//!     "nonce"       => per-session value: a TLS exporter of this session          (optional)
//!     "issued-at"   => u64 big-endian seconds since the epoch                      (teemesh)
//!     "node-name"   => UTF-8 name the node gave itself                            (teemesh)
//! report_data of the evidence = SHA-256(claims-buffer) ‖ 32 zero bytes
//! ```
//!
//! Tag 60000 and the two standard claims follow the CCC Attestation SIG's interoperable RA-TLS
//! documents, so SGX/TDX certificates from Gramine or the Intel SGX SDK parse here and ours parse
//! there. SEV-SNP and the simulated TEE have no registered tag; teemesh uses two from the
//! first-come-first-served range, spelled `TMS\x01` and `TMS\x02`. Gramine's older layout (OID
//! 1.2.840.113741.1.13.1.6, a bare SGX quote whose report_data starts with SHA-256 of the public
//! key) is parsed too.
//!
//! Everything here reads untrusted bytes: sizes are bounded, nothing panics, and every refusal says
//! what was wrong (`fuzz/fuzz_targets/atls_extension.rs`).

use ciborium::Value;
use der::{Decode, Encode};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

use attest::{PlatformKind, ReportData, UnixTime};

/// `tcg-dice-tagged-evidence`, the interoperable RA-TLS evidence extension.
pub const OID_TAGGED_EVIDENCE: &str = "2.23.133.5.4.9";
/// The same OID as arcs, for certificate builders.
pub const OID_TAGGED_EVIDENCE_ARCS: &[u64] = &[2, 23, 133, 5, 4, 9];
/// Gramine's legacy RA-TLS extension: a bare SGX quote.
pub const OID_GRAMINE_LEGACY_QUOTE: &str = "1.2.840.113741.1.13.1.6";
/// The same OID as arcs.
pub const OID_GRAMINE_LEGACY_QUOTE_ARCS: &[u64] = &[1, 2, 840, 113_741, 1, 13, 1, 6];

/// CBOR tag for an Intel TEE quote (SGX or TDX ECDSA quote), registered with IANA.
pub const TAG_INTEL_TEE_QUOTE: u64 = 60_000;
/// CBOR tag teemesh uses for an AMD SEV-SNP attestation report (`TMS\x01`).
pub const TAG_SNP_REPORT: u64 = 0x544D_5301;
/// CBOR tag teemesh uses for its simulated report (`TMS\x02`).
pub const TAG_SIM_REPORT: u64 = 0x544D_5302;

/// Largest extension we read: a TDX quote with its certificate chain is about 8 KiB.
pub const MAX_EXTENSION_LEN: usize = 256 * 1024;
/// Largest claims buffer we read.
const MAX_CLAIMS_LEN: usize = 4096;

/// Why a certificate's evidence could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// The certificate is not DER X.509.
    #[error("certificate is not valid DER X.509: {0}")]
    Certificate(String),
    /// The extension is larger than [`MAX_EXTENSION_LEN`].
    #[error("evidence extension is {0} bytes, more than the {MAX_EXTENSION_LEN} allowed")]
    TooLarge(usize),
    /// The extension is not the CBOR we expect.
    #[error("evidence extension is malformed: {0}")]
    Malformed(String),
    /// The CBOR tag names a format we do not know.
    #[error("evidence extension has unknown CBOR tag {0}")]
    UnknownTag(u64),
    /// The claims buffer is not the CBOR map we expect.
    #[error("claims buffer is malformed: {0}")]
    Claims(String),
    /// The certificate carries the extension twice.
    #[error("certificate carries more than one evidence extension")]
    Duplicate,
}

/// The hash algorithms of a `hash-entry` (IANA named-information registry ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// sha-256, id 1.
    Sha256,
    /// sha-384, id 7.
    Sha384,
    /// sha-512, id 8.
    Sha512,
}

impl HashAlg {
    fn id(self) -> u64 {
        match self {
            Self::Sha256 => 1,
            Self::Sha384 => 7,
            Self::Sha512 => 8,
        }
    }

    fn from_id(id: u64) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            7 => Some(Self::Sha384),
            8 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The hash of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// The claims an attester binds into its evidence through report_data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundClaims {
    /// Hash algorithm and hash of the certificate's SubjectPublicKeyInfo (DER).
    pub pubkey_hash: (HashAlg, Vec<u8>),
    /// Per-session freshness value (a TLS exporter), absent in certificates.
    pub nonce: Option<Vec<u8>>,
    /// When the attester produced the evidence (teemesh claim).
    pub issued_at: Option<UnixTime>,
    /// The node's self-chosen name (teemesh claim; informative, not trusted for identity).
    pub node_name: Option<String>,
}

impl BoundClaims {
    /// Claims binding `spki_der` with SHA-256.
    pub fn for_key(spki_der: &[u8]) -> Self {
        Self {
            pubkey_hash: (HashAlg::Sha256, HashAlg::Sha256.digest(spki_der)),
            nonce: None,
            issued_at: None,
            node_name: None,
        }
    }

    /// True when the claims' `pubkey-hash` is the hash of `spki_der`.
    pub fn binds_key(&self, spki_der: &[u8]) -> bool {
        let (alg, hash) = &self.pubkey_hash;
        alg.digest(spki_der) == *hash
    }

    /// The claims buffer: a definite-length CBOR map with byte-string values.
    pub fn encode(&self) -> Vec<u8> {
        let (alg, hash) = &self.pubkey_hash;
        let hash_entry = cbor_bytes(&Value::Array(vec![
            Value::Integer(alg.id().into()),
            Value::Bytes(hash.clone()),
        ]));
        let mut map = vec![(Value::Text("pubkey-hash".into()), Value::Bytes(hash_entry))];
        if let Some(nonce) = &self.nonce {
            map.push((Value::Text("nonce".into()), Value::Bytes(nonce.clone())));
        }
        if let Some(at) = self.issued_at {
            map.push((
                Value::Text("issued-at".into()),
                Value::Bytes(at.as_secs().to_be_bytes().to_vec()),
            ));
        }
        if let Some(name) = &self.node_name {
            map.push((
                Value::Text("node-name".into()),
                Value::Bytes(name.as_bytes().to_vec()),
            ));
        }
        cbor_bytes(&Value::Map(map))
    }

    /// Parses a claims buffer. Unknown claims are ignored (other RA-TLS libraries may add some);
    /// a claim we know with a malformed value is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, ExtensionError> {
        if bytes.len() > MAX_CLAIMS_LEN {
            return Err(ExtensionError::Claims(format!(
                "{} bytes, more than the {MAX_CLAIMS_LEN} allowed",
                bytes.len()
            )));
        }
        let Value::Map(entries) = cbor_parse(bytes).map_err(ExtensionError::Claims)? else {
            return Err(ExtensionError::Claims("not a CBOR map".into()));
        };
        let mut pubkey_hash = None;
        let mut nonce = None;
        let mut issued_at = None;
        let mut node_name = None;
        for (key, value) in entries {
            let Value::Text(key) = key else {
                return Err(ExtensionError::Claims("a claim name is not text".into()));
            };
            let value = match value {
                Value::Bytes(b) => b,
                _ => {
                    return Err(ExtensionError::Claims(format!(
                        "claim {key:?} is not a byte string"
                    )));
                }
            };
            let slot_taken = match key.as_str() {
                "pubkey-hash" => pubkey_hash.replace(parse_hash_entry(&value)?).is_some(),
                "nonce" => nonce.replace(value).is_some(),
                "issued-at" => {
                    let secs: [u8; 8] = value
                        .as_slice()
                        .try_into()
                        .map_err(|_| ExtensionError::Claims("issued-at is not 8 bytes".into()))?;
                    issued_at
                        .replace(UnixTime(u64::from_be_bytes(secs)))
                        .is_some()
                }
                "node-name" => {
                    let name = String::from_utf8(value)
                        .map_err(|_| ExtensionError::Claims("node-name is not UTF-8".into()))?;
                    node_name.replace(name).is_some()
                }
                _ => false,
            };
            if slot_taken {
                return Err(ExtensionError::Claims(format!(
                    "claim {key:?} appears twice"
                )));
            }
        }
        let pubkey_hash = pubkey_hash.ok_or_else(|| {
            ExtensionError::Claims("the required pubkey-hash claim is missing".into())
        })?;
        Ok(Self {
            pubkey_hash,
            nonce,
            issued_at,
            node_name,
        })
    }

    /// The report_data that binds these claims: SHA-256 of the encoded claims buffer, then zeros.
    pub fn report_data(claims_buffer: &[u8]) -> ReportData {
        let mut rd = [0u8; 64];
        rd[..32].copy_from_slice(&Sha256::digest(claims_buffer));
        ReportData(rd)
    }
}

fn parse_hash_entry(bytes: &[u8]) -> Result<(HashAlg, Vec<u8>), ExtensionError> {
    let bad = |why: &str| ExtensionError::Claims(format!("pubkey-hash: {why}"));
    let Value::Array(items) = cbor_parse(bytes).map_err(|e| bad(&e))? else {
        return Err(bad("not a CBOR array"));
    };
    let [Value::Integer(id), Value::Bytes(hash)] = items.as_slice() else {
        return Err(bad("not [hash-alg-id, hash-value]"));
    };
    let id = u64::try_from(*id).map_err(|_| bad("negative hash-alg-id"))?;
    let alg = HashAlg::from_id(id).ok_or_else(|| bad(&format!("unsupported hash-alg-id {id}")))?;
    if hash.len() != alg.digest(b"").len() {
        return Err(bad("hash length does not fit the algorithm"));
    }
    Ok((alg, hash.clone()))
}

/// Evidence as carried in a certificate or a session frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedEvidence {
    /// The CBOR tag: which evidence format.
    pub tag: u64,
    /// The raw evidence (quote or report).
    pub evidence: Vec<u8>,
    /// The encoded claims buffer, exactly as hashed into report_data.
    pub claims_buffer: Vec<u8>,
}

impl TaggedEvidence {
    /// Wraps evidence of `platform` with its claims buffer.
    pub fn new(platform: PlatformKind, evidence: Vec<u8>, claims_buffer: Vec<u8>) -> Self {
        Self {
            tag: tag_for(platform),
            evidence,
            claims_buffer,
        }
    }

    /// The CBOR encoding: `tag([bstr evidence, bstr claims-buffer])`.
    pub fn encode(&self) -> Vec<u8> {
        cbor_bytes(&Value::Tag(
            self.tag,
            Box::new(Value::Array(vec![
                Value::Bytes(self.evidence.clone()),
                Value::Bytes(self.claims_buffer.clone()),
            ])),
        ))
    }

    /// Parses the CBOR encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ExtensionError> {
        if bytes.len() > MAX_EXTENSION_LEN {
            return Err(ExtensionError::TooLarge(bytes.len()));
        }
        let Value::Tag(tag, inner) = cbor_parse(bytes).map_err(ExtensionError::Malformed)? else {
            return Err(ExtensionError::Malformed("not a tagged CBOR item".into()));
        };
        if ![TAG_INTEL_TEE_QUOTE, TAG_SNP_REPORT, TAG_SIM_REPORT].contains(&tag) {
            return Err(ExtensionError::UnknownTag(tag));
        }
        let Value::Array(items) = *inner else {
            return Err(ExtensionError::Malformed(
                "tagged item is not an array".into(),
            ));
        };
        let [Value::Bytes(evidence), Value::Bytes(claims_buffer)] = <[Value; 2]>::try_from(items)
            .map_err(|v| {
            ExtensionError::Malformed(format!("array has {} elements, expected 2", v.len()))
        })?
        else {
            return Err(ExtensionError::Malformed(
                "expected [bstr evidence, bstr claims-buffer]".into(),
            ));
        };
        Ok(Self {
            tag,
            evidence,
            claims_buffer,
        })
    }

    /// The parsed claims buffer.
    pub fn claims(&self) -> Result<BoundClaims, ExtensionError> {
        BoundClaims::decode(&self.claims_buffer)
    }
}

/// The CBOR tag for a platform's evidence.
pub fn tag_for(platform: PlatformKind) -> u64 {
    match platform {
        PlatformKind::Sgx | PlatformKind::Tdx => TAG_INTEL_TEE_QUOTE,
        PlatformKind::Snp => TAG_SNP_REPORT,
        PlatformKind::Sim => TAG_SIM_REPORT,
    }
}

/// What a certificate offers as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateEvidence {
    /// The interoperable layout (teemesh, Gramine ≥ 1.7, Intel SGX SDK, rats-tls).
    Tagged(TaggedEvidence),
    /// Gramine's legacy layout: a bare SGX quote; report_data[..32] = SHA-256(SPKI DER).
    GramineLegacy {
        /// The SGX quote.
        quote: Vec<u8>,
    },
}

/// The parts of a peer certificate that attestation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// DER of the SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Validity window (seconds since the epoch).
    pub not_before: UnixTime,
    /// End of the validity window.
    pub not_after: UnixTime,
    /// The evidence, if the certificate carries any.
    pub evidence: Option<CertificateEvidence>,
}

/// Reads the key, the validity window and the evidence extension of a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, ExtensionError> {
    let cert =
        Certificate::from_der(der).map_err(|e| ExtensionError::Certificate(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let spki_der = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| ExtensionError::Certificate(e.to_string()))?;
    let secs = |t: &x509_cert::time::Time| UnixTime(t.to_unix_duration().as_secs());
    let mut evidence = None;
    for ext in tbs.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        let found = if oid == OID_TAGGED_EVIDENCE {
            Some(CertificateEvidence::Tagged(TaggedEvidence::decode(value)?))
        } else if oid == OID_GRAMINE_LEGACY_QUOTE {
            if value.len() > MAX_EXTENSION_LEN {
                return Err(ExtensionError::TooLarge(value.len()));
            }
            Some(CertificateEvidence::GramineLegacy {
                quote: value.to_vec(),
            })
        } else {
            None
        };
        if let Some(found) = found
            && evidence.replace(found).is_some()
        {
            return Err(ExtensionError::Duplicate);
        }
    }
    Ok(ParsedCertificate {
        spki_der,
        not_before: secs(&tbs.validity.not_before),
        not_after: secs(&tbs.validity.not_after),
        evidence,
    })
}

fn cbor_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a `Value` into a Vec cannot fail: no I/O and every Value is serialisable.
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Parses exactly one CBOR item, refusing trailing bytes.
fn cbor_parse(bytes: &[u8]) -> Result<Value, String> {
    let mut rest = bytes;
    let value: Value =
        ciborium::de::from_reader_with_recursion_limit(&mut rest, 16).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_bind() {
        let claims = BoundClaims {
            nonce: Some(vec![7; 32]),
            issued_at: Some(UnixTime(1_750_377_600)),
            node_name: Some("node-a".into()),
            ..BoundClaims::for_key(b"spki")
        };
        let buf = claims.encode();
        assert_eq!(BoundClaims::decode(&buf).unwrap(), claims);
        assert!(claims.binds_key(b"spki"));
        assert!(!claims.binds_key(b"other"));
        let rd = BoundClaims::report_data(&buf);
        assert_eq!(rd.0[..32], Sha256::digest(&buf)[..]);
        assert_eq!(rd.0[32..], [0u8; 32]);
    }

    #[test]
    fn tagged_evidence_round_trip() {
        let t = TaggedEvidence::new(PlatformKind::Tdx, vec![1, 2, 3], vec![4, 5]);
        let enc = t.encode();
        // tag 60000 is encoded as 0xd9 0xea 0x60.
        assert_eq!(&enc[..3], &[0xd9, 0xea, 0x60]);
        assert_eq!(TaggedEvidence::decode(&enc).unwrap(), t);
    }

    #[test]
    fn malformed_inputs_are_refused_with_reasons() {
        let good = TaggedEvidence::new(PlatformKind::Sim, vec![1], vec![2]).encode();
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            TaggedEvidence::decode(&trailing),
            Err(ExtensionError::Malformed(m)) if m.contains("trailing")
        ));
        let unknown = cbor_bytes(&Value::Tag(
            99,
            Box::new(Value::Array(vec![
                Value::Bytes(vec![]),
                Value::Bytes(vec![]),
            ])),
        ));
        assert_eq!(
            TaggedEvidence::decode(&unknown),
            Err(ExtensionError::UnknownTag(99))
        );
        assert!(TaggedEvidence::decode(&[]).is_err());
        assert!(TaggedEvidence::decode(&good[..good.len() - 1]).is_err());
        // a claims map without pubkey-hash
        let no_hash = cbor_bytes(&Value::Map(vec![(
            Value::Text("nonce".into()),
            Value::Bytes(vec![1]),
        )]));
        assert!(matches!(
            BoundClaims::decode(&no_hash),
            Err(ExtensionError::Claims(m)) if m.contains("pubkey-hash")
        ));
        // a hash of the wrong length for its algorithm
        let short = BoundClaims {
            pubkey_hash: (HashAlg::Sha384, vec![0; 32]),
            ..BoundClaims::for_key(b"k")
        };
        assert!(BoundClaims::decode(&short.encode()).is_err());
        // deep nesting is refused, not recursed into
        let mut deep = vec![0x81u8; 10_000];
        deep.push(0x00);
        assert!(TaggedEvidence::decode(&deep).is_err());
    }
}
