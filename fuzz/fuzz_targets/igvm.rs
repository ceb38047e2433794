//! Fuzz the IGVM reader and everything built on it: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::igvm::vp::IgvmLaunch;
use vmsa_core::igvm::{Header, IgvmFile, PlatformChoice, VpContextData};
use vmsa_core::kvm_model::VmmPath;
use vmsa_core::reset::{CpuSignature, LaunchConfig, SevMode, VmmType};

fuzz_target!(|data: &[u8]| {
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
});
