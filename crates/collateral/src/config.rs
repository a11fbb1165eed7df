//! Where the fetcher looks (Intel PCS, Intel's certificate host, AMD KDS; each replaceable by a
//! mirror or a test server), where it caches, and how long it waits and trusts its cache.

use std::path::PathBuf;
use std::time::Duration;

/// Intel's Provisioning Certification Service.
pub const DEFAULT_INTEL_PCS: &str = "https://api.trustedservices.intel.com";
/// Where Intel publishes the SGX root CA CRL (`/IntelSGXRootCA.der`).
pub const DEFAULT_INTEL_CERTS: &str = "https://certificates.trustedservices.intel.com";
/// AMD's Key Distribution Service.
pub const DEFAULT_AMD_KDS: &str = "https://kdsintf.amd.com";

/// Configuration of a [`crate::Fetcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// Base URL of Intel PCS (or a PCCS speaking the same v4 API), without `/sgx/...`.
    pub intel_pcs_base: String,
    /// Base URL serving `IntelSGXRootCA.der` (the root CA CRL).
    pub intel_certs_base: String,
    /// Base URL of AMD KDS, without `/vcek/...`.
    pub amd_kds_base: String,
    /// Directory holding cached responses (created on first write).
    pub cache_dir: PathBuf,
    /// Limit for one whole request, connect to last byte.
    pub timeout: Duration,
    /// Cached responses older than this are fetched again (when online).
    pub max_age: Duration,
    /// Use only the cache, however old; never touch the network.
    pub offline: bool,
}

impl FetcherConfig {
    /// Vendor endpoints, a 30 s timeout and a one-day cache in `cache_dir`, online.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            intel_pcs_base: DEFAULT_INTEL_PCS.to_owned(),
            intel_certs_base: DEFAULT_INTEL_CERTS.to_owned(),
            amd_kds_base: DEFAULT_AMD_KDS.to_owned(),
            cache_dir: cache_dir.into(),
            timeout: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 60 * 60),
            offline: false,
        }
    }
}

/// `base` without trailing slashes, so `{base}/path` never doubles them.
pub(crate) fn trim_base(base: &str) -> &str {
    base.trim_end_matches('/')
}
