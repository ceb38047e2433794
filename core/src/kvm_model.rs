//! A model of what Linux KVM does to the vCPU state a VMM gives it, up to the VMSA page the AMD
//! firmware measures, and a fidelity check that says, field by field, whether KVM would
//! reproduce a given VMSA.
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
//! use vmsa_core::kvm_model::{sync_vmsa, KvmParams};
//! use vmsa_core::reset::{architectural_reset, CpuSignature, SevMode};
//!
//! let state = architectural_reset(CpuSignature(0x800f12)); // what QEMU programs
//! let page = sync_vmsa(&state, SevMode::Snp, SevFeatures::SNP_ACTIVE, &KvmParams::default()).unwrap();
//! assert_eq!((page.efer, page.cr4, page.cr0), (0x1000, 0x40, 0x10));
//! assert_eq!(page.sev_features, 1);
//! ```

use crate::flags::{Cr0, Cr4, Efer, Rflags, SevFeatures};
use crate::reset::SevMode;
use crate::segment::{SegmentAttributes, VmcbSegment};
use crate::vmsa::{FIELDS, Field, FieldValue, Vmsa, field_value};
use core::fmt;
use zerocopy::FromZeros;

/// KVM's `INITIAL_VMSA_GPA`: the GPA of every vCPU's VMSA in the RMP and the SNP measurement,
/// and the only one QEMU's `check_vmsa_supported` accepts (`KVM_VMSA_GPA`).
pub const INITIAL_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// `DR7_FIXED_1`.
pub const DR7_FIXED_1: u64 = 0x400;

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
}

impl Default for KvmParams {
    /// Host CR4.MCE set, INIT2, quirk on, DebugSwap and Secure TSC supported.
    fn default() -> Self {
        Self {
            host_cr4_mce: true,
            init: VmInit::Init2,
            cd_nw_quirk: true,
            supported_vmsa_features: SevFeatures::DEBUG_SWAP.union(SevFeatures::SECURE_TSC),
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

/// What KVM refuses at init or at the VMSA sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `sev_es_sync_vmsa` returns `-EINVAL` when `dr7 & ~DR7_FIXED_1`.
    #[error("DR7 {0:#x} has bits besides 0x400; KVM's sev_es_sync_vmsa refuses it (-EINVAL)")]
    Dr7(u64),
    /// SNP VMs exist only as `KVM_X86_SNP_VM` with `KVM_SEV_INIT2`.
    #[error(
        "an SNP guest needs KVM_SEV_INIT2 (KVM_X86_SNP_VM); the legacy init is SEV/SEV-ES only"
    )]
    LegacySnp,
    /// `KVM_SEV_ES_INIT` always uses `vmsa_features` 0 (Linux ≥ 6.10).
    #[error("sev_features {0:#x} need KVM_SEV_INIT2; the legacy KVM_SEV_ES_INIT always gives 0")]
    LegacyFeatures(u64),
    /// `__sev_guest_init` refuses `vmsa_features` outside `KVM_X86_SEV_VMSA_FEATURES`.
    #[error(
        "vmsa_features {features:#x} are not all supported by KVM (supported: {supported:#x}); KVM_SEV_INIT2 fails with -EINVAL"
    )]
    UnsupportedFeatures {
        /// Requested (SNP_ACTIVE removed).
        features: u64,
        /// Supported.
        supported: u64,
    },
    /// Secure TSC is an SNP feature (`__sev_guest_init` drops it from the valid set otherwise).
    #[error("Secure TSC (bit 9) is SNP-only")]
    SecureTscWithoutSnp,
}

