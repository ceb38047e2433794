//! `vmsa inspect FILE`: a VMSA page, an OVMF image or an IGVM file, decoded (detected by
//! content).
mod igvm;
mod ovmf;

use super::CmdResult;
use super::files::{self, limits};
use super::output::print_vmsa;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::ovmf::OvmfImage;
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
    let bytes = files::read_by_prefix(&args.file, limits::by_content)?;
    match FileKind::detect(&bytes) {
        FileKind::Igvm => igvm::run(&bytes, args.json),
        FileKind::Ovmf => ovmf::run(&bytes, args.json),
        FileKind::Vmsa => {
            let vmsa = Vmsa::from_save_area(&bytes).map_err(|e| {
                // Not a VMSA by size: say what else it is not, so that a damaged image is
                // not reported as a page of the wrong size.
                let ovmf = match OvmfImage::parse(&bytes) {
                    Err(o) => o.to_string(),
                    Ok(_) => "an OVMF image".into(),
                };
                format!(
                    "{}: not a VMSA ({e}), not an IGVM file (no IGVM magic), and not an OVMF image ({ovmf})",
                    args.file.display()
                )
            })?;
            print_vmsa(&vmsa, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
