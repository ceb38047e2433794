//! The `krun` VMM type: libkrun's vCPU state against the pages libkrunfw recorded from real
//! libkrun launches (`utils/vmsa.h`: SEV-ES under the legacy init, SNP under the out-of-tree
//! SNP init; neither copies FPU state) and against virtee's `sev` crate (`VMMType::KRUN`), the
//! one measurement tool with a libkrun profile.
use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType, VMSA};
use std::path::Path;
use vmsa_core::arch::RESET_VECTOR;
use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm::VmInit;
use vmsa_core::launch::{LaunchConfig, vcpu_vmsa};
use vmsa_core::reset::VmmType;
use vmsa_core::vmsa::diff;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use zerocopy::IntoBytes;

/// libkrun's AP entry (`RESET_VECTOR_SEV_AP` 0xfff3 in qboot's segment at 0xffff0000).
const KRUN_AP_EIP: u32 = 0xffff_fff3;

fn dump(name: &str) -> Vmsa {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libkrunfw")
        .join(name);
    Vmsa::from_page(&std::fs::read(p).unwrap()).unwrap()
}

fn krun(mode: SevMode, init: VmInit, cpu: u32, eip: u32) -> Vmsa {
    let mut cfg = LaunchConfig::new(mode, 2, CpuSignature(0x800f12), VmmType::Krun);
    cfg.kvm.init = init;
    vcpu_vmsa(&cfg, cpu, eip).unwrap()
}

fn differing(a: &Vmsa, b: &Vmsa) -> Vec<&'static str> {
    diff(a, b).map(|d| d.field.name).collect()
}

/// SEV-ES (libkrun ≤ 1.10: `KVM_SEV_ES_INIT`): both pages byte for byte.
#[test]
fn sev_es_pages_are_libkrunfws() {
    let bsp = krun(SevMode::SevEs, VmInit::Legacy, 0, RESET_VECTOR);
    let ap = krun(SevMode::SevEs, VmInit::Legacy, 1, KRUN_AP_EIP);
    assert_eq!(bsp.as_bytes(), dump("VMSA_BP.bin").as_bytes());
    assert_eq!(ap.as_bytes(), dump("VMSA_AP.bin").as_bytes());
}

/// SNP: the recorded pages came from AMD's out-of-tree SNP host (no FPU sync); under Linux ≥
/// 6.11's `KVM_SEV_INIT2` (libkrun ≥ 1.12) the FPU words libkrun programs are in the page, and
/// nothing else differs.
#[test]
fn snp_pages_are_libkrunfws_with_the_init2_fpu_words() {
    let bsp = krun(SevMode::Snp, VmInit::Init2, 0, RESET_VECTOR);
    let ap = krun(SevMode::Snp, VmInit::Init2, 1, KRUN_AP_EIP);
    for (ours, theirs) in [
        (&bsp, dump("SNP_VMSA_BP.bin")),
        (&ap, dump("SNP_VMSA_AP.bin")),
    ] {
        assert_eq!(differing(ours, &theirs), ["mxcsr", "x87_fcw"]);
        assert_eq!((ours.mxcsr, ours.x87_fcw), (0x1f80, 0x37f));
        assert_eq!((theirs.mxcsr, theirs.x87_fcw), (0, 0));
    }
}

/// The `sev` crate's KRUN pages (for an OVMF launch, the AP at OVMF's reset address): its AP
/// is ours; its BSP lacks RSP, RBP and RSI, because it passes the vCPU count where libkrun's
/// vCPU index belongs (its `build_save_area(…, cpu_num)`), so the BSP takes the AP branch —
/// libkrunfw's own BSP page has them. Under INIT2 the crate also lacks the FPU words.
#[test]
fn the_sev_crates_krun_pages_differ_where_it_is_wrong() {
    let ap_eip = 0x0080_b004u32;
    for (mode, init, features) in [
        (SevMode::SevEs, VmInit::Legacy, 0u64),
        (SevMode::Snp, VmInit::Init2, 1),
    ] {
        let crate_pages = VMSA::new(
            u64::from(ap_eip),
            CpuType::EpycV4,
            VMMType::KRUN,
            Some(2),
            GuestFeatures(features),
        )
        .pages(2)
        .unwrap();
        let theirs: Vec<Vmsa> = crate_pages
            .iter()
            .map(|p| Vmsa::from_page(p).unwrap())
            .collect();
        let bsp = krun(mode, init, 0, RESET_VECTOR);
        let ap = krun(mode, init, 1, ap_eip);
        assert_eq!(
            bsp.sev_features,
            SevFeatures::from_bits_retain(features).bits()
        );
        let fpu: &[&str] = match init {
            VmInit::Init2 => &["mxcsr", "x87_fcw"],
            VmInit::Legacy => &[],
        };
        let mut want_bsp = vec!["rsp", "rbp", "rsi"];
        want_bsp.extend_from_slice(fpu);
        want_bsp.sort_unstable();
        let mut got_bsp = differing(&bsp, &theirs[0]);
        got_bsp.sort_unstable();
        assert_eq!(got_bsp, want_bsp, "{mode:?}");
        let mut got_ap = differing(&ap, &theirs[1]);
        got_ap.sort_unstable();
        assert_eq!(got_ap, fpu, "{mode:?}");
    }
}
