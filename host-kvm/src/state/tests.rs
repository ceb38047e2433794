//! `VcpuState` against the reset state, forced and lost fields, and AMD SVM's read-back.

use super::*;
use vmsa_core::SegmentAttributes;
use vmsa_core::arch::{FCW_RESET, PAT_RESET};

fn reset_like() -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    v.cs = VmcbSegment::new(
        0xf000,
        SegmentAttributes::CODE_16BIT_RESET,
        0xffff,
        0xffff_0000,
    );
    for s in [&mut v.ds, &mut v.es, &mut v.fs, &mut v.gs, &mut v.ss] {
        *s = VmcbSegment::new(0, SegmentAttributes::DATA_16BIT_RESET, 0xffff, 0);
    }
    v.ldtr = VmcbSegment::new(0, SegmentAttributes::LDT_RESET, 0xffff, 0);
    v.tr = VmcbSegment::new(0, SegmentAttributes::TSS32_BUSY_RESET, 0xffff, 0);
    v.gdtr.limit = 0xffff;
    v.idtr.limit = 0xffff;
    v.rip = 0xfff0;
    v.rflags = 2;
    v.rdx = 0x800f12;
    v.cr0 = 0x10;
    v.dr6 = DR6_RESET;
    v.dr7 = DR7_RESET;
    v.g_pat = PAT_RESET;
    v.xcr0 = XCR0_RESET;
    v.x87_fcw = FCW_RESET;
    v.mxcsr = MXCSR_RESET;
    v
}

#[test]
fn reset_state_is_exact_on_a_minimal_vcpu() {
    let v = reset_like();
    let (state, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::minimal());
    assert!(fid.is_exact(), "{fid}");
    assert_eq!(state.msr_count, 9);
    assert!(state.xcrs.is_none());
    assert_eq!(state.to_vmsa().unwrap(), v);
    assert_eq!(fid.expected(), &v);
}

#[test]
fn forced_fields_say_to_what() {
    let mut v = reset_like();
    v.efer = Efer::SVME.bits() | Efer::LME.bits();
    v.rflags = 0;
    v.cpl = 3;
    let (state, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::minimal());
    assert!(fid.is_exact(), "forced fields are not losses: {fid}");
    assert_eq!(
        fid.status(FieldId::EFER),
        Some(FieldStatus::Forced {
            value: Efer::LME.bits()
        })
    );
    assert_eq!(
        fid.status(FieldId::RFLAGS),
        Some(FieldStatus::Forced { value: 2 })
    );
    assert_eq!(
        fid.status(FieldId::CPL),
        Some(FieldStatus::Forced { value: 0 })
    );
    assert_eq!(state.sregs.efer, Efer::LME.bits());
    assert_eq!(&state.to_vmsa().unwrap(), fid.expected());
}

#[test]
fn losses_are_named() {
    let mut v = reset_like();
    v.gdtr.attrib = SegmentAttributes(0x82);
    v.idtr.limit = 0x1_0000;
    v.xcr0 = 7;
    v.x87_ftw = 0x100;
    v.x87_ds = 0x10;
    v.vmpl = 1;
    v.cs.attrib = SegmentAttributes(0x109b);
    v.tsc_aux = 5;
    v.reserved_670[0] = 1;
    v.sev_features = 1;
    let (state, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::minimal());
    let lost: Vec<_> = fid.not_expressible().map(|(f, _)| f.name).collect();
    assert_eq!(
        lost,
        [
            "cs",
            "gdtr",
            "idtr",
            "vmpl",
            "tsc_aux",
            "xcr0",
            "x87_ftw",
            "x87_ds",
            "reserved_670"
        ]
    );
    assert_eq!(
        fid.status(FieldId::SEV_FEATURES),
        Some(FieldStatus::VmLevel)
    );
    assert!(!fid.is_exact());
    // What the vCPU gets instead is what `expected` says.
    assert_eq!(&state.to_vmsa().unwrap(), fid.expected());
}

#[test]
fn xcr0_with_xsave() {
    let mut v = reset_like();
    v.xcr0 = 3;
    let (state, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::full());
    assert!(fid.is_exact(), "{fid}");
    assert_eq!(state.xcrs.unwrap().xcrs[0].value, 3);
    v.xcr0 = 5; // AVX without SSE
    let (_, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::full());
    assert!(matches!(
        fid.status(FieldId::XCR0),
        Some(FieldStatus::NotExpressible { .. })
    ));
}

/// What an AMD SVM KVM stores for `state`'s segments and reports back through
/// `KVM_GET_SREGS` (the kernel's `svm_set_segment` then `svm_get_segment`, as the core
/// models them), everything else as set.
fn through_svm(state: &VcpuState) -> VcpuState {
    use vmsa_core::kvm::readback::{SegmentRegister as R, svm_get_segment, svm_set_segment};
    let mut out = state.clone();
    let s = &state.sregs;
    let (_, cpl) = svm_set_segment(R::Ss, &seg_from_kvm(&s.ss));
    let cpl = cpl.unwrap_or(0);
    for (reg, src, dst) in [
        (R::Es, &s.es, &mut out.sregs.es),
        (R::Cs, &s.cs, &mut out.sregs.cs),
        (R::Ss, &s.ss, &mut out.sregs.ss),
        (R::Ds, &s.ds, &mut out.sregs.ds),
        (R::Fs, &s.fs, &mut out.sregs.fs),
        (R::Gs, &s.gs, &mut out.sregs.gs),
        (R::Ldtr, &s.ldt, &mut out.sregs.ldt),
        (R::Tr, &s.tr, &mut out.sregs.tr),
    ] {
        let (vmcb, _) = svm_set_segment(reg, &seg_from_kvm(src));
        *dst = seg_to_kvm(&svm_get_segment(reg, &vmcb, cpl));
    }
    out
}

#[test]
fn svm_read_back_of_kvm_reset_segments() {
    use vmsa_core::kvm::readback::{SregsReadBack, read_back};
    let v = vmsa_core::reset::kvm_reset();
    let (state, fid) = VcpuState::from_vmsa(&v, &VcpuCaps::minimal());
    assert!(fid.is_exact(), "{fid}");
    let back = through_svm(&state).to_vmsa().unwrap();
    assert_eq!(back, read_back(SregsReadBack::Svm, fid.expected()));
    assert_eq!(
        back.ds.attrib.bits(),
        0x93,
        "svm_get_segment forces DS accessed"
    );
    assert_eq!(fid.expected().ds.attrib.bits(), 0x92, "the VMCB holds 0x92");
}

proptest::proptest! {
    /// Whatever the page, the state the ioctls get reads back as `ProgramReport::expected`, and
    /// on AMD SVM as the core's read-back model of it.
    #[test]
    fn round_trip_is_expected(v in vmsa_core::strategy::vmsa()) {
        use vmsa_core::kvm::readback::{SregsReadBack, read_back};
        for caps in [VcpuCaps::minimal(), VcpuCaps::full()] {
            let (state, fid) = VcpuState::from_vmsa(&v, &caps);
            proptest::prop_assert_eq!(&state.to_vmsa().unwrap(), fid.expected());
            proptest::prop_assert_eq!(
                through_svm(&state).to_vmsa().unwrap(),
                read_back(SregsReadBack::Svm, fid.expected())
            );
        }
    }
}
