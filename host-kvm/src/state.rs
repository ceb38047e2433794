//! A VMSA as the KVM vCPU ioctls carry it, and back: pure conversions, no ioctls.
//!
//! [`VcpuState::from_vmsa`] splits a [`Vmsa`] into the six structures that the vCPU ioctls take
//! (`KVM_SET_SREGS`, `KVM_SET_MSRS`, `KVM_SET_DEBUGREGS`, `KVM_SET_XCRS`, `KVM_SET_FPU`,
//! `KVM_SET_REGS`) and says, field by field, what became of each VMSA field ([`Fidelity`]).
//! [`VcpuState::to_vmsa`] is the way back. For every field whose status is
//! [`FieldStatus::Programmed`], [`FieldStatus::Implicit`] or [`FieldStatus::Forced`],
//! `to_vmsa(from_vmsa(v))` holds exactly [`Fidelity::expected`] — the unit tests check it here,
//! and the integration tests check the same through a real `/dev/kvm`.
//!
//! Sources: Linux `arch/x86/kvm/x86.c` (`__set_sregs_common`, `__set_regs`,
//! `kvm_vcpu_ioctl_x86_set_debugregs`, `__kvm_set_xcr`, `kvm_arch_vcpu_ioctl_set_fpu`), uapi
//! `arch/x86/include/uapi/asm/kvm.h` (v6.15 as bound by kvm-bindings 0.14).

use crate::fidelity::{Fidelity, FieldId, FieldStatus};
use crate::field;
use kvm_bindings::{
    kvm_debugregs, kvm_dtable, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs,
    kvm_xsave,
};
use vmsa_core::Vmsa;
use vmsa_core::flags::{Efer, Rflags};
use vmsa_core::kvm_readback::SregsReadBack;
use vmsa_core::segment::{KvmSegment, SegmentError, VmcbSegment};
use zerocopy::{FromZeros, IntoBytes};

/// An MSR that the VMSA carries, with the VMSA field it lives in.
#[derive(Debug, Clone, Copy)]
pub struct VmsaMsr {
    /// The MSR index.
    pub index: u32,
    /// The VMSA field name (as in [`vmsa_core::vmsa::FIELDS`]).
    pub field: &'static str,
    /// Its index in [`vmsa_core::vmsa::FIELDS`].
    pub field_id: FieldId,
    /// Reads the field.
    get: fn(&Vmsa) -> u64,
    /// Writes the field.
    set: fn(&mut Vmsa, u64),
}

