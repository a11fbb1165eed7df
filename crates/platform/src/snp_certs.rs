//! The SEV-SNP certificate table a host hands its guests with the extended report (configfs-tsm
//! `auxblob`; GHCB specification 2.03, section 4.1.8.1): endorsements the verifier needs, supplied
//! by the untrusted host, so it is parsed defensively — every offset bounds-checked, no panics.
//!
//! Layout: entries of `guid [16] | offset u32 LE | length u32 LE`, ended by an entry whose GUID is
//! all zero, then the certificates; offsets count from the start of the table. GUIDs are stored
//! in RFC 4122 byte order (the order their text form is written in), as AMD's and virtee's tools
//! write them.
//!
//! The GHCB specification assigns no GUID to the ASVK (the key that signs a VLEK): a host with a
//! VLEK supplies VLEK, and the ASVK comes from AMD's KDS or a bundle such as
//! `milan_ask_ark_asvk.pem`. Entries with GUIDs not listed here are kept as
//! [`SnpCertRole::Other`], not dropped.

use std::fmt;

use crate::error::PlatformError;

/// Length of one table entry.
pub const ENTRY_LEN: usize = 24;
/// Most entries accepted in one table (real tables have 3 or 4).
pub const MAX_ENTRIES: usize = 64;

const VCEK_GUID: [u8; 16] = guid("63da758d-e664-4564-adc5-f4b93be8accd");
const VLEK_GUID: [u8; 16] = guid("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
const ASK_GUID: [u8; 16] = guid("4ab7b379-bbac-4fe4-a02f-05aef327c782");
const ARK_GUID: [u8; 16] = guid("c0b406a4-a803-4952-9743-3fb6014cd0ae");
const CRL_GUID: [u8; 16] = guid("92f81bc3-5811-4d3d-97ff-d19f88dc67ea");
const TERMINATOR_GUID: [u8; 16] = [0; 16];

/// What a certificate-table entry holds, from its GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnpCertRole {
    /// Versioned Chip Endorsement Key certificate (signs the report; per chip and TCB).
    Vcek,
    /// Versioned Loaded Endorsement Key certificate (signs the report; per cloud provider).
    Vlek,
    /// AMD SEV Signing Key certificate (signs the VCEK).
    Ask,
    /// AMD Root Key certificate.
    Ark,
    /// Certificate revocation list.
    Crl,
    /// An entry with another GUID (vendor extensions); its bytes are passed on unchanged.
    Other([u8; 16]),
}

impl SnpCertRole {
    /// The role an entry's GUID (RFC 4122 byte order) names.
    pub fn from_guid(guid: [u8; 16]) -> Self {
        match guid {
            VCEK_GUID => Self::Vcek,
            VLEK_GUID => Self::Vlek,
            ASK_GUID => Self::Ask,
            ARK_GUID => Self::Ark,
            CRL_GUID => Self::Crl,
            other => Self::Other(other),
        }
    }

    /// The GUID of this role, RFC 4122 byte order.
    pub fn guid(self) -> [u8; 16] {
        match self {
            Self::Vcek => VCEK_GUID,
            Self::Vlek => VLEK_GUID,
            Self::Ask => ASK_GUID,
            Self::Ark => ARK_GUID,
            Self::Crl => CRL_GUID,
            Self::Other(guid) => guid,
        }
    }

    /// Short lower-case name, usable as a file stem: `vcek`, `vlek`, `ask`, `ark`, `crl`, or the
    /// GUID's text for other entries.
    pub fn file_stem(self) -> String {
        match self {
            Self::Vcek => "vcek".into(),
            Self::Vlek => "vlek".into(),
            Self::Ask => "ask".into(),
            Self::Ark => "ark".into(),
            Self::Crl => "crl".into(),
            Self::Other(guid) => format_guid(&guid),
        }
    }

    /// True for the entries that must hold a DER X.509 certificate or CRL.
    pub fn is_der(self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

impl fmt::Display for SnpCertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vcek => f.write_str("VCEK"),
            Self::Vlek => f.write_str("VLEK"),
            Self::Ask => f.write_str("ASK"),
            Self::Ark => f.write_str("ARK"),
            Self::Crl => f.write_str("CRL"),
            Self::Other(guid) => write!(f, "entry {}", format_guid(guid)),
        }
    }
}

/// One entry of the certificate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpCertificate {
    /// What the entry holds.
    pub role: SnpCertRole,
    /// Its bytes: DER for certificates and CRLs.
    pub der: Vec<u8>,
}

