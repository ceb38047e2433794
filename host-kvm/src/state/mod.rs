//! A VMSA as the KVM vCPU ioctls carry it, and back: pure conversions, no ioctls.
//!
//! [`VcpuState::from_vmsa`] splits a [`Vmsa`] into the six structures that the vCPU ioctls take
//! (`KVM_SET_SREGS`, `KVM_SET_MSRS`, `KVM_SET_DEBUGREGS`, `KVM_SET_XCRS`, `KVM_SET_FPU`,
//! `KVM_SET_REGS`) and says, field by field, what became of each VMSA field
//! ([`ProgramReport`]). [`VcpuState::to_vmsa`] is the way back. For every field whose status is
//! [`FieldStatus::Programmed`], [`FieldStatus::Implicit`] or [`FieldStatus::Forced`],
//! `to_vmsa(from_vmsa(v))` holds exactly [`ProgramReport::expected`] — the unit tests check it
//! here, and the integration tests check the same through a real `/dev/kvm`. The x87/SSE/AVX
//! state travels as an XSAVE image ([`xsave`]).
//!
//! Sources: Linux `arch/x86/kvm/x86.c` (`__set_sregs_common`, `__set_regs`,
//! `kvm_vcpu_ioctl_x86_set_debugregs`, `__kvm_set_xcr`, `kvm_arch_vcpu_ioctl_set_fpu`), uapi
//! `arch/x86/include/uapi/asm/kvm.h` (v6.15 as bound by kvm-bindings 0.14).

pub mod xsave;

use crate::program::{FieldStatus, ProgramReport};
use kvm_bindings::{
    kvm_debugregs, kvm_dtable, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs,
    kvm_xsave,
};
use vmsa_core::Vmsa;
use vmsa_core::arch::{DR6_RESET, DR7_RESET, MXCSR_RESET, XCR0_RESET};
use vmsa_core::flags::{Efer, Rflags};
use vmsa_core::kvm::{SegmentRegister, SregsReadBack};
use vmsa_core::segment::{KvmSegment, SegmentError, VmcbSegment};
use vmsa_core::vmsa::FieldId;
use xsave::{XFEATURE_YMM, fpu_to_xsave, xsave_to_fpu};
use zerocopy::FromZeros;

/// An MSR that the VMSA carries, with the VMSA field it lives in.
#[derive(Debug, Clone, Copy)]
pub struct VmsaMsr {
    /// The MSR index.
    pub index: u32,
    /// The VMSA field.
    pub field: FieldId,
    /// Reads the field.
    get: fn(&Vmsa) -> u64,
    /// Writes the field.
    set: fn(&mut Vmsa, u64),
}