impl KvmParams {
    /// The [`SyncInputs`] for a guest in `mode` whose VMSAs should carry `guest_features`
    /// (SNP_ACTIVE included for SNP), applying `__sev_guest_init`'s rules.
    pub fn sync_inputs(
        &self,
        mode: SevMode,
        guest_features: SevFeatures,
    ) -> Result<SyncInputs, SyncError> {
        let vmsa_features = guest_features.difference(SevFeatures::SNP_ACTIVE);
        match self.init {
            VmInit::Legacy if mode == SevMode::Snp => return Err(SyncError::LegacySnp),
            VmInit::Legacy if !vmsa_features.is_empty() => {
                return Err(SyncError::LegacyFeatures(vmsa_features.bits()));
            }
            _ => {}
        }
        if mode == SevMode::SevEs && vmsa_features.contains(SevFeatures::SECURE_TSC) {
            return Err(SyncError::SecureTscWithoutSnp);
        }
        if !self.supported_vmsa_features.contains(vmsa_features) {
            return Err(SyncError::UnsupportedFeatures {
                features: vmsa_features.bits(),
                supported: self.supported_vmsa_features.bits(),
            });
        }
        let sev_features = match mode {
            SevMode::Snp => vmsa_features | SevFeatures::SNP_ACTIVE,
            SevMode::SevEs => vmsa_features,
        };
        Ok(SyncInputs {
            sev_features,
            host_cr4_mce: self.host_cr4_mce,
            cd_nw_quirk: self.cd_nw_quirk,
            copy_fpu: self.init == VmInit::Init2,
        })
    }
}

/// The VMSA KVM makes from `state` (the registers a VMM programmed, in VMSA form) for a guest
/// in `mode` with these features and host facts: [`KvmParams::sync_inputs`] then [`sync_with`].
pub fn sync_vmsa(
    state: &Vmsa,
    mode: SevMode,
    guest_features: SevFeatures,
    params: &KvmParams,
) -> Result<Vmsa, SyncError> {
    sync_with(state, &params.sync_inputs(mode, guest_features)?)
}

/// `sev_es_sync_vmsa` over the VMCB that KVM's setters made from `state`: a fresh zero page,
/// the VMCB save-area fields as the setters shape them, the GPRs, RIP, XCR0, PKRU, XSS, DR6,
/// `sev_features`, and the FPU state if `copy_fpu`. Fields a VMM cannot reach before launch
/// (see the module table) are 0 whatever `state` says.
pub fn sync_with(state: &Vmsa, inputs: &SyncInputs) -> Result<Vmsa, SyncError> {
    if state.dr7 & !DR7_FIXED_1 != 0 {
        return Err(SyncError::Dr7(state.dr7));
    }
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
    Ok(v)
}

/// Who programs the vCPUs from a VMSA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum VmmPath {
    /// QEMU ≥ 10.1 (`sev_apply_cpu_context`): the honoured set of `docs/system/igvm.rst` —
    /// GPRs, RIP, RFLAGS, CS/DS/ES/FS/GS/SS, GDT/IDT base+limit, LDTR, TR (**base taken from
    /// LDTR**, sev.c:455), CR0/3/4, XCR0, EFER, PAT, DR6, DR7, FCW, MXCSR; only vCPU 0's
    /// `sev_features` reach KVM (INIT2 `vmsa_features`).
    Qemu,
    /// A VMM that programs every register KVM can take before launch (`KVM_SET_SREGS`,
    /// `KVM_SET_REGS`, `KVM_SET_MSRS`, `KVM_SET_XSAVE`, `KVM_SET_XCRS`, `KVM_SET_DEBUGREGS`),
    /// without QEMU's TR bug — the `vmsa-kvm` adapter.
    Direct,
}

/// Who decides a field of the launched VMSA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum Origin {
    /// The VMM programs it and KVM passes it on unchanged.
    Programmed,
    /// The VMM programs it and KVM forces some bits (EFER.SVME, CR4.MCE, CR0.CD/NW, RFLAGS bit
    /// 1, GDTR/IDTR selector and attrib, SYSENTER high halves).
    Shaped,
    /// KVM decides it alone (`cpl`, `sev_features`; the FPU fields under the legacy init).
    ForcedByKvm,
    /// Nothing the VMM does reaches it: 0 at launch.
    NotExpressible,
}

