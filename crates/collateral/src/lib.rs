//! An optional fetcher for **endorsements**: Intel PCS collateral for SGX/TDX quotes and AMD KDS
//! certificates for SEV-SNP reports, kept in a file cache keyed by URL. Nothing here decides trust:
//! the fetched files are handed to [`attest::Endorsements::load`] and appraised like any others.
//!
//! Off by default: nothing fetches unless a caller builds a [`Fetcher`] and asks it to.
//!
//! ```no_run
//! use collateral::{Fetcher, FetcherConfig};
//! let evidence = attest::Evidence::from_bytes(&std::fs::read("quote")?)?;
//! let fetcher = Fetcher::new(FetcherConfig::new("/var/cache/teemesh/collateral"));
//! let fetched = fetcher.fetch(&evidence, None)?;
//! let endorsements = attest::Endorsements::load(&fetched.files)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod amd;
mod cache;
mod config;
mod error;
mod fetcher;
mod http;
mod intel;

pub use amd::SnpProduct;
pub use config::{DEFAULT_AMD_KDS, DEFAULT_INTEL_CERTS, DEFAULT_INTEL_PCS, FetcherConfig};
pub use error::Error;
pub use fetcher::{FetchedCollateral, Fetcher};
