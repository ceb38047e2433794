//! `vmsa inspect FILE.igvm` (in progress).
use super::CmdResult;

/// Whether `bytes` look like an IGVM file (starts with the IGVM magic).
pub fn detect(_bytes: &[u8]) -> bool {
    false
}

/// Shows an IGVM file.
pub fn run(_bytes: &[u8], _json: bool) -> CmdResult {
    Err("IGVM inspection is not implemented yet".into())
}
