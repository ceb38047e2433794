//! The browser page's second module, loaded only when an attestation report is dropped (the
//! preview module keeps its 128 KiB budget): the report decoded as `vmsa report` decodes it, and
//! the launches near the page's own that give its measurement, as `vmsa verify … -- LAUNCH`
//! searches them.
//!
//! The search is `vmsa solve`'s structure on one core and one lane: the firmware pages hashed
//! once, each VMM profile's digest before the VMSAs once, each configuration's distinct VMSA
//! pages hashed once, and every vCPU count a point on one chain of `PAGE_INFO` hashes.

use serde_json::{Value, json};
use vmsa_core::cpu::CPU_TYPES;
use vmsa_core::flags::SevFeatures;
use vmsa_core::launch::{self, Firmware, Launch, LaunchConfig};
use vmsa_core::measure::{ItemKind, NoObserver, Sha2Pages, SnpDigest, sha384};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::page::{PageType, VMSA_GPA};
use vmsa_core::report::Report;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use wasm_bindgen::prelude::*;
use zerocopy_free::as_bytes;

/// An error at the boundary: a message for the page (a JS `Error` on wasm).
#[cfg(target_arch = "wasm32")]
pub type Error = JsError;
/// An error at the boundary: a message for the page.
#[cfg(not(target_arch = "wasm32"))]
pub type Error = String;

fn message(e: impl core::fmt::Display) -> Error {
    #[cfg(target_arch = "wasm32")]
    return JsError::new(&e.to_string());
    #[cfg(not(target_arch = "wasm32"))]
    return e.to_string();
}

mod zerocopy_free {
    /// The VMSA page's bytes.
    pub fn as_bytes(v: &vmsa_core::Vmsa) -> &[u8] {
        v.as_page()
    }
}

