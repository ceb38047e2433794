//! `vmsa inspect FIRMWARE.fd`: the OVMF footer table, the `ASEV` metadata sections and the
//! reset vectors.
use crate::cmd::CmdResult;
use crate::cmd::output::{hex, to_json};
use serde::Serialize;
use std::process::ExitCode;
use vmsa_core::arch::RESET_VECTOR;
use vmsa_core::ovmf::{OvmfImage, Section};

#[derive(Serialize)]
struct JsonEntry {
    index: usize,
    offset: usize,
    guid: String,
    name: &'static str,
    value: String,
    data: String,
}

#[derive(Serialize)]
struct JsonVector {
    eip: u32,
    cs_base: u32,
    ip: u32,
}

#[derive(Serialize)]
struct JsonImage {
    size: usize,
    gpa: u64,
    table_offset: usize,
    table_len: usize,
    entries: Vec<JsonEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_offset: Option<usize>,
    sections: Vec<JsonSection>,
    bsp_reset: JsonVector,
    #[serde(skip_serializing_if = "Option::is_none")]
    ap_reset: Option<JsonVector>,
    sev_es_aps: bool,
    snp: bool,
    kernel_hashes: bool,
}

#[derive(Serialize)]
struct JsonSection {
    gpa: u32,
    size: u32,
    #[serde(rename = "type")]
    section_type: u32,
    name: String,
}

fn vector(eip: u32) -> JsonVector {
    JsonVector {
        eip,
        cs_base: eip & 0xffff_0000,
        ip: eip & 0xffff,
    }
}

fn section(s: Section) -> JsonSection {
    JsonSection {
        gpa: s.gpa,
        size: s.size,
        section_type: s.section_type.0,
        name: s.section_type.to_string(),
    }
}

/// Shows an OVMF image.
pub fn run(bytes: &[u8], json: bool) -> CmdResult {
    let fw = OvmfImage::parse(bytes).map_err(|e| format!("OVMF image: {e}"))?;
    let md = fw.sev_metadata();
    let ap = fw.sev_es_reset_addr().filter(|&a| a != 0);
    let img = JsonImage {
        size: bytes.len(),
        gpa: fw.gpa(),
        table_offset: fw.table_offset(),
        table_len: fw.table_len(),
        entries: fw
            .entries()
            .map(|e| JsonEntry {
                index: e.index,
                offset: e.offset,
                guid: e.entry.guid().to_string(),
                name: e.entry.name(),
                value: e.entry.value().to_string(),
                data: hex(e.data),
            })
            .collect(),
        metadata_offset: md.map(|m| m.offset()),
        sections: md
            .map(|m| m.sections().map(section).collect())
            .unwrap_or_default(),
        bsp_reset: vector(RESET_VECTOR),
        ap_reset: ap.map(vector),
        sev_es_aps: ap.is_some(),
        snp: md.is_some_and(|m| m.check_known_types().is_ok()),
        kernel_hashes: fw.supports_kernel_hashes(),
    };
    if json {
        crate::outln!("{}", to_json(&img)?);
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "OVMF image, {} bytes, loaded at GPA {:#x} (ending at 4 GiB)",
        img.size,
        img.gpa
    );
    crate::outln!(
        "footer table: {} bytes at offset {:#x}, {} entries",
        img.table_len,
        img.table_offset,
        img.entries.len()
    );
    for e in &img.entries {
        crate::outln!(
            "  [{}] {:#x} {} {:<24} {}",
            e.index,
            e.offset,
            e.guid,
            e.name,
            e.value
        );
    }
    match &img.metadata_offset {
        Some(off) => {
            crate::outln!(
                "SEV metadata (ASEV) at offset {off:#x}, {} sections:",
                img.sections.len()
            );
            for s in &img.sections {
                crate::outln!("  gpa {:#010x} size {:#08x} {}", s.gpa, s.size, s.name);
            }
        }
        None => crate::outln!("SEV metadata: none (this image cannot boot under SEV-SNP)"),
    }
    crate::outln!(
        "reset vectors: BSP {:#x} (CS base {:#x}, IP {:#x})",
        img.bsp_reset.eip,
        img.bsp_reset.cs_base,
        img.bsp_reset.ip
    );
    match &img.ap_reset {
        Some(v) => crate::outln!(
            "               APs {:#x} (CS base {:#x}, IP {:#x}, from the SEV-ES reset block)",
            v.eip,
            v.cs_base,
            v.ip
        ),
        None => crate::outln!("               APs: no usable SEV-ES reset block (one vCPU only)"),
    }
    crate::outln!(
        "kernel hashes: {}",
        if img.kernel_hashes {
            "supported"
        } else {
            "not supported"
        }
    );
    Ok(ExitCode::SUCCESS)
}
