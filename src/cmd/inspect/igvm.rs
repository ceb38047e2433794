//! `vmsa inspect FILE.igvm`: header, platforms, directive summary, decoded VP contexts.
use crate::cmd::CmdResult;
use crate::cmd::output::{to_json, vmsa_fields};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use vmsa_core::Vmsa;
use vmsa_core::igvm::{
    FixedHeader, Header, IgvmFile, Platform, PlatformChoice, VpContextData, header_type_name,
    platform_name,
};

/// Counts and GPA range of one header type.
#[derive(Debug, Default, Serialize)]
struct Summary {
    count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpa_min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpa_end: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    page_types: BTreeMap<String, u32>,
}

#[derive(Debug, Serialize)]
struct JsonVp {
    at: vmsa_core::igvm::At,
    platform: &'static str,
    vp_index: u16,
    gpa: u64,
    kind: &'static str,
    fields: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct JsonIgvm<'a> {
    header: &'a FixedHeader,
    platforms: &'a [Platform],
    headers: u32,
    skipped: Vec<(vmsa_core::igvm::At, u32)>,
    directives: BTreeMap<&'static str, Summary>,
    vp_contexts: Vec<JsonVp>,
}

fn page_type(h: &Header<'_>) -> Option<String> {
    let Header::PageData(p) = h else { return None };
    let t = match p.data_type {
        vmsa_core::igvm::igvm_defs::IgvmPageDataType::NORMAL if p.data.is_none() => "zero",
        vmsa_core::igvm::igvm_defs::IgvmPageDataType::NORMAL => "normal",
        vmsa_core::igvm::igvm_defs::IgvmPageDataType::SECRETS => "secrets",
        vmsa_core::igvm::igvm_defs::IgvmPageDataType::CPUID_DATA => "cpuid",
        vmsa_core::igvm::igvm_defs::IgvmPageDataType::CPUID_XF => "cpuid-xf",
        _ => "unknown",
    };
    let mut s = t.to_string();
    if p.flags.unmeasured() {
        s.push_str("+unmeasured");
    }
    if p.flags.shared() {
        s.push_str("+shared");
    }
    if p.flags.is_2mb_page() {
        s.push_str("+2mb");
    }
    Some(s)
}

fn gpa_range(h: &Header<'_>) -> Option<(u64, u64)> {
    let (gpa, size) = match h {
        Header::PageData(p) => (p.gpa, p.size()),
        Header::ParameterInsert(p) => (p.gpa, 4096),
        Header::RequiredMemory(r) => (r.gpa, r.number_of_bytes.into()),
        Header::ErrorRange(e) => (e.gpa, e.size_bytes.into()),
        Header::VpContext(v) if v.gpa != 0 => (v.gpa, 4096),
        _ => return None,
    };
    Some((gpa, gpa.saturating_add(size)))
}

fn decode_vp(file: &IgvmFile<'_>) -> Vec<JsonVp> {
    let mut out = Vec::new();
    for e in file.headers() {
        let Header::VpContext(vp) = e.header else {
            continue;
        };
        let (kind, fields) = match vp.data {
            VpContextData::Vmsa(page) => {
                let v: Vmsa = zerocopy::transmute!(*page);
                ("vmsa", vmsa_fields(&v))
            }
            VpContextData::NativeX64(c) => (
                "native-x64",
                vec![("context".into(), format!("{:#x?}", c.get()))],
            ),
            VpContextData::Cca(c) => ("cca", vec![("context".into(), format!("{:#x?}", c.get()))]),
            VpContextData::Vbs(v) => (
                "vbs",
                v.registers()
                    .map(|r| {
                        (
                            format!("vtl{} reg {:#x}", r.vtl, r.register_name.get()),
                            format!("{:02x?}", r.register_value),
                        )
                    })
                    .collect(),
            ),
        };
        out.push(JsonVp {
            at: e.at,
            platform: platform_name(vp.platform),
            vp_index: vp.vp_index,
            gpa: vp.gpa,
            kind,
            fields,
        });
    }
    out
}

/// Shows an IGVM file.
pub fn run(bytes: &[u8], json: bool) -> CmdResult {
    let file = IgvmFile::parse(bytes).map_err(|e| format!("invalid IGVM file: {e}"))?;
    let mut directives: BTreeMap<&'static str, Summary> = BTreeMap::new();
    let mut skipped = Vec::new();
    for e in file.headers() {
        if let Header::Skipped(t) = e.header {
            skipped.push((e.at, t.0));
            continue;
        }
        let name = header_type_name(e.header.typ()).unwrap_or("?");
        let s = directives.entry(name).or_default();
        s.count += 1;
        if let Some((a, b)) = gpa_range(&e.header) {
            s.gpa_min = Some(s.gpa_min.map_or(a, |m| m.min(a)));
            s.gpa_end = Some(s.gpa_end.map_or(b, |m| m.max(b)));
        }
        if let Some(t) = page_type(&e.header) {
            *s.page_types.entry(t).or_default() += 1;
        }
    }
    let vps = decode_vp(&file);
    if json {
        let out = JsonIgvm {
            header: file.fixed_header(),
            platforms: file.platforms(),
            headers: file.header_count(),
            skipped,
            directives,
            vp_contexts: vps,
        };
        crate::outln!("{}", to_json(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let h = file.fixed_header();
    crate::outln!(
        "IGVM format version {}, {}, page size {:#x}, {} bytes, checksum {:#010x} (ok)",
        h.format_version,
        h.architecture.name(),
        h.page_size,
        h.total_file_size,
        h.checksum
    );
    crate::outln!(
        "variable headers: {} at {:#x} ({:#x} bytes); file data from {:#x}",
        file.header_count(),
        h.variable_header_offset,
        h.variable_header_size,
        h.data_start()
    );
    crate::outln!("platforms:");
    for p in file.platforms() {
        crate::outln!(
            "  mask {:#x} {:<7} vtl {} version {} shared_gpa_boundary {:#x}",
            p.compatibility_mask,
            platform_name(p.platform_type),
            p.highest_vtl,
            p.platform_version,
            p.shared_gpa_boundary
        );
    }
    if let Ok(p) = file.select(PlatformChoice::Strongest) {
        crate::outln!(
            "selected (strongest, as QEMU): {}",
            platform_name(p.platform_type)
        );
    }
    crate::outln!("headers:");
    for (name, s) in &directives {
        crate::out!("  {name:<28} {:>6}", s.count);
        if let (Some(a), Some(b)) = (s.gpa_min, s.gpa_end) {
            crate::out!("  gpa [{a:#x}, {b:#x})");
        }
        for (t, n) in &s.page_types {
            crate::out!("  {t}: {n}");
        }
        crate::outln!();
    }
    for (at, t) in &skipped {
        crate::outln!("  skipped unknown optional header {t:#x} ({at})");
    }
    for vp in &vps {
        crate::outln!(
            "VP context {} vCPU {} ({}, {}, gpa {:#x}):",
            vp.at,
            vp.vp_index,
            vp.platform,
            vp.kind,
            vp.gpa
        );
        for (k, v) in &vp.fields {
            crate::outln!("  {k:<22} {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
