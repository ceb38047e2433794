//! What Linux KVM makes of the vCPU state a VMM gives it: the VMSA page the AMD firmware
//! measures.
//!
//! Sources: Linux `arch/x86/kvm/svm/sev.c` `sev_es_sync_vmsa` and `__sev_guest_init`, and
//! `arch/x86/kvm/svm/svm.c` `svm_set_cr0`, `svm_set_cr4`, `svm_set_efer`, `svm_set_segment`,
//! `svm_set_msr`, `init_vmcb` (kernels 6.10 to 6.17, the `KVM_SEV_INIT2` era); QEMU 10.2
//! `target/i386/sev.c` `sev_apply_cpu_context` and `check_vmsa_supported`.
//!
//! What KVM decides, whatever the VMM asks for:
//!
//! | field | KVM | where |
//! |---|---|---|
//! | `efer` | ORs in SVME (0x1000) | `svm_set_efer` |
//! | `cr4` | ORs in the host's CR4.MCE | `svm_set_cr4` |
//! | `cr0` | clears CD and NW while `KVM_X86_QUIRK_CD_NW_CLEARED` is on (default) | `svm_set_cr0` |
//! | `rflags` | ORs in bit 1 | `kvm_set_rflags` via `KVM_SET_REGS` |
//! | `cpl` | SS.DPL | `svm_set_segment` |
//! | `gdtr`, `idtr` | only base and limit; selector and attrib 0 | `kvm_dtable`, `init_vmcb` |
//! | `sysenter_esp/eip` | low 32 bits | `svm_set_msr` |
//! | `dr7` | must be 0x400 (or 0), else `-EINVAL` | `sev_es_sync_vmsa` |
//! | `sev_features` | INIT2 `vmsa_features`, plus SNP_ACTIVE for SNP | `sev_es_sync_vmsa` |
//! | FPU (`x87_*`, `mxcsr`, x87/XMM/YMM registers) | copied from the guest FPU only for VMs made with `KVM_SEV_INIT2`; 0 for legacy `KVM_SEV_ES_INIT`; `x87_ds`/`x87_cs` always 0 | `sev_es_sync_vmsa` |
//! | `cr2`, debug address registers, CET, LBR, `spec_ctrl`, TSC, exit-info, reserved and the tail after 0x670 | 0 at launch | VMCB fields not written before the first run |
//!
//! ```
//! use vmsa_core::flags::SevFeatures;
//! use vmsa_core::kvm::{sync_vmsa, KvmParams};
//! use vmsa_core::reset::architectural_reset;
//! use vmsa_core::{CpuSignature, SevMode};
//!
//! let state = architectural_reset(CpuSignature(0x800f12)); // what QEMU programs
//! let page = sync_vmsa(&state, 0, SevMode::Snp, SevFeatures::SNP_ACTIVE, &KvmParams::default()).unwrap();
//! assert_eq!((page.efer, page.cr4, page.cr0), (0x1000, 0x40, 0x10));
//! assert_eq!(page.sev_features, 1);
//! ```

use super::refusal::{self, Refusal};
use crate::flags::{Cr0, Cr4, Efer, Rflags, SevFeatures};
use crate::mode::SevMode;
use crate::segment::{SegmentAttributes, VmcbSegment};
use crate::vmsa::Vmsa;
use zerocopy::FromZeros;

/// How the VM was initialised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum VmInit {
    /// `KVM_SEV_INIT2` on a `KVM_X86_SEV_ES_VM`/`KVM_X86_SNP_VM` (Linux ≥ 6.10; QEMU
    /// `sev-snp-guest`, or `sev-guest,legacy-vm-type=off`): `vmsa_features` honoured, FPU
    /// state copied into the VMSA.
    Init2,
    /// `KVM_SEV_ES_INIT` on a `KVM_X86_DEFAULT_VM` (QEMU `sev-guest` default,
    /// `legacy-vm-type=auto`): `sev_features` 0 (≥ 6.10), no FPU state in the VMSA. SEV-ES only.
    Legacy,
}

