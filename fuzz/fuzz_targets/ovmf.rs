//! Fuzz the OVMF footer-table and `ASEV` parser, and every launch built on it: no input may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::launch::{Firmware, firmware_digest};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::OvmfImage;

fuzz_target!(|data: &[u8]| {
    let Ok(fw) = OvmfImage::parse(data) else {
        return;
    };
    // A parsed image is fully walkable.
    for e in fw.entries() {
        let _ = (
            e.entry.guid(),
            e.entry.name(),
            e.entry.value().to_string(),
            e.data.len(),
        );
    }
    if let Some(md) = fw.sev_metadata() {
        let _ = md.sections().count();
        let _ = md.check_known_types();
    }
    let _ = (
        fw.sev_es_reset_addr(),
        fw.supports_kernel_hashes(),
        fw.gpa(),
    );
    let _ = firmware_digest(data, &Sha2Pages, NoObserver);
    let pick = data.first().copied().unwrap_or(0) ^ data.len() as u8;
    vmsa_fuzz::launch_everything(&Firmware::Ovmf(fw), pick);
});