macro_rules! vmsa_msrs {
    ($($(#[$doc:meta])* $name:ident = $index:literal => $field:ident),* $(,)?) => {
        /// MSR indices (AMD APM Vol. 2 rev. 3.42 Appendix A; Linux `msr-index.h`).
        pub mod msr {
            $( $(#[$doc])* pub const $name: u32 = $index; )*
        }
        /// Every MSR the VMSA holds, in the order they are written with `KVM_SET_MSRS`.
        pub const VMSA_MSRS: &[VmsaMsr] = &[
            $( VmsaMsr {
                index: $index,
                field: stringify!($field),
                field_id: FieldId::of(stringify!($field)),
                get: |v| u64::from(v.$field),
                set: |v, x| v.$field = x as _,
            }, )*
        ];
    };
}

vmsa_msrs! {
    /// `MSR_IA32_CR_PAT`.
    PAT = 0x277 => g_pat,
    /// `MSR_STAR`.
    STAR = 0xc000_0081 => star,
    /// `MSR_LSTAR`.
    LSTAR = 0xc000_0082 => lstar,
    /// `MSR_CSTAR`.
    CSTAR = 0xc000_0083 => cstar,
    /// `MSR_SYSCALL_MASK` (SFMASK).
    SFMASK = 0xc000_0084 => sfmask,
    /// `MSR_KERNEL_GS_BASE`.
    KERNEL_GS_BASE = 0xc000_0102 => kernel_gs_base,
    /// `MSR_IA32_SYSENTER_CS`.
    SYSENTER_CS = 0x174 => sysenter_cs,
    /// `MSR_IA32_SYSENTER_ESP`.
    SYSENTER_ESP = 0x175 => sysenter_esp,
    /// `MSR_IA32_SYSENTER_EIP`.
    SYSENTER_EIP = 0x176 => sysenter_eip,
    /// `MSR_IA32_DEBUGCTLMSR`.
    DEBUGCTL = 0x1d9 => dbgctl,
    /// `MSR_IA32_SPEC_CTRL`.
    SPEC_CTRL = 0x48 => spec_ctrl,
    /// `MSR_TSC_AUX` (32 bits in the VMSA).
    TSC_AUX = 0xc000_0103 => tsc_aux,
    /// `MSR_IA32_XSS`.
    XSS = 0xda0 => xss,
    /// `MSR_IA32_U_CET`.
    U_CET = 0x6a0 => u_cet,
    /// `MSR_IA32_S_CET`.
    S_CET = 0x6a2 => s_cet,
    /// `MSR_IA32_PL0_SSP`.
    PL0_SSP = 0x6a4 => vmpl0_ssp,
    /// `MSR_IA32_PL1_SSP`.
    PL1_SSP = 0x6a5 => vmpl1_ssp,
    /// `MSR_IA32_PL2_SSP`.
    PL2_SSP = 0x6a6 => vmpl2_ssp,
    /// `MSR_IA32_PL3_SSP`.
    PL3_SSP = 0x6a7 => vmpl3_ssp,
    /// `MSR_IA32_INT_SSP_TAB`.
    INT_SSP_TAB = 0x6a8 => isst_addr,
}

/// Most MSRs a [`VcpuState`] carries.
pub const MAX_MSRS: usize = 20;
const _: () = assert!(VMSA_MSRS.len() == MAX_MSRS);

/// What a vCPU can hold, found once per VM (see `crate::vm::Vm::caps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuCaps {
    /// `KVM_CAP_XCRS` and XSAVE in the guest CPUID: XCR0 can be set with `KVM_SET_XCRS`.
    pub xcrs: bool,
    /// The XCR0 bits the guest CPUID allows (leaf 0xD), when [`VcpuCaps::xcrs`].
    pub supported_xcr0: u64,
    /// The VMSA MSRs that `KVM_GET_MSR_INDEX_LIST` lists and the guest CPUID allows, in
    /// [`VMSA_MSRS`] order.
    pub msrs: Vec<u32>,
    /// `KVM_CAP_XSAVE` with a 4 KiB state: the x87/SSE state goes through `KVM_SET_XSAVE`,
    /// which (unlike `KVM_SET_FPU`) carries MXCSR.
    pub xsave: bool,
    /// The local APIC base to program (`KVM_SET_SREGS` takes it; the VMSA has none).
    pub apic_base: u64,
    /// How `KVM_GET_SREGS` reports the segments this KVM holds (the core's read-back model:
    /// exactly as set, or with AMD SVM's `svm_get_segment` quirks).
    pub read_back: SregsReadBack,
}

impl VcpuCaps {
    /// A vCPU with every VMSA MSR and XSAVE up to AVX: what a full SVM host offers.
    pub fn full() -> Self {
        Self {
            xcrs: true,
            supported_xcr0: 0x7,
            msrs: VMSA_MSRS.iter().map(|m| m.index).collect(),
            xsave: true,
            apic_base: APIC_BASE_DEFAULT,
            read_back: SregsReadBack::Exact,
        }
    }

    /// The most basic x86-64 vCPU: no XSAVE, only the MSRs every KVM has.
    pub fn minimal() -> Self {
        Self {
            xcrs: false,
            supported_xcr0: 1,
            msrs: vec![
                msr::PAT,
                msr::STAR,
                msr::LSTAR,
                msr::CSTAR,
                msr::SFMASK,
                msr::KERNEL_GS_BASE,
                msr::SYSENTER_CS,
                msr::SYSENTER_ESP,
                msr::SYSENTER_EIP,
            ],
            xsave: false,
            apic_base: APIC_BASE_DEFAULT,
            read_back: SregsReadBack::Exact,
        }
    }
}

/// `APIC_DEFAULT_PHYS_BASE | MSR_IA32_APICBASE_ENABLE`: the APIC base KVM gives an AP at reset
/// (`kvm_lapic_reset`); the BSP also has `MSR_IA32_APICBASE_BSP` (bit 8).
pub const APIC_BASE_DEFAULT: u64 = 0xfee0_0000 | (1 << 11);
/// `MSR_IA32_APICBASE_BSP`.
pub const APIC_BASE_BSP: u64 = 1 << 8;

/// `DR6_ACTIVE_LOW`/`DR7_FIXED_1`: bits 63:32 of DR6 and DR7 must be zero
/// (`kvm_dr6_valid`, `kvm_dr7_valid`).
const DR_HIGH: u64 = 0xffff_ffff_0000_0000;
/// MXCSR bits 31:16 are reserved (`MXCSR_MASK` 0xffff on every CPU KVM runs on); a value with
/// them set would fault the host's FXRSTOR, so it is refused.
const MXCSR_RESERVED: u32 = 0xffff_0000;

/// The register state of one vCPU as the KVM vCPU ioctls take it: one structure per ioctl.
pub struct VcpuState {
    /// `KVM_SET_REGS`.
    pub regs: kvm_regs,
    /// `KVM_SET_SREGS`.
    pub sregs: kvm_sregs,
    /// The x87/SSE state in `KVM_SET_FPU` form (used when `xsave` is `None`).
    pub fpu: kvm_fpu,
    /// `KVM_SET_XSAVE`: the same x87/SSE state plus MXCSR and, on a vCPU with AVX, the upper YMM
    /// halves (the standard, non-compacted format).
    pub xsave: Option<Box<kvm_xsave>>,
    /// `KVM_SET_DEBUGREGS`.
    pub debugregs: kvm_debugregs,
    /// `KVM_SET_XCRS`, when the vCPU has XSAVE.
    pub xcrs: Option<kvm_xcrs>,
    /// `KVM_SET_MSRS` entries (index, value), `msr_count` of them.
    pub msrs: [kvm_msr_entry; MAX_MSRS],
    /// How many entries of `msrs` are used.
    pub msr_count: usize,
}

impl Clone for VcpuState {
    fn clone(&self) -> Self {
        // `kvm_xsave` ends in a flexible array member, so it is not `Clone`; its 4 KiB region is.
        let xsave = self.xsave.as_ref().map(|x| {
            let mut c = Box::new(kvm_xsave::default());
            c.region = x.region;
            c
        });
        Self {
            regs: self.regs,
            sregs: self.sregs,
            fpu: self.fpu,
            xsave,
            debugregs: self.debugregs,
            xcrs: self.xcrs,
            msrs: self.msrs,
            msr_count: self.msr_count,
        }
    }
}

impl core::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VcpuState")
            .field("rip", &format_args!("{:#x}", self.regs.rip))
            .field("cs", &format_args!("{:#x}", self.sregs.cs.base))
            .field("msr_count", &self.msr_count)
            .finish_non_exhaustive()
    }
}

/// A [`VcpuState`] read back from KVM could not be turned into a VMSA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadBackError {
    /// KVM reported a segment whose attributes the VMSA cannot hold.
    #[error("KVM reported segment {segment} that a VMSA cannot hold: {source}")]
    Segment {
        /// The segment register.
        segment: &'static str,
        /// Why.
        source: SegmentError,
    },
}

