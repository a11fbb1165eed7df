//! Intel DCAP quotes: SGX v3 and TDX v4/v5 (TD 1.0 and TD 1.5 bodies). We parse the header and the
//! report body ourselves for format detection and typed claims, and the signature data's framing
//! so that no unsigned byte can ride along; signatures and collateral are checked by the appraisal
//! (which uses dcap-qvl).

use crate::claims::{PlatformClaims, SgxClaims, TdxClaims};
use crate::error::Error;
use crate::values::{Measurement256, Measurement384, ReportData};

const HEADER_LEN: usize = 48;
const SGX_BODY_LEN: usize = 384;
const TD10_BODY_LEN: usize = 584;
const TD15_BODY_LEN: usize = 648;
/// ECDSA signature (64) and attestation key (64) at the start of the signature data.
const SIGNATURE_AND_KEY_LEN: usize = 64 + 64;
/// QE report (384) and its signature (64) at the start of the QE report certification data.
const QE_REPORT_AND_SIGNATURE_LEN: usize = 384 + 64;
/// Certification data type 5: the PCK certificate chain, PEM.
const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Certification data type 6: the QE report certification data (quote v4 and v5).
const CERT_TYPE_QE_REPORT: u16 = 6;
/// The first and last lines of a PEM certificate.
const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";
/// Certificates in the PCK chain of certification data type 5: PCK, PCK CA, root CA.
const PCK_CHAIN_CERTIFICATES: usize = 3;
/// Attestation key type 2: ECDSA-256 with P-256.
const ATT_KEY_ECDSA_P256: u16 = 2;
/// TEE type in the quote header.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Intel's QE vendor id.
const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07,
];
/// SGX ATTRIBUTES.FLAGS bit 1.
const SGX_FLAG_DEBUG: u8 = 0x02;
/// TDX TD_ATTRIBUTES bit 0.
const TD_ATTR_DEBUG: u8 = 0x01;

const FORMAT: &str = "DCAP quote";

/// The report body of a quote.
// One value per quote: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteBody {
    /// SGX enclave report.
    Sgx(SgxClaims),
    /// TDX TD report (1.0 or 1.5).
    Tdx(TdxClaims),
}

/// A parsed (not yet verified) DCAP quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcapQuote {
    /// Quote format version: 3 (SGX), 4 or 5 (TDX).
    pub version: u16,
    /// The report body.
    pub body: QuoteBody,
    /// The 64 bytes of user data in the report.
    pub report_data: ReportData,
    /// Debug attribute set.
    pub debug: bool,
    /// Length of the quote proper: header, body and signature data. Zero padding after it (a
    /// quote buffer's unused tail, as in Intel's TDX samples) is not part of the quote.
    pub len: usize,
}

/// True when `bytes` start like a DCAP quote header (used for format detection).
pub(crate) fn looks_like_quote(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER_LEN {
        return false;
    }
    let version = u16::from_le_bytes([bytes[0], bytes[1]]);
    let key_type = u16::from_le_bytes([bytes[2], bytes[3]]);
    let tee = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    matches!(version, 3..=5)
        && key_type == ATT_KEY_ECDSA_P256
        && matches!(tee, TEE_TYPE_SGX | TEE_TYPE_TDX)
}

fn take<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], Error> {
    bytes
        .get(offset..offset + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| Error::malformed(FORMAT, format!("truncated at offset {offset}")))
}

fn m384(body: &[u8], offset: usize) -> Result<Measurement384, Error> {
    take::<48>(body, offset).map(Measurement384)
}

