//! The fetcher: turns evidence into the list of vendor URLs that endorse it, answers each from
//! the cache or the network, checks that each answer is an endorsement attest can load, and
//! returns the files.

use std::collections::HashSet;
use std::path::PathBuf;

use attest::Evidence;
use attest::evidence::EvidenceFormat;
use sha2::{Digest, Sha256};

use crate::amd::{self, SnpProduct};
use crate::cache::{Cache, Lookup, Stored};
use crate::config::FetcherConfig;
use crate::error::Error;
use crate::http::{Http, percent_decode};
use crate::intel;

/// One endpoint to fetch, and how to store its answer.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) url: String,
    /// File name (after the URL hash) for the body, e.g. `tcb_info.json`.
    pub(crate) name: &'static str,
    /// The response header that carries the body's issuer chain, if any.
    pub(crate) issuer_chain: Option<IssuerChain>,
}

/// A URL-encoded PEM issuer chain in a response header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IssuerChain {
    /// Accepted header names, preferred first (PCS v3 and v4 differ).
    pub(crate) headers: &'static [&'static str],
    /// File name for the decoded chain.
    pub(crate) name: &'static str,
}

/// What a fetch produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedCollateral {
    /// Endorsement files (in the cache directory) for [`attest::Endorsements::load`]; identical
    /// contents (Intel's TCB info and QE identity share one issuer chain) are listed once.
    pub files: Vec<PathBuf>,
    /// Responses fetched over the network by this call.
    pub downloaded: usize,
    /// Responses answered from the cache.
    pub from_cache: usize,
}

/// Fetches endorsements for evidence from Intel PCS or AMD KDS, through a file cache.
#[derive(Debug, Clone)]
pub struct Fetcher {
    config: FetcherConfig,
    http: Http,
    cache: Cache,
}

impl Fetcher {
    /// A fetcher; nothing is fetched or created until [`Fetcher::fetch`].
    pub fn new(config: FetcherConfig) -> Self {
        Self {
            http: Http::new(config.timeout),
            cache: Cache::new(config.cache_dir.clone(), config.max_age),
            config,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// Fetches what endorses `evidence`: for an SGX or TDX quote the TCB info, QE identity, PCK
    /// CRL, root CA CRL and their issuer chains; for a VCEK-signed SEV-SNP report the VCEK and
    /// the ASK/ARK chain. `snp_product` names the product line of an SNP report older than
    /// version 3, which does not say it; a newer report's own CPUID fields must agree with it.
    pub fn fetch(
        &self,
        evidence: &Evidence,
        snp_product: Option<SnpProduct>,
    ) -> Result<FetchedCollateral, Error> {
        let resources = match evidence.format() {
            EvidenceFormat::Dcap(_) => {
                let pck = evidence
                    .pck_platform()?
                    .ok_or_else(|| Error::unsupported("the quote carries no PCK certificate"))?;
                intel::resources(&self.config, evidence.platform(), &pck)?
            }
            EvidenceFormat::Snp(report) => {
                let product = amd::product_for(report, snp_product)?;
                amd::resources(&self.config, report, product)?
            }
            EvidenceFormat::Sim(_) => {
                return Err(Error::unsupported(
                    "simulated evidence has no vendor endorsements",
                ));
            }
        };
        let mut out = FetchedCollateral::default();
        let mut seen = HashSet::new();
        for resource in &resources {
            let (parts, downloaded) = self.get(resource)?;
            if downloaded {
                out.downloaded += 1;
            } else {
                out.from_cache += 1;
            }
            for part in parts {
                if seen.insert(Sha256::digest(&part.bytes)) {
                    out.files.push(part.path);
                }
            }
        }
        Ok(out)
    }

    /// One resource from the cache or the network; `true` when it was downloaded.
    fn get(&self, resource: &Resource) -> Result<(Vec<Stored>, bool), Error> {
        let url = resource.url.as_str();
        let mut names = vec![resource.name];
        names.extend(resource.issuer_chain.map(|c| c.name));
        match self.cache.lookup(url, &names)? {
            Lookup::Fresh(parts) => {
                tracing::debug!(url, "collateral from cache");
                return Ok((parts, false));
            }
            Lookup::Stale(parts) if self.config.offline => {
                tracing::warn!(
                    url,
                    "offline: using a cached response older than the maximum age"
                );
                return Ok((parts, false));
            }
            Lookup::Stale(_) | Lookup::Missing if self.config.offline => {
                return Err(Error::NotCached {
                    url: url.to_owned(),
                    cache_dir: self.cache.dir().to_owned(),
                });
            }
            Lookup::Stale(_) | Lookup::Missing => {}
        }
        let response = self.http.get(url)?;
        let mut parts: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(chain) = resource.issuer_chain {
            let header = chain
                .headers
                .iter()
                .find_map(|h| response.header(h))
                .ok_or_else(|| Error::MissingHeader {
                    url: url.to_owned(),
                    header: chain.headers[0],
                })?;
            let pem = percent_decode(header).map_err(|reason| Error::InvalidResponse {
                url: url.to_owned(),
                reason: format!("{} header: {reason}", chain.headers[0]),
            })?;
            parts.push((chain.name, pem.into_bytes()));
        }
        parts.push((resource.name, response.body));
        // Only what attest can load goes into the cache: an error page served with status 200
        // must not poison it.
        for (name, bytes) in &parts {
            attest::Endorsements::new()
                .add_bytes(name, bytes)
                .map_err(|e| Error::InvalidResponse {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        // The body goes last so that its file's presence implies the chain's.
        let borrowed: Vec<(&str, &[u8])> = parts.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let mut stored = self.cache.store(url, &borrowed)?;
        stored.rotate_right(1);
        Ok((stored, true))
    }
}