/// The host-side facts that decide the VMSA beyond what the VMM programs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KvmParams {
    /// Whether the host runs with CR4.MCE (every Linux host does); KVM ORs it into the guest CR4.
    pub host_cr4_mce: bool,
    /// INIT2 or the legacy init.
    pub init: VmInit,
    /// Whether `KVM_X86_QUIRK_CD_NW_CLEARED` is on (the default; a VMM can disable it with
    /// `KVM_CAP_DISABLE_QUIRKS2`).
    pub cd_nw_quirk: bool,
    /// `KVM_X86_SEV_VMSA_FEATURES` (`sev_supported_vmsa_features`): DebugSwap, and Secure TSC
    /// (SNP only) on the newest kernels. SNP_ACTIVE is never in it.
    pub supported_vmsa_features: SevFeatures,
    /// What the legacy `KVM_SEV_ES_INIT` puts in `sev_features`: nothing on Linux ≥ 6.10 and
    /// before 6.6; DebugSwap on 6.6–6.7 hosts whose CPU has it, and on 6.8–6.9 with
    /// `kvm_amd.debug_swap=1` ([`crate::host`] has the history).
    pub legacy_features: SevFeatures,
}

impl Default for KvmParams {
    /// Host CR4.MCE set, INIT2, quirk on, DebugSwap and Secure TSC supported.
    fn default() -> Self {
        Self {
            host_cr4_mce: true,
            init: VmInit::Init2,
            cd_nw_quirk: true,
            supported_vmsa_features: SevFeatures::DEBUG_SWAP.union(SevFeatures::SECURE_TSC),
            legacy_features: SevFeatures::empty(),
        }
    }
}

/// The knobs of [`sync_with`], once the init rules are applied.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SyncInputs {
    /// `sev_features` KVM writes (`sev->vmsa_features`).
    pub sev_features: SevFeatures,
    /// Host CR4.MCE.
    pub host_cr4_mce: bool,
    /// The CD/NW quirk.
    pub cd_nw_quirk: bool,
    /// Whether the FPU state is copied (INIT2 VM types).
    pub copy_fpu: bool,
}

impl KvmParams {
    /// The [`SyncInputs`] for a guest in `mode` whose VMSAs should carry `guest_features`
    /// (SNP_ACTIVE included for SNP), applying `__sev_guest_init`'s rules.
    pub fn sync_inputs(
        &self,
        mode: SevMode,
        guest_features: SevFeatures,
    ) -> Result<SyncInputs, Refusal> {
        let vmsa_features = guest_features.difference(SevFeatures::SNP_ACTIVE);
        match self.init {
            VmInit::Legacy if mode == SevMode::Snp => return Err(Refusal::LegacySnp),
            VmInit::Legacy if vmsa_features != self.legacy_features => {
                return Err(Refusal::LegacyFeatures {
                    features: vmsa_features.bits(),
                    legacy: self.legacy_features.bits(),
                });
            }
            // (KVM imposes them: nothing for the VMM to be offered.)
            VmInit::Legacy => {
                let sev_features = vmsa_features;
                return Ok(SyncInputs {
                    sev_features,
                    host_cr4_mce: self.host_cr4_mce,
                    cd_nw_quirk: self.cd_nw_quirk,
                    copy_fpu: false,
                });
            }
            VmInit::Init2 => {}
        }
        if mode != SevMode::Snp && vmsa_features.contains(SevFeatures::SECURE_TSC) {
            return Err(Refusal::SecureTscWithoutSnp);
        }
        if !self.supported_vmsa_features.contains(vmsa_features) {
            return Err(Refusal::UnsupportedFeatures {
                features: vmsa_features.bits(),
                supported: self.supported_vmsa_features.bits(),
            });
        }
        let sev_features = match mode {
            SevMode::Snp => vmsa_features | SevFeatures::SNP_ACTIVE,
            SevMode::SevEs | SevMode::Sev => vmsa_features,
        };
        Ok(SyncInputs {
            sev_features,
            host_cr4_mce: self.host_cr4_mce,
            cd_nw_quirk: self.cd_nw_quirk,
            copy_fpu: self.init == VmInit::Init2,
        })
    }
}

