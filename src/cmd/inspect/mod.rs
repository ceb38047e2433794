//! `vmsa inspect FILE`: a VMSA page, an OVMF image or an IGVM file, decoded (detected by
//! content).
mod igvm;
mod ovmf;

use super::CmdResult;
use super::files::{self, limits};
use super::output::print_vmsa;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::launch::MAX_FIRMWARE_SIZE;
use vmsa_core::{FileKind, Vmsa};

/// Arguments of `vmsa inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A 4096-byte VMSA page, an OVMF image or an IGVM file (detected by content).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vmsa inspect`.
pub fn run(args: &Args) -> CmdResult {
    let limit = MAX_FIRMWARE_SIZE.max(limits::IGVM);
    let bytes = files::read(&args.file, limit)?;
    match FileKind::detect(&bytes) {
        FileKind::Igvm => igvm::run(&bytes, args.json),
        FileKind::Ovmf => ovmf::run(&bytes, args.json),
        FileKind::Vmsa => {
            let vmsa =
                Vmsa::from_page(&bytes).map_err(|e| format!("{}: {e}", args.file.display()))?;
            print_vmsa(&vmsa, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