/// Why KVM (or QEMU in front of it) would not launch a VMSA at all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// QEMU `check_vmsa_supported`: the VMSA GPA must be 0xFFFFFFFFF000 (KVM places it there).
    #[error("VMSA GPA {0:#x}: KVM places every VMSA at 0xfffffffff000 and QEMU refuses any other")]
    Gpa(u64),
    /// KVM init or sync refuses it.
    #[error(transparent)]
    Kvm(#[from] SyncError),
    /// QEMU `check_sev_features`: the SNP bit must match the mode.
    #[error("sev_features {features:#x}: SNP_ACTIVE must be set exactly for SNP guests")]
    SnpBit {
        /// The VMSA's `sev_features`.
        features: u64,
    },
    /// KVM applies vCPU 0's features to every vCPU; an AP asking for others cannot have them.
    #[error("sev_features {this:#x} differ from vCPU 0's {bsp:#x}; KVM gives every vCPU the same")]
    FeaturesDifferFromBsp {
        /// vCPU 0's.
        bsp: u64,
        /// This vCPU's.
        this: u64,
    },
}

/// Inputs of [`check_vmsa`] besides the VMSA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FidelityParams {
    /// SEV-ES or SNP.
    pub mode: SevMode,
    /// Host facts.
    pub kvm: KvmParams,
    /// Who programs the vCPUs.
    pub path: VmmPath,
}

/// One field of a [`Fidelity`] report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FieldCheck<'a> {
    /// The field.
    pub field: &'static Field,
    /// Who decides it.
    pub origin: Origin,
    /// The value asked for.
    pub wanted: FieldValue<'a>,
    /// The value KVM would produce.
    pub kvm: FieldValue<'a>,
    /// Whether they are equal.
    pub reproduced: bool,
}

impl FieldCheck<'_> {
    /// Why a field is not reproduced, in words.
    pub const fn reason(&self) -> &'static str {
        match (self.origin, self.field.name.as_bytes()) {
            (_, b"tr") => "QEMU loads the TR base from the LDTR base (sev_apply_cpu_context)",
            (Origin::Programmed, _) => "programmed by the VMM but not honoured on this path",
            (Origin::Shaped, _) => "KVM forces bits of it",
            (Origin::ForcedByKvm, _) => "KVM sets it itself",
            (Origin::NotExpressible, _) => "nothing a VMM does reaches it; 0 at launch",
        }
    }
}

impl fmt::Display for FieldCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#05x} {}: wanted {}, KVM gives {} ({})",
            self.field.offset,
            self.field.name,
            self.wanted,
            self.kvm,
            self.reason()
        )
    }
}

/// Whether KVM would reproduce a VMSA: the refusals (if any), the page KVM would produce
/// otherwise, and a per-field comparison. Pure and allocation-free.
#[derive(Clone, Debug)]
pub struct Fidelity<'a> {
    target: &'a Vmsa,
    reproduced: Vmsa,
    refusals: heapless::Vec<Refusal, 4>,
    params: FidelityParams,
}

impl<'a> Fidelity<'a> {
    /// Why the launch would fail outright (empty if it would not).
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }
    /// The page KVM would produce (computed even when a refusal applies, from the parts that
    /// can be programmed, so the field report stays useful).
    pub fn reproduced(&self) -> &Vmsa {
        &self.reproduced
    }
    /// Every field with its origin and whether it is reproduced.
    pub fn fields(&self) -> impl Iterator<Item = FieldCheck<'_>> + '_ {
        FIELDS.iter().map(move |f| {
            let wanted = field_value(self.target.as_page(), f);
            let kvm = field_value(self.reproduced.as_page(), f);
            FieldCheck {
                field: f,
                origin: origin(f, &self.params),
                wanted,
                kvm,
                reproduced: wanted == kvm,
            }
        })
    }
    /// The fields KVM would not reproduce.
    pub fn findings(&self) -> impl Iterator<Item = FieldCheck<'_>> + '_ {
        self.fields().filter(|c| !c.reproduced)
    }
    /// True when KVM launches it and produces exactly the target page.
    pub fn is_exact(&self) -> bool {
        self.refusals.is_empty() && self.reproduced == *self.target
    }
}