pub(crate) fn seg_to_kvm(s: &KvmSegment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present,
        dpl: s.dpl,
        db: s.db,
        s: s.s,
        l: s.l,
        g: s.g,
        avl: s.avl,
        unusable: s.unusable,
        padding: 0,
    }
}

pub(crate) fn seg_from_kvm(s: &kvm_segment) -> KvmSegment {
    KvmSegment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present,
        dpl: s.dpl,
        db: s.db,
        s: s.s,
        l: s.l,
        g: s.g,
        avl: s.avl,
        unusable: s.unusable,
    }
}

/// The ten segment registers: VMSA field name, VMSA accessor, `kvm_sregs` accessor.
macro_rules! for_each_segment {
    ($m:ident) => {
        $m!("es", es, es);
        $m!("cs", cs, cs);
        $m!("ss", ss, ss);
        $m!("ds", ds, ds);
        $m!("fs", fs, fs);
        $m!("gs", gs, gs);
        $m!("ldtr", ldtr, ldt);
        $m!("tr", tr, tr);
    };
}

impl VcpuState {
    /// Splits `vmsa` into the vCPU ioctl structures, and reports what happens to every field.
    ///
    /// Never fails: a field the ioctls cannot carry gets the value the vCPU will hold instead
    /// (its reset value), and its status says why. Callers that must not lose anything check
    /// [`Fidelity::is_exact`] (strict mode) before touching a vCPU.
    pub fn from_vmsa(vmsa: &Vmsa, caps: &VcpuCaps) -> (Self, Fidelity) {
        let mut fid = Fidelity::new(vmsa);
        let mut sregs = kvm_sregs::default();

        // Segments: `VmcbSegment::to_kvm` is lossless or refuses (reserved attribute bits).
        macro_rules! seg {
            ($name:literal, $v:ident, $k:ident) => {
                match vmsa.$v.to_kvm() {
                    Ok(s) => {
                        sregs.$k = seg_to_kvm(&s);
                        fid.set(field!($name), FieldStatus::Programmed);
                    }
                    Err(e) => {
                        sregs.$k = seg_to_kvm(&VmcbSegment::default().to_kvm().unwrap_or_default());
                        fid.mark_lost(field!($name), segment_reason(e));
                    }
                }
            };
        }
        for_each_segment!(seg);

        // GDTR/IDTR: `struct kvm_dtable` has a base and a 16-bit limit, nothing else.
        macro_rules! dtable {
            ($name:literal, $v:ident, $k:ident) => {{
                let s = &vmsa.$v;
                match u16::try_from(s.limit) {
                    Ok(limit) if s.selector == 0 && s.attrib.bits() == 0 => {
                        sregs.$k = kvm_dtable { base: s.base, limit, padding: [0; 3] };
                        fid.set(field!($name), FieldStatus::Programmed);
                    }
                    Ok(limit) => {
                        sregs.$k = kvm_dtable { base: s.base, limit, padding: [0; 3] };
                        let held = VmcbSegment::new(0, Default::default(), u32::from(limit), s.base);
                        fid.not_expressible_as(
                            field!($name),
                            "struct kvm_dtable carries only base and limit; selector and attributes are lost (QEMU's check_vmsa_supported accepts and drops them)",
                            zerocopy::IntoBytes::as_bytes(&held),
                        );
                    }
                    Err(_) => {
                        sregs.$k = kvm_dtable { base: s.base, limit: 0xffff, padding: [0; 3] };
                        let held = VmcbSegment::new(0, Default::default(), 0xffff, s.base);
                        fid.not_expressible_as(
                            field!($name),
                            "limit above 0xffff: struct kvm_dtable has a 16-bit limit",
                            zerocopy::IntoBytes::as_bytes(&held),
                        );
                    }
                }
            }};
        }
        dtable!("gdtr", gdtr, gdt);
        dtable!("idtr", idtr, idt);

        // CPL: KVM has no CPL register; SVM and VMX both derive it from SS.DPL
        // (`svm_set_segment`: `if (seg == VCPU_SREG_SS) svm->vmcb->save.cpl = var->dpl`).
        let ss_dpl = sregs.ss.dpl;
        if vmsa.cpl == ss_dpl {
            fid.set(field!("cpl"), FieldStatus::Implicit);
        } else {
            fid.set(
                field!("cpl"),
                FieldStatus::Forced {
                    value: u64::from(ss_dpl),
                },
            );
        }

        sregs.cr0 = vmsa.cr0;
        sregs.cr2 = vmsa.cr2;
        sregs.cr3 = vmsa.cr3;
        sregs.cr4 = vmsa.cr4;
        for f in [field!("cr0"), field!("cr2"), field!("cr3"), field!("cr4")] {
            fid.set(f, FieldStatus::Programmed);
        }
        // EFER.SVME never goes through KVM_SET_SREGS: since Linux commit 184bd464bdb6 ("KVM: x86:
        // Check EFER validity on KVM_SET_SREGS*") it is refused unless the guest CPUID has SVM,
        // and an SVM host adds it to the VMCB (and so to the VMSA) by itself (`svm_set_efer`).
        let efer = vmsa.efer & !Efer::SVME.bits();
        sregs.efer = efer;
        fid.set(
            field!("efer"),
            if efer == vmsa.efer {
                FieldStatus::Programmed
            } else {
                FieldStatus::Forced { value: efer }
            },
        );
        sregs.apic_base = caps.apic_base;

        // GPRs, RIP, RFLAGS. `__set_regs` ORs in RFLAGS bit 1 (X86_EFLAGS_FIXED).
        let regs = kvm_regs {
            rax: vmsa.rax,
            rbx: vmsa.rbx,
            rcx: vmsa.rcx,
            rdx: vmsa.rdx,
            rsi: vmsa.rsi,
            rdi: vmsa.rdi,
            rsp: vmsa.rsp,
            rbp: vmsa.rbp,
            r8: vmsa.r8,
            r9: vmsa.r9,
            r10: vmsa.r10,
            r11: vmsa.r11,
            r12: vmsa.r12,
            r13: vmsa.r13,
            r14: vmsa.r14,
            r15: vmsa.r15,
            rip: vmsa.rip,
            rflags: vmsa.rflags | Rflags::FIXED.bits(),
        };
        for f in [
            field!("rax"),
            field!("rbx"),
            field!("rcx"),
            field!("rdx"),
            field!("rsi"),
            field!("rdi"),
            field!("rsp"),
            field!("rbp"),
            field!("r8"),
            field!("r9"),
            field!("r10"),
            field!("r11"),
            field!("r12"),
            field!("r13"),
            field!("r14"),
            field!("r15"),
            field!("rip"),
        ] {
            fid.set(f, FieldStatus::Programmed);
        }
        let rflags = regs.rflags;
        fid.set(
            field!("rflags"),
            if rflags == vmsa.rflags {
                FieldStatus::Programmed
            } else {
                FieldStatus::Forced { value: rflags }
            },
        );

        // Debug registers: KVM_SET_DEBUGREGS refuses DR6/DR7 with bits 63:32 set.
        let mut debugregs = kvm_debugregs {
            db: [vmsa.dr0, vmsa.dr1, vmsa.dr2, vmsa.dr3],
            dr6: vmsa.dr6,
            dr7: vmsa.dr7,
            ..Default::default()
        };
        for f in [field!("dr0"), field!("dr1"), field!("dr2"), field!("dr3")] {
            fid.set(f, FieldStatus::Programmed);
        }
        if vmsa.dr6 & DR_HIGH != 0 {
            debugregs.dr6 = DR6_RESET;
            fid.mark_lost(
                field!("dr6"),
                "bits 63:32 of DR6 are reserved; KVM_SET_DEBUGREGS refuses them",
            );
        } else {
            fid.set(field!("dr6"), FieldStatus::Programmed);
        }
        if vmsa.dr7 & DR_HIGH != 0 {
            debugregs.dr7 = DR7_RESET;
            fid.mark_lost(
                field!("dr7"),
                "bits 63:32 of DR7 are reserved; KVM_SET_DEBUGREGS refuses them",
            );
        } else {
            fid.set(field!("dr7"), FieldStatus::Programmed);
        }

        // XCR0: with XSAVE in the guest CPUID, KVM_SET_XCRS; without, the vCPU keeps its reset
        // value XFEATURE_MASK_FP (1) (`kvm_vcpu_reset`), which is all a VMSA may then say.
        let xcrs = if caps.xcrs {
            let ok = vmsa.xcr0 & 1 == 1
                && vmsa.xcr0 & !caps.supported_xcr0 == 0
                // AVX (bit 2) needs SSE (bit 1): `__kvm_set_xcr`.
                && (vmsa.xcr0 & 4 == 0 || vmsa.xcr0 & 2 != 0);
            let value = if ok {
                fid.set(field!("xcr0"), FieldStatus::Programmed);
                vmsa.xcr0
            } else {
                fid.mark_lost(
                    field!("xcr0"),
                    "KVM_SET_XCRS accepts only XCR0 values with x87 set, AVX only with SSE, and bits the guest CPUID (leaf 0xD) allows",
                );
                1
            };
            let mut x = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            x.xcrs[0].xcr = 0;
            x.xcrs[0].value = value;
            Some(x)
        } else {
            if vmsa.xcr0 == 1 {
                fid.set(field!("xcr0"), FieldStatus::Implicit);
            } else {
                fid.mark_lost(
                    field!("xcr0"),
                    "the vCPU has no XSAVE (not in the guest CPUID KVM offers), so XCR0 stays 1 (x87 only)",
                );
            }
            None
        };

        // MSRs: every VMSA MSR the vCPU has is written, zero or not, so that a reset really
        // re-applies the state; an MSR the vCPU lacks is fine only when the VMSA has it zero.
        let mut msrs = [kvm_msr_entry::default(); MAX_MSRS];
        let mut msr_count = 0;
        for m in VMSA_MSRS {
            let value = (m.get)(vmsa);
            if caps.msrs.contains(&m.index) {
                if let Some(e) = msrs.get_mut(msr_count) {
                    *e = kvm_msr_entry {
                        index: m.index,
                        reserved: 0,
                        data: value,
                    };
                    msr_count += 1;
                }
                fid.set(m.field_id, FieldStatus::Programmed);
            } else if value != 0 {
                fid.mark_lost(m.field_id, "the vCPU does not have this MSR (not in KVM_GET_MSR_INDEX_LIST or not allowed by the guest CPUID)");
            }
        }

        // x87 and SSE state: KVM_SET_FPU (`kvm_arch_vcpu_ioctl_set_fpu` writes the FXSAVE image).
        let mut fpu = kvm_fpu {
            fcw: vmsa.x87_fcw,
            fsw: vmsa.x87_fsw,
            last_opcode: vmsa.x87_fop,
            last_ip: vmsa.x87_rip,
            last_dp: vmsa.x87_dp,
            ..Default::default()
        };
        for f in [
            field!("x87_fcw"),
            field!("x87_fsw"),
            field!("x87_fop"),
            field!("x87_rip"),
            field!("x87_dp"),
            field!("fpreg_x87"),
            field!("fpreg_xmm"),
        ] {
            fid.set(f, FieldStatus::Programmed);
        }
        match u8::try_from(vmsa.x87_ftw) {
            Ok(t) => {
                fpu.ftwx = t;
                fid.set(field!("x87_ftw"), FieldStatus::Programmed);
            }
            Err(_) => fid.mark_lost(
                field!("x87_ftw"),
                "the VMSA holds the abridged (FXSAVE) tag byte; bits 15:8 cannot be set (struct kvm_fpu ftwx is a u8)",
            ),
        }
        // KVM_SET_FPU/KVM_GET_FPU do not carry MXCSR (`kvm_arch_vcpu_ioctl_set_fpu` copies every
        // field but it); KVM_SET_XSAVE does. Without XSAVE the vCPU keeps its reset MXCSR.
        if vmsa.mxcsr & MXCSR_RESERVED != 0 {
            fpu.mxcsr = MXCSR_RESET;
            fid.mark_lost(
                field!("mxcsr"),
                "MXCSR bits 31:16 are reserved; restoring them faults",
            );
        } else if caps.xsave {
            fpu.mxcsr = vmsa.mxcsr;
            fid.set(field!("mxcsr"), FieldStatus::Programmed);
        } else if vmsa.mxcsr == MXCSR_RESET {
            fpu.mxcsr = MXCSR_RESET;
            fid.set(field!("mxcsr"), FieldStatus::Implicit);
        } else {
            fpu.mxcsr = MXCSR_RESET;
            fid.mark_lost(
                field!("mxcsr"),
                "KVM_SET_FPU does not carry MXCSR and this KVM has no KVM_SET_XSAVE; the vCPU keeps 0x1f80",
            );
        }
        // fpreg_x87 is 8 × 8-byte significands, then 8 × 2-byte sign/exponent (`sev_es_sync_vmsa`);
        // kvm_fpu.fpr[i] is the 10-byte FXSAVE register in a 16-byte slot.
        for (i, reg) in fpu.fpr.iter_mut().enumerate() {
            if let (Some(sig), Some(exp)) = (
                vmsa.fpreg_x87.get(i * 8..i * 8 + 8),
                vmsa.fpreg_x87.get(64 + i * 2..64 + i * 2 + 2),
            ) {
                reg[..8].copy_from_slice(sig);
                reg[8..10].copy_from_slice(exp);
            }
        }
        for (i, reg) in fpu.xmm.iter_mut().enumerate() {
            if let Some(src) = vmsa.fpreg_xmm.get(i * 16..i * 16 + 16) {
                reg.copy_from_slice(src);
            }
        }
        // x87_ds/x87_cs: KVM_SET_FPU has no selector fields and `sev_es_sync_vmsa` writes 0.
        // fpreg_ymm and pkru need KVM_SET_XSAVE with the AVX/PKRU components, which vmsa-kvm
        // uses only when they are non-zero — and then only on a vCPU that has them (not here).
        // Everything left unset is checked by `Fidelity::finish`: zero, or not expressible.
        let ymm_avx = caps.xsave && caps.xcrs && caps.supported_xcr0 & XFEATURE_YMM != 0;
        let ymm_zero = vmsa.fpreg_ymm.iter().all(|&b| b == 0);
        if ymm_avx {
            fid.set(field!("fpreg_ymm"), FieldStatus::Programmed);
        }
        let xsave = caps.xsave.then(|| {
            let ymm = if ymm_avx && !ymm_zero {
                Some(&vmsa.fpreg_ymm)
            } else {
                None
            };
            fpu_to_xsave(&fpu, ymm)
        });
        fid.finish(vmsa);

        let state = Self {
            regs,
            sregs,
            fpu,
            xsave,
            debugregs,
            xcrs,
            msrs,
            msr_count,
        };
        (state, fid)
    }

