//! The core paths that must allocate nothing, checked at run time with a counting global
//! allocator: parsing an IGVM file, extracting its VP contexts, its launch VMSAs and its digests
//! (spec and qemu profiles); parsing an OVMF image, computing its launch VMSAs and its SNP and
//! SEV-ES digests.
//!
//! One test function, so that no other test thread allocates while the counter is read.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System.

mod igvm_common;

use igvm::{IgvmDirectiveHeader as D, IgvmRevision};
use igvm_common::*;
use igvm_defs::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use vmsa_core::igvm::{IgvmFile, PlatformChoice, VpContextData};
use vmsa_core::launch::{Firmware, IgvmProfile, Launch, LaunchConfig};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it
// upholds `GlobalAlloc`'s contract exactly as `System` does; the counter is an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let out = f();
    (ALLOCATIONS.load(Ordering::SeqCst) - before, out)
}

fn igvm_file() -> Vec<u8> {
    igvm_file_with(true)
}

/// 64 data pages and, with `contexts`, four patterned VP contexts (which QEMU would refuse).
fn igvm_file_with(contexts: bool) -> Vec<u8> {
    let mut directives = Vec::new();
    for i in 0..64u64 {
        directives.push(D::PageData {
            gpa: 0x10_0000 + i * 4096,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: vec![i as u8; 4096],
        });
    }
    for vp in (0..4u16).filter(|_| contexts) {
        directives.push(D::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: 1,
            vp_index: vp,
            vmsa: vmsa_with(|o| (o as u8) ^ (vp as u8)),
        });
    }
    build(
        IgvmRevision::V1,
        vec![platform(1, IgvmPlatformType::SEV_SNP, 0)],
        vec![],
        directives,
    )
}

#[test]
fn core_paths_allocate_nothing() {
    let igvm = igvm_file();
    let bare = igvm_file_with(false);
    let (n, rips) = allocations_in(|| {
        let file = IgvmFile::parse(&igvm).unwrap();
        let p = file.select(PlatformChoice::Strongest).unwrap();
        let mut rips = 0u64;
        for (_, vp) in file.vp_contexts(p.compatibility_mask) {
            if let VpContextData::Vmsa(page) = vp.data {
                rips = rips.wrapping_add(u64::from(page[0x178]));
            }
        }
        let fw = Firmware::Igvm { file, platform: p };
        let mut cfg = LaunchConfig::new(SevMode::Snp, 4, CpuSignature(0x800f12), VmmType::Qemu);
        let spec = Launch::new(&fw, &cfg).unwrap();
        let mut vmsa_rips = 0u64;
        for v in spec.vmsas() {
            vmsa_rips = vmsa_rips.wrapping_add(v.unwrap().vmsa.rip);
        }
        let (d, NoObserver) = spec.digest(&Sha2Pages, NoObserver).unwrap();
        // The qemu profile (KVM's VMSAs for every vCPU, last), on the file without contexts.
        let file = IgvmFile::parse(&bare).unwrap();
        let p = file.select(PlatformChoice::Strongest).unwrap();
        let fw = Firmware::Igvm { file, platform: p };
        cfg.igvm.profile = IgvmProfile::Qemu;
        let qemu = Launch::new(&fw, &cfg).unwrap();
        let (q, NoObserver) = qemu.digest(&Sha2Pages, NoObserver).unwrap();
        assert_ne!(d, q);
        (rips, vmsa_rips, d.bytes()[0])
    });
    assert_eq!(
        n, 0,
        "IGVM parse + VP contexts + digest allocated {n} times"
    );
    assert_ne!(rips, (0, 0, 0));

    let image = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/sev-snp-measure/ovmf_AmdSev_suffix.bin"),
    )
    .unwrap();
    let (n, digests) = allocations_in(|| {
        let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
        let cfg = LaunchConfig::new(SevMode::Snp, 64, CpuSignature(0x800f12), VmmType::Qemu);
        let snp = Launch::new(&fw, &cfg).unwrap();
        assert_eq!(snp.vmsas().filter(|v| v.is_ok()).count(), 64);
        let (snp, NoObserver) = snp.digest(&Sha2Pages, NoObserver).unwrap();
        let es_cfg = LaunchConfig::new(SevMode::SevEs, 64, CpuSignature(0x800f12), VmmType::Qemu);
        let es = Launch::new(&fw, &es_cfg).unwrap();
        let (es, NoObserver) = es.digest(&Sha2Pages, NoObserver).unwrap();
        (snp, es)
    });
    assert_eq!(
        n, 0,
        "OVMF parse + 64 launch VMSAs + digests allocated {n} times"
    );
    assert_ne!(digests.0.bytes(), digests.1.bytes());
}
