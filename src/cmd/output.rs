//! What the subcommands print and write, in one place: hex and base64, a VMSA's fields as text
//! or JSON, and the `vmsaN.bin` pages.
use serde::Serialize;
use std::path::Path;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FieldKind, FieldValue};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    vmsa_core::hex::Hex(bytes).to_string()
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
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

/// Prints a VMSA's non-zero fields as text (`0x178 rip 0xfff0`) or JSON.
pub fn print_vmsa(vmsa: &Vmsa, json: bool) -> Result<(), String> {
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
                    FieldValue::Bytes(b) => Some(hex(b)),
                    _ => None,
                },
                decoded: v.to_string(),
            })
            .collect();
        println!("{}", to_json(&fields)?);
    } else {
        for (f, v) in vmsa.nonzero_fields() {
            println!("{:#05x} {:<16} {v}", f.offset, f.name);
        }
    }
    Ok(())
}

/// A VMSA's non-zero fields as (`0x178 rip`, value) pairs.
pub fn vmsa_fields(v: &Vmsa) -> Vec<(String, String)> {
    v.nonzero_fields()
        .map(|(f, val)| (format!("{:#05x} {}", f.offset, f.name), val.to_string()))
        .collect()
}

/// Pretty JSON of plain data.
pub fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// Writes every page as `dir/vmsa{cpu}.bin` (the names sev-snp-measure's `--dump-vmsa` uses).
pub fn write_pages<'v>(
    dir: &Path,
    pages: impl IntoIterator<Item = (u32, &'v Vmsa)>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (cpu, page) in pages {
        let path = dir.join(format!("vmsa{cpu}.bin"));
        std::fs::write(&path, page.as_page())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