    /// The VMSA this vCPU state stands for: every field KVM holds, the rest zero.
    ///
    /// `cpl` is SS.DPL (KVM's rule); XCR0 is 1 when the vCPU has no XSAVE (its fixed value).
    pub fn to_vmsa(&self) -> Result<Vmsa, ReadBackError> {
        let mut v = Vmsa::new_zeroed();
        let s = &self.sregs;
        macro_rules! seg {
            ($name:literal, $v:ident, $k:ident) => {
                v.$v = VmcbSegment::from_kvm(&seg_from_kvm(&s.$k)).map_err(|source| {
                    ReadBackError::Segment {
                        segment: $name,
                        source,
                    }
                })?;
            };
        }
        for_each_segment!(seg);
        v.gdtr = VmcbSegment::new(0, Default::default(), u32::from(s.gdt.limit), s.gdt.base);
        v.idtr = VmcbSegment::new(0, Default::default(), u32::from(s.idt.limit), s.idt.base);
        v.cpl = v.ss.attrib.dpl();
        v.cr0 = s.cr0;
        v.cr2 = s.cr2;
        v.cr3 = s.cr3;
        v.cr4 = s.cr4;
        v.efer = s.efer;

        let r = &self.regs;
        (v.rax, v.rbx, v.rcx, v.rdx) = (r.rax, r.rbx, r.rcx, r.rdx);
        (v.rsi, v.rdi, v.rsp, v.rbp) = (r.rsi, r.rdi, r.rsp, r.rbp);
        (v.r8, v.r9, v.r10, v.r11) = (r.r8, r.r9, r.r10, r.r11);
        (v.r12, v.r13, v.r14, v.r15) = (r.r12, r.r13, r.r14, r.r15);
        (v.rip, v.rflags) = (r.rip, r.rflags);

        let d = &self.debugregs;
        [v.dr0, v.dr1, v.dr2, v.dr3] = d.db;
        (v.dr6, v.dr7) = (d.dr6, d.dr7);

        v.xcr0 = match &self.xcrs {
            Some(x) => x
                .xcrs
                .iter()
                .take(x.nr_xcrs as usize)
                .find(|x| x.xcr == 0)
                .map_or(1, |x| x.value),
            None => 1,
        };

        for e in self.msrs.iter().take(self.msr_count) {
            if let Some(m) = VMSA_MSRS.iter().find(|m| m.index == e.index) {
                (m.set)(&mut v, e.data);
            }
        }

        let (fpu, ymm) = match &self.xsave {
            Some(x) => xsave_to_fpu(x),
            None => (self.fpu, None),
        };
        if let Some(ymm) = ymm {
            v.fpreg_ymm = ymm;
        }
        let f = &fpu;
        v.x87_fcw = f.fcw;
        v.x87_fsw = f.fsw;
        v.x87_ftw = u16::from(f.ftwx);
        v.x87_fop = f.last_opcode;
        v.x87_rip = f.last_ip;
        v.x87_dp = f.last_dp;
        v.mxcsr = f.mxcsr;
        for (i, reg) in f.fpr.iter().enumerate() {
            if let Some(dst) = v.fpreg_x87.get_mut(i * 8..i * 8 + 8) {
                dst.copy_from_slice(&reg[..8]);
            }
            if let Some(dst) = v.fpreg_x87.get_mut(64 + i * 2..64 + i * 2 + 2) {
                dst.copy_from_slice(&reg[8..10]);
            }
        }
        for (i, reg) in f.xmm.iter().enumerate() {
            if let Some(dst) = v.fpreg_xmm.get_mut(i * 16..i * 16 + 16) {
                dst.copy_from_slice(reg);
            }
        }
        Ok(v)
    }
}