impl DcapQuote {
    /// Parses a quote; refuses anything but SGX v3 and TDX v4/v5 with ECDSA-P256 keys from Intel's QE.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::malformed(
                FORMAT,
                format!("{} bytes is shorter than the 48-byte header", bytes.len()),
            ));
        }
        let version = u16::from_le_bytes(take::<2>(bytes, 0)?);
        let key_type = u16::from_le_bytes(take::<2>(bytes, 2)?);
        let tee = u32::from_le_bytes(take::<4>(bytes, 4)?);
        if key_type != ATT_KEY_ECDSA_P256 {
            return Err(Error::malformed(
                FORMAT,
                format!("attestation key type {key_type}, only 2 (ECDSA P-256) is supported"),
            ));
        }
        if take::<16>(bytes, 12)? != INTEL_QE_VENDOR_ID {
            return Err(Error::malformed(FORMAT, "QE vendor id is not Intel's"));
        }
        let (body_offset, body_len) = match (tee, version) {
            (TEE_TYPE_SGX, 3) => (HEADER_LEN, SGX_BODY_LEN),
            (TEE_TYPE_TDX, 4) => (HEADER_LEN, TD10_BODY_LEN),
            (TEE_TYPE_TDX, 5) => {
                let body_type = u16::from_le_bytes(take::<2>(bytes, HEADER_LEN)?);
                let body_size = u32::from_le_bytes(take::<4>(bytes, HEADER_LEN + 2)?) as usize;
                let expected = match body_type {
                    2 => TD10_BODY_LEN,
                    3 => TD15_BODY_LEN,
                    other => {
                        return Err(Error::malformed(
                            FORMAT,
                            format!("v5 body type {other}: expected 2 (TD 1.0) or 3 (TD 1.5)"),
                        ));
                    }
                };
                if body_size != expected {
                    return Err(Error::malformed(
                        FORMAT,
                        format!("v5 body size {body_size}, body type {body_type} needs {expected}"),
                    ));
                }
                (HEADER_LEN + 6, expected)
            }
            (TEE_TYPE_SGX, v) => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("SGX quote version {v}, expected 3"),
                ));
            }
            (TEE_TYPE_TDX, v) => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("TDX quote version {v}, expected 4 or 5"),
                ));
            }
            (t, _) => {
                return Err(Error::malformed(FORMAT, format!("unknown TEE type {t:#x}")));
            }
        };
        let body = bytes
            .get(body_offset..body_offset + body_len)
            .ok_or_else(|| Error::malformed(FORMAT, "truncated report body"))?;
        let sig_len_offset = body_offset + body_len;
        let sig_len = u32::from_le_bytes(take::<4>(bytes, sig_len_offset)?) as usize;
        let auth_end = sig_len_offset
            .checked_add(4)
            .and_then(|o| o.checked_add(sig_len))
            .ok_or_else(|| Error::malformed(FORMAT, "signature length overflows"))?;
        if auth_end > bytes.len() {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "signature data of {sig_len} bytes runs past the end of the {}-byte quote",
                    bytes.len()
                ),
            ));
        }
        // ECDSA signature (64) + attestation key (64) + QE report (384) + QE sig (64) at least.
        if sig_len < SIGNATURE_AND_KEY_LEN + QE_REPORT_AND_SIGNATURE_LEN {
            return Err(Error::malformed(
                FORMAT,
                format!("signature data of {sig_len} bytes is too short"),
            ));
        }
        check_signature_data(bytes, sig_len_offset + 4, auth_end, version)?;
        // Nothing signed follows the signature data. Zero padding is a buffer's unused tail, and
        // `Evidence` drops it before taking the digest; any other byte is refused, so one signed
        // statement has one digest.
        let after = &bytes[auth_end..];
        if after.iter().any(|b| *b != 0) {
            return Err(Error::EvidenceTrailingBytes {
                format: FORMAT,
                after: "the signature data",
                trailing: after.len(),
            });
        }

        let (body, report_data, debug) = if tee == TEE_TYPE_SGX {
            let attributes = take::<16>(body, 48)?;
            let claims = SgxClaims {
                cpu_svn: hex::encode(take::<16>(body, 0)?),
                attributes: hex::encode(attributes),
                mrenclave: Measurement256(take::<32>(body, 64)?),
                mrsigner: Measurement256(take::<32>(body, 128)?),
                isv_prod_id: u16::from_le_bytes(take::<2>(body, 256)?),
                isv_svn: u16::from_le_bytes(take::<2>(body, 258)?),
            };
            let debug = attributes[0] & SGX_FLAG_DEBUG != 0;
            (
                QuoteBody::Sgx(claims),
                ReportData(take::<64>(body, 320)?),
                debug,
            )
        } else {
            let td_attributes = take::<8>(body, 120)?;
            let claims = TdxClaims {
                quote_version: version,
                tee_tcb_svn: hex::encode(take::<16>(body, 0)?),
                mr_seam: m384(body, 16)?,
                td_attributes: hex::encode(td_attributes),
                xfam: hex::encode(take::<8>(body, 128)?),
                mrtd: m384(body, 136)?,
                mr_config_id: m384(body, 184)?,
                mr_owner: m384(body, 232)?,
                mr_owner_config: m384(body, 280)?,
                rtmr: [
                    m384(body, 328)?,
                    m384(body, 376)?,
                    m384(body, 424)?,
                    m384(body, 472)?,
                ],
            };
            let debug = td_attributes[0] & TD_ATTR_DEBUG != 0;
            (
                QuoteBody::Tdx(claims),
                ReportData(take::<64>(body, 520)?),
                debug,
            )
        };
        Ok(Self {
            version,
            body,
            report_data,
            debug,
            len: auth_end,
        })
    }

    /// The platform claims of the body.
    pub fn platform_claims(&self) -> PlatformClaims {
        match &self.body {
            QuoteBody::Sgx(c) => PlatformClaims::Sgx(c.clone()),
            QuoteBody::Tdx(c) => PlatformClaims::Tdx(c.clone()),
        }
    }
}

