//! Fuzz the IGVM reader and everything built on it: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::igvm::fixed::checksum;
use vmsa_core::igvm::vp::IgvmLaunch;
use vmsa_core::igvm::{Header, IgvmFile, PlatformChoice, VpContextData};
use vmsa_core::kvm_model::VmmPath;
use vmsa_core::reset::{CpuSignature, LaunchConfig, SevMode, VmmType};

fuzz_target!(|data: &[u8]| {
    check(data);
    // Random mutations almost never keep the CRC-32 right; fix the checksum (and the total
    // size) so the fuzzer also reaches the variable headers.
    if let Some(fixed) = with_fixed_checksum(data) {
        check(&fixed);
    }
});

fn with_fixed_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let mut b = data.to_vec();
    let word = |b: &[u8], at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let fixed_size = if word(&b, 4)? == 2 { 32 } else { 24 };
    let len = u32::try_from(b.len()).ok()?;
    b.get_mut(16..20)?.copy_from_slice(&len.to_le_bytes());
    let (off, size) = (word(&b, 8)? as usize, word(&b, 12)? as usize);
    let crc = checksum(b.get(..fixed_size)?, b.get(off..off.checked_add(size)?)?);
    b.get_mut(20..24)?.copy_from_slice(&crc.to_le_bytes());
    Some(b)
}

fn check(data: &[u8]) {
    let Ok(file) = IgvmFile::parse(data) else {
        return;
    };
    // A parsed file is fully walkable, and the walk sees every header.
    assert_eq!(file.headers().count() as u32, file.header_count());
    for e in file.headers() {
        let _ = (e.header.typ(), e.header.compatibility_mask());
        match e.header {
            Header::SnpIdBlock(b) => {
                let _ = b.ld();
            }
            Header::VpContext(vp) => match vp.data {
                VpContextData::Vbs(v) => {
                    let _ = v.registers().count();
                }
                VpContextData::NativeX64(c) => {
                    let _ = c.get();
                }
                _ => {}
            },
            _ => {}
        }
    }
    for p in file.platforms() {
        let _ = file.directives(p.compatibility_mask).count();
        let _ = file.initializations(p.compatibility_mask).count();
        let cfg = LaunchConfig::new(SevMode::Snp, 3, CpuSignature(0x800f12), VmmType::Qemu);
        if let Ok(launch) = IgvmLaunch::new(&file, *p, cfg, VmmPath::Qemu) {
            for entry in launch.entries().flatten() {
                let _ = launch.fidelity(&entry).is_exact();
            }
            let _ = launch.check_strict();
        }
    }
    let _ = file.select(PlatformChoice::Strongest);
}