/// The report in `bytes` (1184 raw bytes, or hex or base64 text) as JSON: `{fields}` as `vmsa
/// report --json` prints them, `text` as `vmsa report` prints it, the `measurement` in hex, and
/// the CPU signature of its CPUID fields (`cpu_sig`, null before version 3).
#[wasm_bindgen(js_name = decodeReport)]
pub fn decode_report(bytes: &[u8]) -> Result<String, Error> {
    let (raw, _) = vmsa_attest::view::decode_input(bytes).map_err(message)?;
    let report = Report::parse(&raw, None).map_err(message)?;
    let out = json!({
        "fields": vmsa_attest::view::to_json(&report),
        "text": vmsa_attest::view::to_text(&report),
        "measurement": hex(&report.raw.measurement),
        "cpu_sig": vmsa_attest::view::cpu_signature(&report).map(|s| s.0),
    });
    Ok(out.to_string())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SNP launches of the OVMF image `firmware` near the one the page shows (`vcpus`, CPU
/// type `cpu`, VMM profile `vmm`, guest features `features`) whose digest is `measurement`
/// (hex): vCPU counts 1 to twice the given one (at least 8 more), every CPU type (and
/// `report_sig`, the report's CPUID, when not 0), every VMM profile, the features given, 0x1
/// and 0x21. JSON: `{searched, matches: [{vcpus, vcpu_sig, cpu, vmm, guest_features,
/// explanation}]}`, at most 20 matches, the given axes' values first.
#[wasm_bindgen]
pub fn neighbours(
    firmware: &[u8],
    measurement: &str,
    vcpus: u32,
    cpu: &str,
    vmm: &str,
    features: u64,
    report_sig: u32,
) -> Result<String, Error> {
    let target: [u8; 48] = vmsa_core::hex::parse::<48>(measurement.trim())
        .ok_or_else(|| message("the measurement is not 48 bytes of hex"))?;
    let given_sig = CpuSignature::named(cpu).map_err(message)?;
    let given_vmm = VmmType::from_name(vmm).ok_or_else(|| message("unknown VMM profile"))?;
    let fw = Firmware::Ovmf(OvmfImage::parse(firmware).map_err(message)?);
    let Firmware::Ovmf(image) = &fw else {
        return Err(message("not an OVMF image"));
    };
    let n = vcpus.clamp(1, launch::MAX_VCPUS);
    let top = (n * 2).max(n + 8).min(launch::MAX_VCPUS);
    // The given values first, then the rest of each axis.
    let mut sigs: Vec<(CpuSignature, &str)> = vec![(given_sig, cpu)];
    if report_sig != 0 {
        sigs.push((CpuSignature(report_sig), "the report's CPUID"));
    }
    for t in CPU_TYPES {
        if let Ok(s) = CpuSignature::named(t.name) {
            if !sigs.iter().any(|(x, _)| *x == s) {
                sigs.push((s, t.name));
            }
        }
    }
    let mut vmms = vec![given_vmm];
    vmms.extend(VmmType::ALL.into_iter().filter(|v| *v != given_vmm));
    let mut feats = vec![features];
    feats.extend([0x1, 0x21].into_iter().filter(|f| *f != features));
    let (fw_seed, NoObserver) =
        launch::firmware_digest(image.bytes(), &Sha2Pages, NoObserver).map_err(message)?;
    let mut searched = 0u64;
    let mut matches: Vec<Value> = Vec::new();
    for &v in &vmms {
        for &f in &feats {
            for &(sig, name) in &sigs {
                let mut cfg = LaunchConfig::new(SevMode::Snp, top, sig, v);
                cfg.guest_features = SevFeatures::from_bits_retain(f);
                let Ok(l) = Launch::new(&fw, &cfg) else {
                    continue;
                };
                let Ok(Some(seed)) = l.digest_before_vmsas(Some(fw_seed)) else {
                    continue;
                };
                // The distinct pages: up to the shared one, which stands for the rest.
                let distinct = l.shared_vmsa_from().map_or(top, |s| s + 1).min(top);
                let pages: Vec<[u8; 48]> = (0..distinct)
                    .map_while(|c| l.vmsa(c).ok().map(|p| sha384(as_bytes(&p.vmsa))))
                    .collect();
                let mut d = SnpDigest::from_seed(seed);
                for c in 0..top {
                    let Some(page) = pages.get(c as usize).or(pages.last()) else {
                        break;
                    };
                    d.update_with_contents(
                        ItemKind::Vmsa { cpu: c },
                        PageType::VMSA,
                        VMSA_GPA,
                        *page,
                    );
                    searched += 1;
                    if d.ld() == target && matches.len() < 20 {
                        matches.push(explain(
                            c + 1,
                            sig,
                            name,
                            v,
                            f,
                            (n, given_sig, given_vmm, features),
                        ));
                    }
                }
            }
        }
    }
    Ok(json!({ "searched": searched, "matches": matches }).to_string())
}

/// One match, and what differs from the launch shown.
fn explain(
    vcpus: u32,
    sig: CpuSignature,
    cpu: &str,
    vmm: VmmType,
    features: u64,
    given: (u32, CpuSignature, VmmType, u64),
) -> Value {
    let mut diffs = Vec::new();
    if vcpus != given.0 {
        diffs.push(format!("{vcpus} vCPUs, not {}", given.0));
    }
    if sig != given.1 {
        diffs.push(format!("CPU {cpu} ({:#x}), not {:#x}", sig.0, given.1.0));
    }
    if vmm != given.2 {
        diffs.push(format!("VMM {}, not {}", vmm.name(), given.2.name()));
    }
    if features != given.3 {
        diffs.push(format!("guest features {features:#x}, not {:#x}", given.3));
    }
    if diffs.is_empty() {
        diffs.push("the launch shown".into());
    }
    json!({
        "vcpus": vcpus,
        "vcpu_sig": format!("{:#x}", sig.0),
        "cpu": cpu,
        "vmm": vmm.name(),
        "guest_features": format!("{features:#x}"),
        "explanation": format!("the report matches {}", diffs.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_of_six_vcpus_is_found_near_four() {
        let fw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/sev-snp-measure/ovmf_AmdSev_suffix.bin"
        ))
        .unwrap();
        let f = Firmware::Ovmf(OvmfImage::parse(&fw).unwrap());
        let cfg = LaunchConfig::new(
            SevMode::Snp,
            6,
            CpuSignature::named("EPYC-Milan").unwrap(),
            VmmType::Qemu,
        );
        let (d, NoObserver) = Launch::new(&f, &cfg)
            .unwrap()
            .digest(&Sha2Pages, NoObserver)
            .unwrap();
        let out = neighbours(&fw, &hex(d.bytes()), 4, "EPYC-Milan", "qemu", 0x1, 0).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["matches"][0]["explanation"],
            "the report matches 6 vCPUs, not 4"
        );
        assert_eq!(v["matches"][0]["vcpu_sig"], "0xa00f11");
        // Another CPU type: named.
        let out = neighbours(&fw, &hex(d.bytes()), 6, "EPYC-v4", "qemu", 0x1, 0).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["matches"][0]["explanation"]
                .as_str()
                .unwrap()
                .starts_with("the report matches CPU EPYC-Milan (0xa00f11), not 0x800f12"),
            "{v}"
        );
        // Nothing near: no matches, the count searched.
        let out = neighbours(&fw, &"ab".repeat(48), 2, "EPYC-v4", "qemu", 0x1, 0).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["matches"].as_array().unwrap().len(), 0);
        // 10 counts (2 × 2 is less than 2 + 8) × the distinct signatures × every VMM × 2 features.
        let mut sigs: Vec<u32> = CPU_TYPES
            .iter()
            .filter_map(|t| CpuSignature::named(t.name).ok().map(|s| s.0))
            .collect();
        sigs.sort_unstable();
        sigs.dedup();
        assert_eq!(
            v["searched"].as_u64(),
            Some(10 * sigs.len() as u64 * VmmType::ALL.len() as u64 * 2)
        );
    }

    #[test]
    fn a_real_report_decodes_as_vmsa_report_prints_it() {
        let r = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/reports/genoa-v5-oak.report.bin"
        ))
        .unwrap();
        let out = decode_report(&r).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["measurement"]
                .as_str()
                .unwrap()
                .starts_with("c57729018b0a6fb9")
        );
        assert_eq!(v["cpu_sig"], 0xa10f11);
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains("0x188 cpuid              family 0x19 model 0x11 stepping 0x1: Genoa")
        );
        assert!(
            decode_report(b"not a report")
                .unwrap_err()
                .contains("not a report")
        );
    }
}