/// Who decides `field` on this path.
pub fn origin(field: &Field, params: &FidelityParams) -> Origin {
    let qemu = params.path == VmmPath::Qemu;
    let fpu = params.kvm.init == VmInit::Init2;
    match field.name {
        "es" | "cs" | "ss" | "ds" | "fs" | "gs" | "ldtr" | "tr" | "cr3" | "dr7" | "rip" | "rax"
        | "rbx" | "rcx" | "rdx" | "rsp" | "rbp" | "rsi" | "rdi" | "r8" | "r9" | "r10" | "r11"
        | "r12" | "r13" | "r14" | "r15" | "xcr0" | "dr6" | "g_pat" => Origin::Programmed,
        "gdtr" | "idtr" | "efer" | "cr0" | "cr4" | "rflags" => Origin::Shaped,
        "star" | "lstar" | "cstar" | "sfmask" | "kernel_gs_base" | "sysenter_cs" | "pkru"
        | "xss"
            if !qemu =>
        {
            Origin::Programmed
        }
        "sysenter_esp" | "sysenter_eip" if !qemu => Origin::Shaped,
        "x87_fcw" | "mxcsr" if fpu => Origin::Programmed,
        "x87_dp" | "x87_ftw" | "x87_fsw" | "x87_fop" | "x87_rip" | "fpreg_x87" | "fpreg_xmm"
        | "fpreg_ymm"
            if fpu && !qemu =>
        {
            Origin::Programmed
        }
        "cpl" | "sev_features" | "x87_ds" | "x87_cs" => Origin::ForcedByKvm,
        "x87_fcw" | "mxcsr" | "x87_dp" | "x87_ftw" | "x87_fsw" | "x87_fop" | "x87_rip"
        | "fpreg_x87" | "fpreg_xmm" | "fpreg_ymm"
            if !fpu =>
        {
            Origin::ForcedByKvm
        }
        _ => Origin::NotExpressible,
    }
}

/// The registers a VMM on `path` programs from `target` (everything else 0).
fn project(target: &Vmsa, path: VmmPath) -> Vmsa {
    match path {
        VmmPath::Direct => target.clone(),
        VmmPath::Qemu => {
            let t = target;
            let mut v = Vmsa::new_zeroed();
            v.es = t.es;
            v.cs = t.cs;
            v.ss = t.ss;
            v.ds = t.ds;
            v.fs = t.fs;
            v.gs = t.gs;
            v.gdtr = t.gdtr;
            v.idtr = t.idtr;
            v.ldtr = t.ldtr;
            v.tr = t.tr;
            // sev.c:455–458: TR is loaded with `vmsa->ldtr.base`.
            v.tr.base = t.ldtr.base;
            v.efer = t.efer;
            v.cr0 = t.cr0;
            v.cr3 = t.cr3;
            v.cr4 = t.cr4;
            v.xcr0 = t.xcr0;
            v.g_pat = t.g_pat;
            v.dr6 = t.dr6;
            v.dr7 = t.dr7;
            v.rax = t.rax;
            v.rcx = t.rcx;
            v.rdx = t.rdx;
            v.rbx = t.rbx;
            v.rsp = t.rsp;
            v.rbp = t.rbp;
            v.rsi = t.rsi;
            v.rdi = t.rdi;
            v.r8 = t.r8;
            v.r9 = t.r9;
            v.r10 = t.r10;
            v.r11 = t.r11;
            v.r12 = t.r12;
            v.r13 = t.r13;
            v.r14 = t.r14;
            v.r15 = t.r15;
            v.rip = t.rip;
            v.rflags = t.rflags;
            v.x87_fcw = t.x87_fcw;
            v.mxcsr = t.mxcsr;
            v
        }
    }
}

