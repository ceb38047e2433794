//! Fuzz the IGVM reader and every launch built on it: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::igvm::{Header, IgvmFile, PlatformChoice, VpContextData};
use vmsa_core::launch::Firmware;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Random mutations almost never keep the CRC-32 right; fix the checksum (and the total
    // size) so the fuzzer also reaches the variable headers.
    if let Some(fixed) = vmsa_fuzz::with_fixed_checksum(data) {
        check(&fixed);
    }
});

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
        for l in vmsa_core::igvm::load::loads(&file, p.compatibility_mask, 3)
            .into_iter()
            .flatten()
        {
            let _ = l;
        }
        let _ = vmsa_core::igvm::load::extent(&file, p.compatibility_mask);
        let fw = Firmware::Igvm {
            file: file.clone(),
            platform: *p,
        };
        vmsa_fuzz::launch_everything(&fw, data.len() as u8);
    }
    let _ = file.select(PlatformChoice::Strongest);
}