/// The VMSA KVM makes from `state` (the registers a VMM programmed for vCPU `vcpu`, in VMSA
/// form) for a guest in `mode` with these features and host facts: the refusals
/// ([`refusal::dr7`], [`KvmParams::sync_inputs`]), then [`sync_with`].
pub fn sync_vmsa(
    state: &Vmsa,
    vcpu: u32,
    mode: SevMode,
    guest_features: SevFeatures,
    params: &KvmParams,
) -> Result<Vmsa, Refusal> {
    refusal::dr7(vcpu, state.dr7)?;
    Ok(sync_with(state, &params.sync_inputs(mode, guest_features)?))
}

/// `sev_es_sync_vmsa` over the VMCB that KVM's setters made from `state`: a fresh zero page,
/// the VMCB save-area fields as the setters shape them, the GPRs, RIP, XCR0, PKRU, XSS, DR6,
/// `sev_features`, and the FPU state if `copy_fpu`. Fields a VMM cannot reach before launch
/// (see the module table) are 0 whatever `state` says. What KVM refuses is checked by the
/// caller ([`sync_vmsa`], [`super::refusal`]); this only models the page.
pub fn sync_with(state: &Vmsa, inputs: &SyncInputs) -> Vmsa {
    let s = state;
    let mut v = Vmsa::new_zeroed();
    // KVM_SET_SREGS → svm_set_segment (attrib packed as given; SS.DPL becomes cpl).
    v.es = s.es;
    v.cs = s.cs;
    v.ss = s.ss;
    v.ds = s.ds;
    v.fs = s.fs;
    v.gs = s.gs;
    v.ldtr = s.ldtr;
    v.tr = s.tr;
    v.cpl = s.ss.attrib.dpl();
    // svm_set_gdt/svm_set_idt: base and limit only.
    v.gdtr = VmcbSegment::new(0, SegmentAttributes(0), s.gdtr.limit, s.gdtr.base);
    v.idtr = VmcbSegment::new(0, SegmentAttributes(0), s.idtr.limit, s.idtr.base);
    v.efer = s.efer | Efer::SVME.bits();
    v.cr4 = if inputs.host_cr4_mce {
        s.cr4 | Cr4::MCE.bits()
    } else {
        s.cr4
    };
    v.cr3 = s.cr3;
    v.cr0 = if inputs.cd_nw_quirk {
        s.cr0 & !(Cr0::CD.bits() | Cr0::NW.bits())
    } else {
        s.cr0
    };
    v.dr7 = s.dr7;
    v.rflags = s.rflags | Rflags::FIXED.bits();
    // KVM_SET_MSRS → svm_set_msr.
    v.star = s.star;
    v.lstar = s.lstar;
    v.cstar = s.cstar;
    v.sfmask = s.sfmask;
    v.kernel_gs_base = s.kernel_gs_base;
    v.sysenter_cs = s.sysenter_cs;
    v.sysenter_esp = s.sysenter_esp & 0xffff_ffff;
    v.sysenter_eip = s.sysenter_eip & 0xffff_ffff;
    v.g_pat = s.g_pat;
    // sev_es_sync_vmsa: registers from vcpu->arch.
    v.rax = s.rax;
    v.rbx = s.rbx;
    v.rcx = s.rcx;
    v.rdx = s.rdx;
    v.rsp = s.rsp;
    v.rbp = s.rbp;
    v.rsi = s.rsi;
    v.rdi = s.rdi;
    v.r8 = s.r8;
    v.r9 = s.r9;
    v.r10 = s.r10;
    v.r11 = s.r11;
    v.r12 = s.r12;
    v.r13 = s.r13;
    v.r14 = s.r14;
    v.r15 = s.r15;
    v.rip = s.rip;
    v.xcr0 = s.xcr0;
    v.pkru = s.pkru;
    v.xss = s.xss;
    v.dr6 = s.dr6;
    v.sev_features = inputs.sev_features.bits();
    if inputs.copy_fpu {
        v.x87_dp = s.x87_dp;
        v.mxcsr = s.mxcsr;
        v.x87_ftw = s.x87_ftw;
        v.x87_fsw = s.x87_fsw;
        v.x87_fcw = s.x87_fcw;
        v.x87_fop = s.x87_fop;
        v.x87_rip = s.x87_rip;
        v.fpreg_x87 = s.fpreg_x87;
        v.fpreg_xmm = s.fpreg_xmm;
        v.fpreg_ymm = s.fpreg_ymm;
    }
    v
}