/// Whether KVM (behind the VMM `params.path`) would launch vCPU `target` at `gpa` and reproduce
/// it byte for byte. `bsp_sev_features` is vCPU 0's `sev_features` (pass the target's own for
/// vCPU 0): KVM applies those to every vCPU.
///
/// Rules, following QEMU's `check_vmsa_supported` and stricter where KVM is: the GPA must be
/// 0xFFFFFFFFF000; DR7 must be 0x400; `sev_features` must carry SNP_ACTIVE exactly for SNP, be
/// supported by KVM (none under the legacy init), and equal vCPU 0's; then every field is
/// compared with what KVM would write (tail after 0x670, GDTR/IDTR selector and attrib, `cpl`
/// vs SS.DPL, the TR base on the QEMU path, FPU fields under the legacy init...).
pub fn check_vmsa<'a>(
    target: &'a Vmsa,
    gpa: u64,
    bsp_sev_features: u64,
    params: &FidelityParams,
) -> Fidelity<'a> {
    let mut refusals = heapless::Vec::<Refusal, 4>::new();
    // Capacity 4 holds every refusal below (at most one of each kind).
    let mut refuse = |r: Refusal| {
        let _ = refusals.push(r);
    };
    if gpa != INITIAL_VMSA_GPA {
        refuse(Refusal::Gpa(gpa));
    }
    if target.dr7 & !DR7_FIXED_1 != 0 {
        refuse(Refusal::Kvm(SyncError::Dr7(target.dr7)));
    }
    let features = SevFeatures::from_bits_retain(target.sev_features);
    let snp = params.mode == SevMode::Snp;
    if features.contains(SevFeatures::SNP_ACTIVE) != snp {
        refuse(Refusal::SnpBit {
            features: target.sev_features,
        });
    }
    if target.sev_features != bsp_sev_features {
        refuse(Refusal::FeaturesDifferFromBsp {
            bsp: bsp_sev_features,
            this: target.sev_features,
        });
    }
    let bsp = SevFeatures::from_bits_retain(bsp_sev_features);
    let inputs = match params.kvm.sync_inputs(params.mode, bsp) {
        Ok(i) => i,
        Err(e) => {
            refuse(Refusal::Kvm(e));
            // Keep reporting fields as if KVM had taken no features.
            SyncInputs {
                sev_features: if snp {
                    SevFeatures::SNP_ACTIVE
                } else {
                    SevFeatures::empty()
                },
                host_cr4_mce: params.kvm.host_cr4_mce,
                cd_nw_quirk: params.kvm.cd_nw_quirk,
                copy_fpu: params.kvm.init == VmInit::Init2,
            }
        }
    };
    let mut programmed = project(target, params.path);
    // A refused DR7 is reported above; model the rest with the value KVM would need.
    if programmed.dr7 & !DR7_FIXED_1 != 0 {
        programmed.dr7 = DR7_FIXED_1;
    }
    let reproduced = sync_with(&programmed, &inputs).unwrap_or_else(|_| Vmsa::new_zeroed());
    Fidelity {
        target,
        reproduced,
        refusals,
        params: *params,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::reset::{CpuSignature, architectural_reset};

    fn qemu_params() -> FidelityParams {
        FidelityParams {
            mode: SevMode::Snp,
            kvm: KvmParams::default(),
            path: VmmPath::Qemu,
        }
    }

    #[test]
    fn sync_forces_what_kvm_forces() {
        let state = architectural_reset(CpuSignature(0x800f12));
        let v = sync_vmsa(
            &state,
            SevMode::SevEs,
            SevFeatures::empty(),
            &KvmParams::default(),
        )
        .unwrap();
        assert_eq!(v.efer, 0x1000);
        assert_eq!(v.cr4, 0x40);
        assert_eq!(v.cr0, 0x10);
        assert_eq!(v.x87_fcw, 0x37f);
        assert_eq!(v.mxcsr, 0x1f80);
        let legacy = KvmParams {
            init: VmInit::Legacy,
            host_cr4_mce: false,
            cd_nw_quirk: false,
            ..KvmParams::default()
        };
        let v = sync_vmsa(&state, SevMode::SevEs, SevFeatures::empty(), &legacy).unwrap();
        assert_eq!((v.cr4, v.cr0, v.x87_fcw, v.mxcsr), (0, 0x6000_0010, 0, 0));
        assert_eq!(
            sync_vmsa(&state, SevMode::Snp, SevFeatures::SNP_ACTIVE, &legacy),
            Err(SyncError::LegacySnp)
        );
        assert_eq!(
            sync_vmsa(&state, SevMode::SevEs, SevFeatures::DEBUG_SWAP, &legacy),
            Err(SyncError::LegacyFeatures(0x20))
        );
        let mut bad = state.clone();
        bad.dr7 = 0x401;
        assert_eq!(
            sync_vmsa(
                &bad,
                SevMode::SevEs,
                SevFeatures::empty(),
                &KvmParams::default()
            ),
            Err(SyncError::Dr7(0x401))
        );
        assert!(matches!(
            sync_vmsa(
                &state,
                SevMode::Snp,
                SevFeatures::from_bits_retain(0x3),
                &KvmParams::default()
            ),
            Err(SyncError::UnsupportedFeatures { features: 2, .. })
        ));
    }

    #[test]
    fn a_synced_page_is_reproduced_exactly() {
        let state = architectural_reset(CpuSignature(0x800f12));
        let page = sync_vmsa(
            &state,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        let f = check_vmsa(&page, INITIAL_VMSA_GPA, 1, &qemu_params());
        assert!(
            f.is_exact(),
            "{:?}",
            f.findings().collect::<std::vec::Vec<_>>()
        );
    }

    #[test]
    fn qemu_tr_bug_and_forced_fields_are_reported() {
        let state = architectural_reset(CpuSignature(0x800f12));
        let mut page = sync_vmsa(
            &state,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        page.tr.base = 0x1000;
        page.efer = 0; // KVM forces SVME
        page.gdtr.attrib = SegmentAttributes(0x82);
        page.reserved_670[5] = 1;
        let f = check_vmsa(&page, INITIAL_VMSA_GPA, 1, &qemu_params());
        let names: std::vec::Vec<_> = f.findings().map(|c| (c.field.name, c.origin)).collect();
        assert_eq!(
            names,
            [
                ("gdtr", Origin::Shaped),
                ("tr", Origin::Programmed),
                ("efer", Origin::Shaped),
                ("reserved_670", Origin::NotExpressible)
            ]
        );
        // The direct path has no TR bug.
        let direct = FidelityParams {
            path: VmmPath::Direct,
            ..qemu_params()
        };
        let f = check_vmsa(&page, INITIAL_VMSA_GPA, 1, &direct);
        assert!(f.findings().all(|c| c.field.name != "tr"));
    }

    #[test]
    fn refusals() {
        let state = architectural_reset(CpuSignature(0));
        let mut page = sync_vmsa(
            &state,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        page.dr7 = 0x401;
        page.sev_features = 0x21;
        let f = check_vmsa(&page, 0x1000, 1, &qemu_params());
        assert_eq!(
            f.refusals(),
            [
                Refusal::Gpa(0x1000),
                Refusal::Kvm(SyncError::Dr7(0x401)),
                Refusal::FeaturesDifferFromBsp { bsp: 1, this: 0x21 }
            ]
        );
        let legacy = FidelityParams {
            mode: SevMode::SevEs,
            kvm: KvmParams {
                init: VmInit::Legacy,
                ..KvmParams::default()
            },
            path: VmmPath::Qemu,
        };
        let mut es = sync_vmsa(
            &state,
            SevMode::SevEs,
            SevFeatures::empty(),
            &KvmParams::default(),
        )
        .unwrap();
        let f = check_vmsa(&es, INITIAL_VMSA_GPA, 0, &legacy);
        assert!(f.refusals().is_empty());
        let forced: std::vec::Vec<_> = f.findings().map(|c| (c.field.name, c.origin)).collect();
        assert_eq!(
            forced,
            [
                ("mxcsr", Origin::ForcedByKvm),
                ("x87_fcw", Origin::ForcedByKvm)
            ]
        );
        es.sev_features = 0x20;
        let f = check_vmsa(&es, INITIAL_VMSA_GPA, 0x20, &legacy);
        assert_eq!(
            f.refusals(),
            [Refusal::Kvm(SyncError::LegacyFeatures(0x20))]
        );
    }
}