impl SnpCertificate {
    /// The entry as PEM (`CERTIFICATE`, or `X509 CRL` for the CRL), 64-column lines; `None` for
    /// entries that are not DER ([`SnpCertRole::Other`]).
    pub fn to_pem(&self) -> Option<String> {
        use base64::Engine as _;
        let label = match self.role {
            SnpCertRole::Other(_) => return None,
            SnpCertRole::Crl => "X509 CRL",
            _ => "CERTIFICATE",
        };
        let body = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut pem = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        Some(pem)
    }
}

/// Parses a certificate table. An empty table (only the terminator) gives no certificates.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<SnpCertificate>, PlatformError> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let header_end = loop {
        let Some(entry) = table.get(pos..pos + ENTRY_LEN) else {
            return Err(cert_table(format!(
                "no terminating all-zero entry within its {} bytes",
                table.len()
            )));
        };
        let (guid, offset, length) = split_entry(entry);
        pos += ENTRY_LEN;
        if guid == TERMINATOR_GUID {
            break pos;
        }
        if entries.len() == MAX_ENTRIES {
            return Err(cert_table(format!("more than {MAX_ENTRIES} entries")));
        }
        entries.push((SnpCertRole::from_guid(guid), offset, length));
    };

    let mut certificates = Vec::with_capacity(entries.len());
    for (index, (role, offset, length)) in entries.into_iter().enumerate() {
        let start = offset as usize;
        let len = length as usize;
        if len == 0 {
            return Err(cert_table(format!("entry {index} ({role}) is empty")));
        }
        if start < header_end {
            return Err(cert_table(format!(
                "entry {index} ({role}) starts at {start}, inside the table's entries (which end \
                 at {header_end})"
            )));
        }
        let der = start
            .checked_add(len)
            .and_then(|end| table.get(start..end))
            .ok_or_else(|| {
                cert_table(format!(
                    "entry {index} ({role}) spans {len} bytes from offset {start}, past the end of \
                     the {}-byte table",
                    table.len()
                ))
            })?;
        if role.is_der() && der.first() != Some(&0x30) {
            return Err(cert_table(format!(
                "entry {index} ({role}) is not DER (starts with {:#04x}, expected a SEQUENCE 0x30)",
                der[0]
            )));
        }
        certificates.push(SnpCertificate {
            role,
            der: der.to_vec(),
        });
    }
    Ok(certificates)
}

/// Builds a certificate table (what a host supplies; used by tests and tools that stand in for a
/// host).
pub fn encode_cert_table(certificates: &[SnpCertificate]) -> Result<Vec<u8>, PlatformError> {
    let too_large = || cert_table("larger than 4 GiB".into());
    let header_len = ENTRY_LEN * (certificates.len() + 1);
    let mut header = Vec::with_capacity(header_len);
    let mut body = Vec::new();
    for certificate in certificates {
        let offset = u32::try_from(header_len + body.len()).map_err(|_| too_large())?;
        let length = u32::try_from(certificate.der.len()).map_err(|_| too_large())?;
        header.extend_from_slice(&certificate.role.guid());
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&length.to_le_bytes());
        body.extend_from_slice(&certificate.der);
    }
    header.extend_from_slice(&[0; ENTRY_LEN]);
    header.extend_from_slice(&body);
    Ok(header)
}

