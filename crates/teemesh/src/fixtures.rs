//! The real vendor evidence bundled into the binary (from `testdata/fixtures`, see its README for
//! provenance and licences), so `teemesh demo` and `teemesh bench` work anywhere.

use attest::UnixTime;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/fixtures/",
            $path
        ))
    };
}

/// One piece of evidence with its endorsements, the time it is valid at, the policy that should
/// affirm it, and the outcome EXPECTED.md records.
pub(crate) struct Fixture {
    pub(crate) name: &'static str,
    pub(crate) evidence: &'static [u8],
    pub(crate) endorsements: &'static [(&'static str, &'static [u8])],
    pub(crate) at: UnixTime,
    pub(crate) policy: &'static str,
    pub(crate) expect_affirmed: bool,
}

/// 2025-06-20T00:00:00Z.
const T_2025: UnixTime = UnixTime(1_750_377_600);
/// 2026-03-01T00:00:00Z.
const T_2026: UnixTime = UnixTime(1_772_323_200);

/// Accepts the SGX fixture's platform status and its two advisories.
pub(crate) const SGX_ACCEPTING_POLICY: &str = "accepted_tcb_statuses = [\"UpToDate\", \"ConfigurationAndSWHardeningNeeded\"]\nallowed_advisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n";

const MILAN_BUNDLE: (&str, &[u8]) = (
    "milan_ask_ark_asvk.pem",
    fixture!("snp/milan_ask_ark_asvk.pem"),
);

pub(crate) const SGX_QUOTE: &[u8] = fixture!("sgx/sgx_quote");
pub(crate) const SGX_COLLATERAL: &[u8] = fixture!("sgx/sgx_quote_collateral.json");
pub(crate) const TDX_QUOTE: &[u8] = fixture!("tdx/tdx_quote");
pub(crate) const TDX_COLLATERAL: &[u8] = fixture!("tdx/tdx_quote_collateral.json");
pub(crate) const SNP_REPORT: &[u8] = fixture!("snp/test-report.bin");
pub(crate) const SNP_VCEK: &[u8] = fixture!("snp/test-vcek.der");
pub(crate) const MILAN_CHAIN: &[u8] = MILAN_BUNDLE.1;

pub(crate) const ALL: &[Fixture] = &[
    Fixture {
        name: "sgx/sgx_quote (default policy)",
        evidence: SGX_QUOTE,
        endorsements: &[("sgx_quote_collateral.json", SGX_COLLATERAL)],
        at: T_2025,
        policy: "",
        expect_affirmed: false,
    },
    Fixture {
        name: "sgx/sgx_quote (accepting policy)",
        evidence: SGX_QUOTE,
        endorsements: &[("sgx_quote_collateral.json", SGX_COLLATERAL)],
        at: T_2025,
        policy: SGX_ACCEPTING_POLICY,
        expect_affirmed: true,
    },
    Fixture {
        name: "tdx/tdx_quote (v4)",
        evidence: TDX_QUOTE,
        endorsements: &[("tdx_quote_collateral.json", TDX_COLLATERAL)],
        at: T_2025,
        policy: "",
        expect_affirmed: true,
    },
    Fixture {
        name: "tdx/tdx_quote_outdated (v5)",
        evidence: fixture!("tdx/tdx_quote_outdated"),
        endorsements: &[(
            "tdx_quote_outdated_collateral.json",
            fixture!("tdx/tdx_quote_outdated_collateral.json"),
        )],
        at: T_2026,
        policy: "",
        expect_affirmed: false,
    },
    Fixture {
        name: "snp/test-report.bin (VCEK)",
        evidence: SNP_REPORT,
        endorsements: &[("test-vcek.der", SNP_VCEK), MILAN_BUNDLE],
        at: T_2025,
        policy: "",
        expect_affirmed: true,
    },
    Fixture {
        name: "snp/test-vlek-report.bin (VLEK)",
        evidence: fixture!("snp/test-vlek-report.bin"),
        endorsements: &[
            ("test-vlek.der", fixture!("snp/test-vlek.der")),
            MILAN_BUNDLE,
        ],
        at: T_2025,
        policy: "",
        expect_affirmed: true,
    },
    Fixture {
        name: "snp/virtee_report_milan.hex",
        evidence: fixture!("snp/virtee_report_milan.hex"),
        endorsements: &[
            (
                "virtee_vcek_milan.der",
                fixture!("snp/virtee_vcek_milan.der"),
            ),
            (
                "virtee_cert_chain_milan.pem",
                fixture!("snp/virtee_cert_chain_milan.pem"),
            ),
        ],
        at: T_2025,
        policy: "",
        expect_affirmed: true,
    },
    Fixture {
        name: "snp/test-report.bin + Genoa chain",
        evidence: SNP_REPORT,
        endorsements: &[
            ("test-vcek.der", SNP_VCEK),
            (
                "genoa_ask_ark_asvk.pem",
                fixture!("snp/genoa_ask_ark_asvk.pem"),
            ),
        ],
        at: T_2025,
        policy: "",
        expect_affirmed: false,
    },
];

impl Fixture {
    /// Loads the endorsements.
    pub(crate) fn endorsements(&self) -> Result<attest::Endorsements, attest::Error> {
        let mut e = attest::Endorsements::new();
        for (name, bytes) in self.endorsements {
            e.add_bytes(name, bytes)?;
        }
        Ok(e)
    }
}
