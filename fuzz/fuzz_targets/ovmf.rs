//! Fuzz the OVMF footer-table and ASEV parser, and everything built on it: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::{CpuSignature, LaunchConfig, SevMode, VmmType, launch_vmsas};

fuzz_target!(|data: &[u8]| {
    let Ok(fw) = OvmfImage::parse(data) else {
        return;
    };
    // A parsed image is fully walkable.
    for e in fw.entries() {
        let _ = (e.entry.guid(), e.entry.name(), e.data.len());
    }
    if let Some(md) = fw.sev_metadata() {
        let _ = md.sections().count();
        let _ = md.check_known_types();
    }
    let _ = (fw.sev_es_reset_addr(), fw.supports_kernel_hashes(), fw.gpa());
    for mode in [SevMode::SevEs, SevMode::Snp] {
        let cfg = LaunchConfig::new(mode, 3, CpuSignature(0x800f12), VmmType::Qemu);
        let _ = launch_vmsas(&fw, &cfg);
    }
});