/// Checks that the signature data at `start..end` is exactly its nested structures: the quote's
/// signature and attestation key, then the QE report certification data (v3), or certification
/// data of type 6 holding it (v4, v5). Slack at the end of any of them would be signed by nobody.
fn check_signature_data(bytes: &[u8], start: usize, end: usize, version: u16) -> Result<(), Error> {
    let at = start + SIGNATURE_AND_KEY_LEN;
    if version == 3 {
        let stop = check_qe_report_certification_data(bytes, at, end)?;
        return no_trailing_bytes(stop, end, "the signature data");
    }
    let (cert_type, body_start, body_end) =
        certification_data(bytes, at, end, "certification data")?;
    if cert_type != CERT_TYPE_QE_REPORT {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "certification data type {cert_type} at offset {at}: quote v{version} carries type {CERT_TYPE_QE_REPORT} (QE report certification data)"
            ),
        ));
    }
    let stop = check_qe_report_certification_data(bytes, body_start, body_end)?;
    no_trailing_bytes(stop, body_end, "the QE report certification data")?;
    no_trailing_bytes(body_end, end, "the signature data")
}

/// QE report and its signature, QE authentication data, then the PCK certification data, from
/// `at` within `end`; returns where they end.
fn check_qe_report_certification_data(bytes: &[u8], at: usize, end: usize) -> Result<usize, Error> {
    let auth_at = at + QE_REPORT_AND_SIGNATURE_LEN;
    let auth_len = u16::from_le_bytes(take::<2>(bounded(bytes, end), auth_at)?) as usize;
    let auth_end = auth_at + 2 + auth_len;
    if auth_end > end {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "QE authentication data of {auth_len} bytes at offset {} runs past the end of its container at offset {end}",
                auth_at + 2
            ),
        ));
    }
    let (cert_type, data_start, data_end) =
        certification_data(bytes, auth_end, end, "PCK certification data")?;
    if cert_type == CERT_TYPE_PCK_CHAIN {
        check_pck_chain_framing(&bytes[data_start..data_end], data_start)?;
    }
    Ok(data_end)
}

/// Reads certification data (`type u16 | size u32 | data`) at `at` within `end`: its type and
/// where its data starts and ends.
fn certification_data(
    bytes: &[u8],
    at: usize,
    end: usize,
    what: &str,
) -> Result<(u16, usize, usize), Error> {
    let within = bounded(bytes, end);
    let cert_type = u16::from_le_bytes(take::<2>(within, at)?);
    let size = u32::from_le_bytes(take::<4>(within, at + 2)?) as usize;
    let data_start = at + 6;
    let data_end = data_start
        .checked_add(size)
        .filter(|stop| *stop <= end)
        .ok_or_else(|| {
            Error::malformed(
                FORMAT,
                format!(
                    "{what} of {size} bytes at offset {data_start} runs past the end of its container at offset {end}"
                ),
            )
        })?;
    Ok((cert_type, data_start, data_end))
}

/// `bytes` up to `end` (or all of them if shorter), so reads cannot stray into the next structure.
fn bounded(bytes: &[u8], end: usize) -> &[u8] {
    &bytes[..end.min(bytes.len())]
}

/// Refuses bytes between the end of a structure (`stop`) and the end of its container.
fn no_trailing_bytes(stop: usize, end: usize, after: &'static str) -> Result<(), Error> {
    match end.checked_sub(stop) {
        Some(0) | None => Ok(()),
        Some(trailing) => Err(Error::EvidenceTrailingBytes {
            format: FORMAT,
            after,
            trailing,
        }),
    }
}