/// XSAVE state component bits (Intel SDM Vol. 1 §13.1, AMD APM Vol. 2 §11.5.2).
const XFEATURE_FP: u64 = 1;
const XFEATURE_SSE: u64 = 2;
const XFEATURE_YMM: u64 = 4;
/// Byte offsets in the standard-format XSAVE area (the legacy FXSAVE region, the XSAVE header,
/// the AVX component at 576 as CPUID leaf 0xD sub-leaf 2 reports it on every x86-64 CPU).
mod xsave_off {
    pub const FCW: usize = 0;
    pub const FSW: usize = 2;
    pub const FTW: usize = 4;
    pub const FOP: usize = 6;
    pub const FIP: usize = 8;
    pub const FDP: usize = 16;
    pub const MXCSR: usize = 24;
    pub const MXCSR_MASK: usize = 28;
    pub const ST: usize = 32;
    pub const XMM: usize = 160;
    pub const XSTATE_BV: usize = 512;
    pub const YMM_HI: usize = 576;
}

fn put(bytes: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = bytes.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = bytes.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

/// The x87/SSE state (and the upper YMM halves) as a `KVM_SET_XSAVE` image with XSTATE_BV
/// FP|SSE(|YMM).
pub fn fpu_to_xsave(f: &kvm_fpu, ymm: Option<&[u8; 256]>) -> Box<kvm_xsave> {
    use xsave_off::*;
    let mut x = Box::new(kvm_xsave::default());
    let b = x.region.as_mut_bytes();
    put(b, FCW, &f.fcw.to_le_bytes());
    put(b, FSW, &f.fsw.to_le_bytes());
    put(b, FTW, &[f.ftwx]);
    put(b, FOP, &f.last_opcode.to_le_bytes());
    put(b, FIP, &f.last_ip.to_le_bytes());
    put(b, FDP, &f.last_dp.to_le_bytes());
    put(b, MXCSR, &f.mxcsr.to_le_bytes());
    put(b, MXCSR_MASK, &0xffffu32.to_le_bytes());
    for (i, r) in f.fpr.iter().enumerate() {
        put(b, ST + i * 16, r);
    }
    for (i, r) in f.xmm.iter().enumerate() {
        put(b, XMM + i * 16, r);
    }
    let mut bv = XFEATURE_FP | XFEATURE_SSE;
    if let Some(y) = ymm {
        put(b, YMM_HI, y);
        bv |= XFEATURE_YMM;
    }
    put(b, XSTATE_BV, &bv.to_le_bytes());
    x
}

/// The inverse of [`fpu_to_xsave`]: the x87/SSE state, and the upper YMM halves when the image
/// has the AVX component.
pub fn xsave_to_fpu(x: &kvm_xsave) -> (kvm_fpu, Option<[u8; 256]>) {
    use xsave_off::*;
    let b = x.region.as_bytes();
    let mut f = kvm_fpu {
        fcw: u16::from_le_bytes(take(b, FCW)),
        fsw: u16::from_le_bytes(take(b, FSW)),
        ftwx: take::<1>(b, FTW)[0],
        last_opcode: u16::from_le_bytes(take(b, FOP)),
        last_ip: u64::from_le_bytes(take(b, FIP)),
        last_dp: u64::from_le_bytes(take(b, FDP)),
        mxcsr: u32::from_le_bytes(take(b, MXCSR)),
        ..Default::default()
    };
    for (i, r) in f.fpr.iter_mut().enumerate() {
        *r = take(b, ST + i * 16);
    }
    for (i, r) in f.xmm.iter_mut().enumerate() {
        *r = take(b, XMM + i * 16);
    }
    let bv = u64::from_le_bytes(take(b, XSTATE_BV));
    let ymm = (bv & XFEATURE_YMM != 0).then(|| take(b, YMM_HI));
    (f, ymm)
}

/// `DR6_ACTIVE_LOW`, DR6 after reset.
pub const DR6_RESET: u64 = 0xffff_0ff0;
/// `DR7_FIXED_1`, DR7 after reset.
pub const DR7_RESET: u64 = 0x400;
/// MXCSR after reset (all exceptions masked).
pub const MXCSR_RESET: u32 = 0x1f80;

fn segment_reason(e: SegmentError) -> &'static str {
    match e {
        SegmentError::ReservedVmsaBits(_) => {
            "attribute bits 15:12 are reserved; struct kvm_segment cannot carry them"
        }
        _ => "struct kvm_segment cannot carry these attributes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmsa_core::SegmentAttributes;

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
        v.g_pat = 0x0007_0406_0007_0406;
        v.xcr0 = 1;
        v.x87_fcw = 0x37f;
        v.mxcsr = 0x1f80;
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
            fid.status("efer"),
            Some(FieldStatus::Forced {
                value: Efer::LME.bits()
            })
        );
        assert_eq!(fid.status("rflags"), Some(FieldStatus::Forced { value: 2 }));
        assert_eq!(fid.status("cpl"), Some(FieldStatus::Forced { value: 0 }));
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
        assert_eq!(fid.status("sev_features"), Some(FieldStatus::VmLevel));
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
            fid.status("xcr0"),
            Some(FieldStatus::NotExpressible { .. })
        ));
    }

    /// What an AMD SVM KVM stores for `state`'s segments and reports back through
    /// `KVM_GET_SREGS` (the kernel's `svm_set_segment` then `svm_get_segment`, as the core
    /// models them), everything else as set.
    fn through_svm(state: &VcpuState) -> VcpuState {
        use vmsa_core::kvm_readback::{SegmentRegister as R, svm_get_segment, svm_set_segment};
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
        use vmsa_core::kvm_readback::{SregsReadBack, read_back};
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
        /// Whatever the page, the state the ioctls get reads back as `Fidelity::expected`, and
        /// on AMD SVM as the core's read-back model of it.
        #[test]
        fn round_trip_is_expected(v in vmsa_core::strategy::vmsa()) {
            use vmsa_core::kvm_readback::{SregsReadBack, read_back};
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
}