macro_rules! vmsa_msrs {
    ($($(#[$doc:meta])* $name:ident = $index:literal => $field:ident $id:ident),* $(,)?) => {
        /// MSR indices (AMD APM Vol. 2 rev. 3.42 Appendix A; Linux `msr-index.h`).
        pub mod msr {
            $( $(#[$doc])* pub const $name: u32 = $index; )*
        }
        /// Every MSR the VMSA holds, in the order they are written with `KVM_SET_MSRS`.
        pub const VMSA_MSRS: &[VmsaMsr] = &[
            $( VmsaMsr {
                index: $index,
                field: FieldId::$id,
                get: |v| u64::from(v.$field),
                set: |v, x| v.$field = x as _,
            }, )*
        ];
    };
}

vmsa_msrs! {
    /// `MSR_IA32_CR_PAT`.
    PAT = 0x277 => g_pat G_PAT,
    /// `MSR_STAR`.
    STAR = 0xc000_0081 => star STAR,
    /// `MSR_LSTAR`.
    LSTAR = 0xc000_0082 => lstar LSTAR,
    /// `MSR_CSTAR`.
    CSTAR = 0xc000_0083 => cstar CSTAR,
    /// `MSR_SYSCALL_MASK` (SFMASK).
    SFMASK = 0xc000_0084 => sfmask SFMASK,
    /// `MSR_KERNEL_GS_BASE`.
    KERNEL_GS_BASE = 0xc000_0102 => kernel_gs_base KERNEL_GS_BASE,
    /// `MSR_IA32_SYSENTER_CS`.
    SYSENTER_CS = 0x174 => sysenter_cs SYSENTER_CS,
    /// `MSR_IA32_SYSENTER_ESP`.
    SYSENTER_ESP = 0x175 => sysenter_esp SYSENTER_ESP,
    /// `MSR_IA32_SYSENTER_EIP`.
    SYSENTER_EIP = 0x176 => sysenter_eip SYSENTER_EIP,
    /// `MSR_IA32_DEBUGCTLMSR`.
    DEBUGCTL = 0x1d9 => dbgctl DBGCTL,
    /// `MSR_IA32_SPEC_CTRL`.
    SPEC_CTRL = 0x48 => spec_ctrl SPEC_CTRL,
    /// `MSR_TSC_AUX` (32 bits in the VMSA).
    TSC_AUX = 0xc000_0103 => tsc_aux TSC_AUX,
    /// `MSR_IA32_XSS`.
    XSS = 0xda0 => xss XSS,
    /// `MSR_IA32_U_CET`.
    U_CET = 0x6a0 => u_cet U_CET,
    /// `MSR_IA32_S_CET`.
    S_CET = 0x6a2 => s_cet S_CET,
    /// `MSR_IA32_PL0_SSP`.
    PL0_SSP = 0x6a4 => pl0_ssp PL0_SSP,
    /// `MSR_IA32_PL1_SSP`.
    PL1_SSP = 0x6a5 => pl1_ssp PL1_SSP,
    /// `MSR_IA32_PL2_SSP`.
    PL2_SSP = 0x6a6 => pl2_ssp PL2_SSP,
    /// `MSR_IA32_PL3_SSP`.
    PL3_SSP = 0x6a7 => pl3_ssp PL3_SSP,
    /// `MSR_IA32_INT_SSP_TAB`.
    INT_SSP_TAB = 0x6a8 => isst_addr ISST_ADDR,
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

/// The `kvm_sregs` slot of a segment register (`kvm_sregs` names LDTR `ldt`).
fn sreg(s: &kvm_sregs, r: SegmentRegister) -> &kvm_segment {
    match r {
        SegmentRegister::Es => &s.es,
        SegmentRegister::Cs => &s.cs,
        SegmentRegister::Ss => &s.ss,
        SegmentRegister::Ds => &s.ds,
        SegmentRegister::Fs => &s.fs,
        SegmentRegister::Gs => &s.gs,
        SegmentRegister::Ldtr => &s.ldt,
        SegmentRegister::Tr => &s.tr,
    }
}

/// [`sreg`], mutably.
fn sreg_mut(s: &mut kvm_sregs, r: SegmentRegister) -> &mut kvm_segment {
    match r {
        SegmentRegister::Es => &mut s.es,
        SegmentRegister::Cs => &mut s.cs,
        SegmentRegister::Ss => &mut s.ss,
        SegmentRegister::Ds => &mut s.ds,
        SegmentRegister::Fs => &mut s.fs,
        SegmentRegister::Gs => &mut s.gs,
        SegmentRegister::Ldtr => &mut s.ldt,
        SegmentRegister::Tr => &mut s.tr,
    }
}

impl VcpuState {
    /// Splits `vmsa` into the vCPU ioctl structures, and reports what happens to every field.
    ///
    /// Never fails: a field the ioctls cannot carry gets the value the vCPU will hold instead
    /// (its reset value), and its status says why. Callers that must not lose anything check
    /// [`ProgramReport::is_exact`] (strict mode) before touching a vCPU.
    pub fn from_vmsa(vmsa: &Vmsa, caps: &VcpuCaps) -> (Self, ProgramReport) {
        let mut fid = ProgramReport::new(vmsa);
        let mut sregs = kvm_sregs::default();

        // Segments: `VmcbSegment::to_kvm` is lossless or refuses (reserved attribute bits).
        for reg in SegmentRegister::ALL {
            *sreg_mut(&mut sregs, reg) = match reg.of(vmsa).to_kvm() {
                Ok(s) => {
                    fid.set(reg.field(), FieldStatus::Programmed);
                    seg_to_kvm(&s)
                }
                Err(e) => {
                    fid.mark_lost(reg.field(), segment_reason(e));
                    seg_to_kvm(&VmcbSegment::default().to_kvm().unwrap_or_default())
                }
            };
        }

        // GDTR/IDTR: `struct kvm_dtable` has a base and a 16-bit limit, nothing else.
        macro_rules! dtable {
            ($id:expr, $v:ident, $k:ident) => {{
                let s = &vmsa.$v;
                match u16::try_from(s.limit) {
                    Ok(limit) if s.selector == 0 && s.attrib.bits() == 0 => {
                        sregs.$k = kvm_dtable { base: s.base, limit, padding: [0; 3] };
                        fid.set($id, FieldStatus::Programmed);
                    }
                    Ok(limit) => {
                        sregs.$k = kvm_dtable { base: s.base, limit, padding: [0; 3] };
                        let held = VmcbSegment::new(0, Default::default(), u32::from(limit), s.base);
                        fid.not_expressible_as(
                            $id,
                            "struct kvm_dtable carries only base and limit; selector and attributes are lost (QEMU's check_vmsa_supported accepts and drops them)",
                            zerocopy::IntoBytes::as_bytes(&held),
                        );
                    }
                    Err(_) => {
                        sregs.$k = kvm_dtable { base: s.base, limit: 0xffff, padding: [0; 3] };
                        let held = VmcbSegment::new(0, Default::default(), 0xffff, s.base);
                        fid.not_expressible_as(
                            $id,
                            "limit above 0xffff: struct kvm_dtable has a 16-bit limit",
                            zerocopy::IntoBytes::as_bytes(&held),
                        );
                    }
                }
            }};
        }
        dtable!(FieldId::GDTR, gdtr, gdt);
        dtable!(FieldId::IDTR, idtr, idt);

        // CPL: KVM has no CPL register; SVM and VMX both derive it from SS.DPL
        // (`svm_set_segment`: `if (seg == VCPU_SREG_SS) svm->vmcb->save.cpl = var->dpl`).
        let ss_dpl = sregs.ss.dpl;
        if vmsa.cpl == ss_dpl {
            fid.set(FieldId::CPL, FieldStatus::Implicit);
        } else {
            fid.set(
                FieldId::CPL,
                FieldStatus::Forced {
                    value: u64::from(ss_dpl),
                },
            );
        }

        sregs.cr0 = vmsa.cr0;
        sregs.cr2 = vmsa.cr2;
        sregs.cr3 = vmsa.cr3;
        sregs.cr4 = vmsa.cr4;
        for f in [FieldId::CR0, FieldId::CR2, FieldId::CR3, FieldId::CR4] {
            fid.set(f, FieldStatus::Programmed);
        }
        // EFER.SVME never goes through KVM_SET_SREGS: since Linux commit 184bd464bdb6 ("KVM: x86:
        // Check EFER validity on KVM_SET_SREGS*") it is refused unless the guest CPUID has SVM,
        // and an SVM host adds it to the VMCB (and so to the VMSA) by itself (`svm_set_efer`).
        let efer = vmsa.efer & !Efer::SVME.bits();
        sregs.efer = efer;
        fid.set(
            FieldId::EFER,
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
            FieldId::RAX,
            FieldId::RBX,
            FieldId::RCX,
            FieldId::RDX,
            FieldId::RSI,
            FieldId::RDI,
            FieldId::RSP,
            FieldId::RBP,
            FieldId::R8,
            FieldId::R9,
            FieldId::R10,
            FieldId::R11,
            FieldId::R12,
            FieldId::R13,
            FieldId::R14,
            FieldId::R15,
            FieldId::RIP,
        ] {
            fid.set(f, FieldStatus::Programmed);
        }
        let rflags = regs.rflags;
        fid.set(
            FieldId::RFLAGS,
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
        for f in [FieldId::DR0, FieldId::DR1, FieldId::DR2, FieldId::DR3] {
            fid.set(f, FieldStatus::Programmed);
        }
        if vmsa.dr6 & DR_HIGH != 0 {
            debugregs.dr6 = DR6_RESET;
            fid.mark_lost(
                FieldId::DR6,
                "bits 63:32 of DR6 are reserved; KVM_SET_DEBUGREGS refuses them",
            );
        } else {
            fid.set(FieldId::DR6, FieldStatus::Programmed);
        }
        if vmsa.dr7 & DR_HIGH != 0 {
            debugregs.dr7 = DR7_RESET;
            fid.mark_lost(
                FieldId::DR7,
                "bits 63:32 of DR7 are reserved; KVM_SET_DEBUGREGS refuses them",
            );
        } else {
            fid.set(FieldId::DR7, FieldStatus::Programmed);
        }

        // XCR0: with XSAVE in the guest CPUID, KVM_SET_XCRS; without, the vCPU keeps its reset
        // value XFEATURE_MASK_FP (1) (`kvm_vcpu_reset`), which is all a VMSA may then say.
        let xcrs = if caps.xcrs {
            let ok = vmsa.xcr0 & 1 == 1
                && vmsa.xcr0 & !caps.supported_xcr0 == 0
                // AVX (bit 2) needs SSE (bit 1): `__kvm_set_xcr`.
                && (vmsa.xcr0 & 4 == 0 || vmsa.xcr0 & 2 != 0);
            let value = if ok {
                fid.set(FieldId::XCR0, FieldStatus::Programmed);
                vmsa.xcr0
            } else {
                fid.mark_lost(
                    FieldId::XCR0,
                    "KVM_SET_XCRS accepts only XCR0 values with x87 set, AVX only with SSE, and bits the guest CPUID (leaf 0xD) allows",
                );
                XCR0_RESET
            };
            let mut x = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            x.xcrs[0].xcr = 0;
            x.xcrs[0].value = value;
            Some(x)
        } else {
            if vmsa.xcr0 == XCR0_RESET {
                fid.set(FieldId::XCR0, FieldStatus::Implicit);
            } else {
                fid.mark_lost(
                    FieldId::XCR0,
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
                fid.set(m.field, FieldStatus::Programmed);
            } else if value != 0 {
                fid.mark_lost(m.field, "the vCPU does not have this MSR (not in KVM_GET_MSR_INDEX_LIST or not allowed by the guest CPUID)");
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
            FieldId::X87_FCW,
            FieldId::X87_FSW,
            FieldId::X87_FOP,
            FieldId::X87_RIP,
            FieldId::X87_DP,
            FieldId::FPREG_X87,
            FieldId::FPREG_XMM,
        ] {
            fid.set(f, FieldStatus::Programmed);
        }
        match u8::try_from(vmsa.x87_ftw) {
            Ok(t) => {
                fpu.ftwx = t;
                fid.set(FieldId::X87_FTW, FieldStatus::Programmed);
            }
            Err(_) => fid.mark_lost(
                FieldId::X87_FTW,
                "the VMSA holds the abridged (FXSAVE) tag byte; bits 15:8 cannot be set (struct kvm_fpu ftwx is a u8)",
            ),
        }
        // KVM_SET_FPU/KVM_GET_FPU do not carry MXCSR (`kvm_arch_vcpu_ioctl_set_fpu` copies every
        // field but it); KVM_SET_XSAVE does. Without XSAVE the vCPU keeps its reset MXCSR.
        if vmsa.mxcsr & MXCSR_RESERVED != 0 {
            fpu.mxcsr = MXCSR_RESET;
            fid.mark_lost(
                FieldId::MXCSR,
                "MXCSR bits 31:16 are reserved; restoring them faults",
            );
        } else if caps.xsave {
            fpu.mxcsr = vmsa.mxcsr;
            fid.set(FieldId::MXCSR, FieldStatus::Programmed);
        } else if vmsa.mxcsr == MXCSR_RESET {
            fpu.mxcsr = MXCSR_RESET;
            fid.set(FieldId::MXCSR, FieldStatus::Implicit);
        } else {
            fpu.mxcsr = MXCSR_RESET;
            fid.mark_lost(
                FieldId::MXCSR,
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
        // Everything left unset is checked by `ProgramReport::finish`: zero, or not expressible.
        let ymm_avx = caps.xsave && caps.xcrs && caps.supported_xcr0 & XFEATURE_YMM != 0;
        let ymm_zero = vmsa.fpreg_ymm.iter().all(|&b| b == 0);
        if ymm_avx {
            fid.set(FieldId::FPREG_YMM, FieldStatus::Programmed);
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
        for reg in SegmentRegister::ALL {
            *reg.of_mut(&mut v) =
                VmcbSegment::from_kvm(&seg_from_kvm(sreg(s, reg))).map_err(|source| {
                    ReadBackError::Segment {
                        segment: reg.field().field().name,
                        source,
                    }
                })?;
        }
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
                .map_or(XCR0_RESET, |x| x.value),
            None => XCR0_RESET,
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

fn segment_reason(e: SegmentError) -> &'static str {
    match e {
        SegmentError::ReservedVmsaBits(_) => {
            "attribute bits 15:12 are reserved; struct kvm_segment cannot carry them"
        }
        _ => "struct kvm_segment cannot carry these attributes",
    }
}

#[cfg(test)]
mod tests;
