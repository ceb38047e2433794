//! `vmsa report FILE`: an SNP attestation report, decoded. The input is the raw 1184 bytes, or
//! the same in hex or base64 (detected; whitespace ignored), as `snpguest report`, the `sev`
//! crate's tests and cloud providers' tools write it.
use super::CmdResult;
use super::files::{self, limits};
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::report::{Product, Report, ReportError};

/// Arguments of `vmsa report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report: 1184 raw bytes, or hex, or base64.
    pub file: PathBuf,
    /// The processor that signed it (milan, genoa, turin), for version 2 reports, which do not
    /// say; reports of version 3 and later name it themselves.
    #[arg(long, value_parser = parse_product)]
    pub product: Option<Product>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--product`.
pub fn parse_product(s: &str) -> Result<Product, String> {
    Product::from_name(s).ok_or_else(|| format!("unknown product {s:?} (milan, genoa, turin)"))
}

/// Reads and decodes the report in `path`.
pub fn load(path: &std::path::Path, product: Option<Product>) -> Result<Report, String> {
    let bytes = files::read(path, limits::REPORT_TEXT)?;
    let (raw, _) = decode_input(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Report::parse(&raw, product).map_err(|e: ReportError| format!("{}: {e}", path.display()))
}

/// `vmsa report`.
pub fn run(args: &Args) -> CmdResult {
    let r = load(&args.file, args.product)?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&to_json(&r)).map_err(|e| e.to_string())?
        );
    } else {
        crate::outln!("{}", to_text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

pub use vmsa_attest::view::{cpu_signature, decode_input, to_json, to_text};
