//! `vmsa inspect FIRMWARE.fd` (in progress).
use super::CmdResult;

/// Whether `bytes` look like an OVMF image (has the GUIDed footer table).
pub fn detect(_bytes: &[u8]) -> bool {
    false
}

/// Shows an OVMF image.
pub fn run(_bytes: &[u8], _json: bool) -> CmdResult {
    Err("OVMF inspection is not implemented yet".into())
}