/// Checks the PEM framing of the PCK certificate chain that starts at `offset`: exactly Intel's
/// three certificates (PCK, PCK CA, root CA), each a `BEGIN CERTIFICATE` line, base64 lines and
/// an `END CERTIFICATE` line, one right after the other, and after the last at most a line end
/// and a NUL terminator (Intel's quoting enclave writes `\n\0`). PEM readers skip text around
/// and between blocks and ignore a block they cannot finish, and the chain check ignores a
/// certificate it does not need: without this, bytes no signature covers could ride along. The
/// certificates themselves are checked by the appraisal.
fn check_pck_chain_framing(chain: &[u8], offset: usize) -> Result<(), Error> {
    // Where `rest` (a tail of the chain) starts, as an offset into the quote.
    let at = |rest: &[u8]| offset + chain.len() - rest.len();
    let bad = |at: usize, what: String| {
        Error::malformed(
            FORMAT,
            format!("PCK certificate chain at offset {at}: {what}"),
        )
    };
    let mut rest = chain;
    for number in 1..=PCK_CHAIN_CERTIFICATES {
        rest = rest
            .strip_prefix(PEM_BEGIN)
            .and_then(strip_line_end)
            .ok_or_else(|| {
                bad(
                    at(rest),
                    format!("certificate {number} of {PCK_CHAIN_CERTIFICATES} does not start with a -----BEGIN CERTIFICATE----- line"),
                )
            })?;
        let body_len = rest
            .windows(PEM_END.len())
            .position(|w| w == PEM_END)
            .ok_or_else(|| {
                bad(
                    at(rest),
                    format!("certificate {number} has no -----END CERTIFICATE----- line"),
                )
            })?;
        let (body, after) = rest.split_at(body_len);
        if let Some(stray) = body
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || b"+/=\r\n".contains(b)))
        {
            return Err(bad(
                at(rest) + stray,
                format!(
                    "certificate {number} holds '{}' where its base64 lines belong",
                    std::ascii::escape_default(body[stray])
                ),
            ));
        }
        rest = &after[PEM_END.len()..];
        rest = match strip_line_end(rest) {
            Some(next) => next,
            None if number == PCK_CHAIN_CERTIFICATES => rest,
            None => {
                return Err(bad(
                    at(rest),
                    format!("certificate {number}'s END line does not end the line"),
                ));
            }
        };
    }
    let rest = rest.strip_prefix(b"\0").unwrap_or(rest);
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Error::EvidenceTrailingBytes {
            format: FORMAT,
            after: "the PCK certificate chain",
            trailing: rest.len(),
        })
    }
}

/// `text` after a leading `\n` or `\r\n`; `None` if it does not start with one.
fn strip_line_end(text: &[u8]) -> Option<&[u8]> {
    text.strip_prefix(b"\n")
        .or_else(|| text.strip_prefix(b"\r\n"))
}

/// Which Intel PCK CA issued a quote's PCK certificate; it selects the PCK CRL to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PckCa {
    /// `Intel SGX PCK Processor CA`.
    Processor,
    /// `Intel SGX PCK Platform CA`.
    Platform,
}

impl PckCa {
    /// The `ca` parameter of Intel PCS's `pckcrl` endpoint: `processor` or `platform`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::Platform => "platform",
        }
    }
}

/// The platform a quote's PCK certificate names: what Intel PCS needs to serve the collateral.
/// Read from the certification data **without verifying anything**: use it to choose what to
/// fetch, never to decide trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PckPlatform {
    /// Family-Model-Stepping-Platform-CustomSKU from the PCK certificate's SGX extension.
    pub fmspc: [u8; 6],
    /// The CA that issued the PCK certificate.
    pub ca: PckCa,
}

/// Reads the FMSPC and issuing CA from the PCK certificate embedded in a raw quote
/// (certification data type 5, or 4 with a lone PCK certificate).
pub(crate) fn pck_platform(raw: &[u8]) -> Result<PckPlatform, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::malformed(FORMAT, format!("PCK certificate: {e}"));
    let quote = dcap_qvl::quote::Quote::parse(raw).map_err(|e| bad(&e))?;
    let fmspc = dcap_qvl::intel::quote_fmspc(&quote).map_err(|e| bad(&e))?;
    let ca = match dcap_qvl::intel::quote_ca(&quote).map_err(|e| bad(&e))? {
        dcap_qvl::config::PckCa::Processor => PckCa::Processor,
        dcap_qvl::config::PckCa::Platform => PckCa::Platform,
    };
    Ok(PckPlatform { fmspc, ca })
}
