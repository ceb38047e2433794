//! `vmsa diff A B`: which fields of two VMSA pages differ — the tool for "why does my
//! measurement not match?". Exit 0 when equal, 1 when they differ.
use super::CmdResult;
use super::files::{self, limits};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FieldValue, diff};

/// Arguments of `vmsa diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// First VMSA page (4096 bytes, or QEMU's 1648-byte save area).
    pub a: PathBuf,
    /// Second VMSA page.
    pub b: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct JsonDiff {
    name: &'static str,
    offset: usize,
    size: usize,
    a: String,
    b: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
}

fn load(path: &Path) -> Result<Vmsa, String> {
    let bytes = files::read(path, limits::VMSA)?;
    Vmsa::from_save_area(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// For a segment, which of its four parts differ.
fn segment_parts(a: &FieldValue<'_>, b: &FieldValue<'_>) -> Vec<String> {
    let (FieldValue::Segment(x), FieldValue::Segment(y)) = (a, b) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if x.selector != y.selector {
        out.push(format!("selector {:#x} != {:#x}", x.selector, y.selector));
    }
    if x.attrib != y.attrib {
        out.push(format!(
            "attrib {:#05x} ({}) != {:#05x} ({})",
            x.attrib.bits(),
            x.attrib.describe(),
            y.attrib.bits(),
            y.attrib.describe()
        ));
    }
    if x.limit != y.limit {
        out.push(format!("limit {:#x} != {:#x}", x.limit, y.limit));
    }
    if x.base != y.base {
        out.push(format!("base {:#x} != {:#x}", x.base, y.base));
    }
    out
}

/// For byte arrays, the first differing offset.
fn bytes_parts(offset: usize, a: &FieldValue<'_>, b: &FieldValue<'_>) -> Vec<String> {
    let (FieldValue::Bytes(x), FieldValue::Bytes(y)) = (a, b) else {
        return Vec::new();
    };
    let n = x.iter().zip(y.iter()).filter(|(p, q)| p != q).count();
    match x.iter().zip(y.iter()).position(|(p, q)| p != q) {
        Some(i) => vec![format!(
            "{n} byte(s) differ, first at page offset {:#x}",
            offset + i
        )],
        None => Vec::new(),
    }
}

/// Runs `vmsa diff`.
pub fn run(args: &Args) -> CmdResult {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let diffs: Vec<JsonDiff> = diff(&a, &b)
        .map(|d| {
            let mut parts = segment_parts(&d.left, &d.right);
            parts.extend(bytes_parts(d.field.offset, &d.left, &d.right));
            JsonDiff {
                name: d.field.name,
                offset: d.field.offset,
                size: d.field.size,
                a: d.left.to_string(),
                b: d.right.to_string(),
                parts,
            }
        })
        .collect();
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&diffs).map_err(|e| e.to_string())?
        );
    } else if diffs.is_empty() {
        crate::outln!("identical");
    } else {
        crate::outln!("--- {}\n+++ {}", args.a.display(), args.b.display());
        for d in &diffs {
            crate::outln!("{:#05x} {} ({} bytes)", d.offset, d.name, d.size);
            crate::outln!("  - {}", d.a);
            crate::outln!("  + {}", d.b);
            for p in &d.parts {
                crate::outln!("    {p}");
            }
        }
        crate::outln!("{} field(s) differ", diffs.len());
    }
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