/// A GUID in its usual text form (`8-4-4-4-12` lower-case hex, RFC 4122 byte order).
pub fn format_guid(guid: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (index, byte) in guid.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn split_entry(entry: &[u8]) -> ([u8; 16], u32, u32) {
    let mut guid = [0u8; 16];
    let mut offset = [0u8; 4];
    let mut length = [0u8; 4];
    guid.copy_from_slice(&entry[..16]);
    offset.copy_from_slice(&entry[16..20]);
    length.copy_from_slice(&entry[20..24]);
    (guid, u32::from_le_bytes(offset), u32::from_le_bytes(length))
}

fn cert_table(reason: String) -> PlatformError {
    PlatformError::CertTable { reason }
}

/// Parses a GUID's text form at compile time, so the table's keys are written the way the
/// specification writes them.
const fn guid(text: &str) -> [u8; 16] {
    let text = text.as_bytes();
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        let value = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'-' => continue,
            _ => panic!("GUID text must be lower-case hex and dashes"),
        };
        out[nibbles / 2] = (out[nibbles / 2] << 4) | value;
        nibbles += 1;
    }
    assert!(nibbles == 32, "GUID text must have 32 hex digits");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(role: SnpCertRole, fill: u8, len: usize) -> SnpCertificate {
        let mut der = vec![fill; len];
        der[0] = 0x30;
        SnpCertificate { role, der }
    }

    fn sample() -> Vec<SnpCertificate> {
        vec![
            cert(SnpCertRole::Vcek, 1, 40),
            cert(SnpCertRole::Ask, 2, 30),
            cert(SnpCertRole::Ark, 3, 20),
        ]
    }

    fn reason(table: &[u8]) -> String {
        match parse_cert_table(table) {
            Err(PlatformError::CertTable { reason }) => reason,
            other => panic!("expected a cert table error, got {other:?}"),
        }
    }

    #[test]
    fn guids_are_pinned_as_bytes_and_text() {
        assert_eq!(
            VCEK_GUID,
            [
                0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
                0xac, 0xcd
            ]
        );
        for (role, text) in [
            (SnpCertRole::Vcek, "63da758d-e664-4564-adc5-f4b93be8accd"),
            (SnpCertRole::Vlek, "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
            (SnpCertRole::Ask, "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
            (SnpCertRole::Ark, "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
            (SnpCertRole::Crl, "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"),
        ] {
            assert_eq!(format_guid(&role.guid()), text);
            assert_eq!(SnpCertRole::from_guid(role.guid()), role);
        }
    }

    #[test]
    fn round_trip_keeps_order_roles_and_bytes() {
        let mut certificates = sample();
        certificates.push(SnpCertificate {
            role: SnpCertRole::Other([9; 16]),
            der: b"vendor extension, not DER".to_vec(),
        });
        let table = encode_cert_table(&certificates).unwrap();
        assert_eq!(parse_cert_table(&table).unwrap(), certificates);
    }

    #[test]
    fn pem_wraps_der_and_skips_other_entries() {
        let certificate = cert(SnpCertRole::Ark, 0xab, 100);
        let pem = certificate.to_pem().unwrap();
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE-----\nMKur"),
            "{pem}"
        );
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"), "{pem}");
        assert!(pem.lines().all(|line| line.len() <= 64));
        let crl = SnpCertificate {
            role: SnpCertRole::Crl,
            ..certificate
        };
        assert!(
            crl.to_pem()
                .unwrap()
                .starts_with("-----BEGIN X509 CRL-----\n")
        );
        let other = SnpCertificate {
            role: SnpCertRole::Other([1; 16]),
            der: vec![0x30, 0],
        };
        assert_eq!(other.to_pem(), None);
    }

    #[test]
    fn only_a_terminator_is_an_empty_table() {
        assert_eq!(parse_cert_table(&[0; ENTRY_LEN]).unwrap(), vec![]);
        // Padding after the terminator (hosts hand out page-sized buffers) is ignored.
        assert_eq!(parse_cert_table(&[0; 4096]).unwrap(), vec![]);
    }

    #[test]
    fn missing_terminator_is_refused() {
        assert!(reason(&[]).contains("no terminating"));
        let table = encode_cert_table(&sample()).unwrap();
        assert!(reason(&table[..ENTRY_LEN * 3 + 10]).contains("no terminating"));
    }

    #[test]
    fn out_of_bounds_entries_are_refused() {
        let table = encode_cert_table(&sample()).unwrap();
        // Truncating the body: the last certificate runs past the end.
        let cut = &table[..table.len() - 1];
        assert!(reason(cut).contains("past the end"), "{}", reason(cut));

        // Offset + length overflowing.
        let mut overflow = table.clone();
        overflow[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        overflow[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(reason(&overflow).contains("past the end"));

        // Pointing back into the entries.
        let mut inside = table.clone();
        inside[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert!(reason(&inside).contains("inside the table"));

        // Zero length.
        let mut empty = table;
        empty[20..24].copy_from_slice(&0u32.to_le_bytes());
        assert!(reason(&empty).contains("is empty"));
    }

    #[test]
    fn known_roles_must_be_der() {
        let mut certificates = sample();
        certificates[1].der[0] = 0x04;
        let table = encode_cert_table(&certificates).unwrap();
        let why = reason(&table);
        assert!(why.contains("entry 1 (ASK) is not DER"), "{why}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let many: Vec<_> = (0..=MAX_ENTRIES)
            .map(|i| cert(SnpCertRole::Other([i as u8 + 1; 16]), 0, 2))
            .collect();
        let table = encode_cert_table(&many).unwrap();
        assert!(reason(&table).contains("more than"));
    }

    /// Every prefix and every single-byte change of a valid table is parsed or refused, never a
    /// panic (the cheap stand-in for a fuzz target on this small parser).
    #[test]
    fn truncations_and_flips_never_panic() {
        let table = encode_cert_table(&sample()).unwrap();
        for end in 0..table.len() {
            let _ = parse_cert_table(&table[..end]);
        }
        for at in 0..table.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut flipped = table.clone();
                flipped[at] ^= mask;
                let _ = parse_cert_table(&flipped);
            }
        }
    }
}
