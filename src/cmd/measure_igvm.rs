//! `vmsa measure --igvm FILE` (in progress).
use super::measure::{Args, Mode};
use std::path::Path;

/// Measures an IGVM file.
pub fn run(_args: &Args, _path: &Path, _mode: Mode) -> Result<(), String> {
    Err("IGVM measurement is not implemented yet".into())
}
