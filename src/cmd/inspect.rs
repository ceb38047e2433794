//! `vmsa inspect FILE`: every non-zero field of a VMSA page, decoded.
use super::{CmdResult, read_file};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FieldKind, FieldValue};

/// Arguments of `vmsa inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A 4096-byte VMSA page, an OVMF image or an IGVM file (detected by content).
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A field as JSON shows it.
#[derive(Debug, Serialize)]
struct JsonField {
    name: &'static str,
    offset: usize,
    size: usize,
    kind: FieldKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<vmsa_core::VmcbSegment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    decoded: String,
}

/// Runs `vmsa inspect`.
pub fn run(args: &Args) -> CmdResult {
    let bytes = read_file(&args.file)?;
    if super::inspect_igvm::detect(&bytes) {
        return super::inspect_igvm::run(&bytes, args.json);
    }
    if super::inspect_ovmf::detect(&bytes) {
        return super::inspect_ovmf::run(&bytes, args.json);
    }
    let vmsa = Vmsa::from_page(&bytes).map_err(|e| format!("{}: {e}", args.file.display()))?;
    print_vmsa(&vmsa, args.json);
    Ok(ExitCode::SUCCESS)
}

/// Prints a VMSA as text or JSON.
pub fn print_vmsa(vmsa: &Vmsa, json: bool) {
    if json {
        let fields: Vec<JsonField> = vmsa
            .nonzero_fields()
            .map(|(f, v)| JsonField {
                name: f.name,
                offset: f.offset,
                size: f.size,
                kind: f.kind,
                value: match v {
                    FieldValue::Int { value, .. } => Some(value),
                    _ => None,
                },
                segment: match v {
                    FieldValue::Segment(s) => Some(s),
                    _ => None,
                },
                hex: match v {
                    FieldValue::Bytes(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
                    _ => None,
                },
                decoded: v.to_string(),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&fields).expect("plain data serializes")
        );
    } else {
        for (f, v) in vmsa.nonzero_fields() {
            println!("{:#05x} {:<16} {v}", f.offset, f.name);
        }
    }
}
