//! Fuzzes the time and duration parsers used by collateral and policies: `UnixTime::parse` and
//! `parse_duration_secs`, checking that a parsed time prints back to itself.
#![no_main]

use attest::UnixTime;
use attest::time::parse_duration_secs;
use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

/// 10000-01-01T00:00:00Z: past it, years have five digits and RFC 3339 cannot hold them.
const YEAR_10000: u64 = 253_402_300_800;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = <[u8; 8]>::try_from(data) {
        // Display must cope with any value, e.g. a timestamp field of a simulated report.
        let _ = UnixTime(u64::from_le_bytes(bytes)).to_string();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(time) = check(UnixTime::parse(text))
        && time.as_secs() < YEAR_10000
    {
        assert_eq!(UnixTime::parse(&time.to_string()), Ok(time), "{text:?}");
    }
    let _ = check(parse_duration_secs(text));
});
