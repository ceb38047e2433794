//! Whether KVM would reproduce a given VMSA, field by field: who decides each field
//! ([`Origin`]), what KVM would refuse ([`super::refusal`]) and the page it would produce
//! instead ([`Fidelity::reproduced`]).

use super::refusal::{self, Refusal};
use super::sync::{KvmParams, SyncInputs, VmInit, sync_with};
use crate::arch::DR7_RESET;
use crate::flags::SevFeatures;
use crate::mode::SevMode;
use crate::vmsa::{FIELDS, Field, FieldId, FieldValue, Vmsa, field_value};
use core::fmt;
use zerocopy::FromZeros;

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
        match (self.origin, self.field.id) {
            (_, FieldId::TR) => "QEMU loads the TR base from the LDTR base (sev_apply_cpu_context)",
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
    refusals: heapless::Vec<Refusal, 5>,
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
    use FieldId as F;
    let qemu = params.path == VmmPath::Qemu;
    let fpu = params.kvm.init == VmInit::Init2;
    match field.id {
        F::ES
        | F::CS
        | F::SS
        | F::DS
        | F::FS
        | F::GS
        | F::LDTR
        | F::TR
        | F::CR3
        | F::DR7
        | F::RIP
        | F::RAX
        | F::RBX
        | F::RCX
        | F::RDX
        | F::RSP
        | F::RBP
        | F::RSI
        | F::RDI
        | F::R8
        | F::R9
        | F::R10
        | F::R11
        | F::R12
        | F::R13
        | F::R14
        | F::R15
        | F::XCR0
        | F::DR6
        | F::G_PAT => Origin::Programmed,
        F::GDTR | F::IDTR | F::EFER | F::CR0 | F::CR4 | F::RFLAGS => Origin::Shaped,
        F::STAR
        | F::LSTAR
        | F::CSTAR
        | F::SFMASK
        | F::KERNEL_GS_BASE
        | F::SYSENTER_CS
        | F::PKRU
        | F::XSS
            if !qemu =>
        {
            Origin::Programmed
        }
        F::SYSENTER_ESP | F::SYSENTER_EIP if !qemu => Origin::Shaped,
        F::X87_FCW | F::MXCSR if fpu => Origin::Programmed,
        F::X87_DP
        | F::X87_FTW
        | F::X87_FSW
        | F::X87_FOP
        | F::X87_RIP
        | F::FPREG_X87
        | F::FPREG_XMM
        | F::FPREG_YMM
            if fpu && !qemu =>
        {
            Origin::Programmed
        }
        F::CPL | F::SEV_FEATURES | F::X87_DS | F::X87_CS => Origin::ForcedByKvm,
        F::X87_FCW
        | F::MXCSR
        | F::X87_DP
        | F::X87_FTW
        | F::X87_FSW
        | F::X87_FOP
        | F::X87_RIP
        | F::FPREG_X87
        | F::FPREG_XMM
        | F::FPREG_YMM
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

/// Whether KVM (behind the VMM `params.path`) would launch `target` as vCPU `vcpu` at `gpa`
/// and reproduce it byte for byte. `bsp_sev_features` is vCPU 0's `sev_features` (pass the
/// target's own for vCPU 0): KVM applies those to every vCPU.
///
/// The refusals are [`super::refusal`]'s (VMSA GPA, DR7, SNP_ACTIVE, features equal to vCPU
/// 0's, what `__sev_guest_init` accepts); then every field is compared with what KVM would
/// write (tail after 0x670, GDTR/IDTR selector and attrib, `cpl` vs SS.DPL, the TR base on the
/// QEMU path, FPU fields under the legacy init...).
pub fn check_vmsa<'a>(
    target: &'a Vmsa,
    vcpu: u32,
    gpa: u64,
    bsp_sev_features: u64,
    params: &FidelityParams,
) -> Fidelity<'a> {
    let mut refusals = heapless::Vec::<Refusal, 5>::new();
    // Capacity 5 holds every refusal below (at most one of each check).
    let mut refuse = |r: Result<(), Refusal>| {
        if let Err(r) = r {
            let _ = refusals.push(r);
        }
    };
    refuse(refusal::vmsa_gpa(vcpu, gpa));
    refuse(refusal::dr7(vcpu, target.dr7));
    refuse(refusal::snp_bit(params.mode, target.sev_features));
    refuse(refusal::same_features(
        vcpu,
        bsp_sev_features,
        target.sev_features,
    ));
    let bsp = SevFeatures::from_bits_retain(bsp_sev_features);
    let inputs = match params.kvm.sync_inputs(params.mode, bsp) {
        Ok(i) => i,
        Err(e) => {
            refuse(Err(e));
            // Keep reporting fields as if KVM had taken no features.
            SyncInputs {
                sev_features: if params.mode == SevMode::Snp {
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
    if refusal::dr7(vcpu, programmed.dr7).is_err() {
        programmed.dr7 = DR7_RESET;
    }
    let reproduced = sync_with(&programmed, &inputs);
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
    use super::super::sync::sync_vmsa;
    use super::*;
    use crate::cpu::CpuSignature;
    use crate::page::VMSA_GPA as INITIAL_VMSA_GPA;
    use crate::reset::architectural_reset;
    use crate::segment::SegmentAttributes;

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
            0,
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
        let v = sync_vmsa(&state, 0, SevMode::SevEs, SevFeatures::empty(), &legacy).unwrap();
        assert_eq!((v.cr4, v.cr0, v.x87_fcw, v.mxcsr), (0, 0x6000_0010, 0, 0));
        assert_eq!(
            sync_vmsa(&state, 0, SevMode::Snp, SevFeatures::SNP_ACTIVE, &legacy),
            Err(Refusal::LegacySnp)
        );
        assert_eq!(
            sync_vmsa(&state, 0, SevMode::SevEs, SevFeatures::DEBUG_SWAP, &legacy),
            Err(Refusal::LegacyFeatures {
                features: 0x20,
                legacy: 0
            })
        );
        let mut bad = state.clone();
        bad.dr7 = 0x401;
        assert_eq!(
            sync_vmsa(
                &bad,
                0,
                SevMode::SevEs,
                SevFeatures::empty(),
                &KvmParams::default()
            ),
            Err(Refusal::Dr7 {
                vcpu: 0,
                dr7: 0x401
            })
        );
        assert!(matches!(
            sync_vmsa(
                &state,
                0,
                SevMode::Snp,
                SevFeatures::from_bits_retain(0x3),
                &KvmParams::default()
            ),
            Err(Refusal::UnsupportedFeatures { features: 2, .. })
        ));
    }

    #[test]
    fn a_synced_page_is_reproduced_exactly() {
        let state = architectural_reset(CpuSignature(0x800f12));
        let page = sync_vmsa(
            &state,
            0,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        let f = check_vmsa(&page, 0, INITIAL_VMSA_GPA, 1, &qemu_params());
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
            0,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        page.tr.base = 0x1000;
        page.efer = 0; // KVM forces SVME
        page.gdtr.attrib = SegmentAttributes(0x82);
        page.reserved_670[5] = 1;
        let f = check_vmsa(&page, 0, INITIAL_VMSA_GPA, 1, &qemu_params());
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
        let f = check_vmsa(&page, 0, INITIAL_VMSA_GPA, 1, &direct);
        assert!(f.findings().all(|c| c.field.name != "tr"));
    }

    #[test]
    fn refusals() {
        let state = architectural_reset(CpuSignature(0));
        let mut page = sync_vmsa(
            &state,
            0,
            SevMode::Snp,
            SevFeatures::SNP_ACTIVE,
            &KvmParams::default(),
        )
        .unwrap();
        page.dr7 = 0x401;
        page.sev_features = 0x21;
        let f = check_vmsa(&page, 0, 0x1000, 1, &qemu_params());
        assert_eq!(
            f.refusals(),
            [
                Refusal::VmsaGpa {
                    vcpu: 0,
                    gpa: 0x1000
                },
                Refusal::Dr7 {
                    vcpu: 0,
                    dr7: 0x401
                },
                Refusal::FeaturesDisagree {
                    vcpu: 0,
                    bsp: 1,
                    this: 0x21
                }
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
            0,
            SevMode::SevEs,
            SevFeatures::empty(),
            &KvmParams::default(),
        )
        .unwrap();
        let f = check_vmsa(&es, 0, INITIAL_VMSA_GPA, 0, &legacy);
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
        let f = check_vmsa(&es, 0, INITIAL_VMSA_GPA, 0x20, &legacy);
        assert_eq!(
            f.refusals(),
            [Refusal::LegacyFeatures {
                features: 0x20,
                legacy: 0
            }]
        );
    }
}
