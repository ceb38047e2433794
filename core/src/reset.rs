//! The reset state of an x86 vCPU, and what each VMM programs into a vCPU before the
//! hypervisor syncs it into a VMSA.
//!
//! 1. [`architectural_reset`]: what QEMU's `x86_cpu_reset_hold` (`target/i386/cpu.c`, QEMU 10.2)
//!    puts in `CPUX86State` — the plain, non-SEV reset state, as `info registers` shows it.
//! 2. [`kvm_reset`]: KVM's own reset values (`kvm_vcpu_reset`, `init_vmcb`).
//! 3. [`vmm_state`]: what a VMM ([`VmmType`]) programs for one vCPU: the reset state, and for an
//!    AP the SEV-ES reset block's address (`sev_es_set_ap_context`, QEMU `target/i386/sev.c`).
//!
//! What KVM then makes of it is [`crate::kvm::sync`]; the launch VMSAs of a guest are
//! [`crate::launch`]'s.
//!
//! ```
//! use vmsa_core::reset::{vmm_state, VmmType};
//! use vmsa_core::CpuSignature;
//!
//! let ap = vmm_state(VmmType::Qemu, CpuSignature(0x800f12), 1, 0x80_b004);
//! assert_eq!((ap.cs.base, ap.rip, ap.rdx), (0x80_0000, 0xb004, 0x800f12));
//! ```

use crate::arch::{CR0_RESET, DR6_RESET, DR7_RESET, FCW_RESET, MXCSR_RESET, PAT_RESET, XCR0_RESET};
use crate::cpu::CpuSignature;
use crate::flags::Rflags;
use crate::segment::{SegmentAttributes, VmcbSegment};
use crate::vmsa::Vmsa;
use zerocopy::FromZeros;

/// The VMM that programs the vCPUs before KVM (or another hypervisor) syncs them into VMSAs.
///
/// The values are those sev-snp-measure 0.0.13 uses (`vmsa.py` `build_save_area`) for `qemu`,
/// `ec2` and `gce`, and KVM's own reset values for `kvm`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum VmmType {
    /// QEMU: the architectural reset state of [`architectural_reset`] (attribs 0x9b/0x93/0x82/
    /// 0x8b, RDX = the CPU signature, FCW 0x37f, MXCSR 0x1f80) pushed through KVM.
    Qemu,
    /// Amazon EC2 (sev-snp-measure's empirical values): CS 0x9a on the BSP and 0x9b on APs, SS
    /// 0x92, other data segments 0x93, TR 0x83, RDX 0x600, FCW and MXCSR 0. This is exactly
    /// KVM's reset state after a `KVM_GET_SREGS`/`KVM_SET_SREGS` round trip (`svm_get_segment`
    /// forces the accessed bit of DS/ES/FS/GS only) with the AP's CS written as 0x9b and no
    /// FPU state in the VMSA (our inference).
    Ec2,
    /// Google Compute Engine (sev-snp-measure's empirical values): QEMU's segment attributes,
    /// RDX 0x600, FCW and MXCSR 0, guest PAT 0x00070106.
    Gce,
    /// A VMM that leaves KVM's own reset values (`kvm_vcpu_reset`/`init_vmcb`): CS 0x9a, data
    /// 0x92, LDTR 0x82, TR 0x83, RDX 0x600. On the BSP it sets nothing. On an AP it must set CS
    /// and RIP: it reads the segments with `KVM_GET_SREGS` (which reports DS/ES/FS/GS with the
    /// accessed bit, 0x93), changes CS selector/base/limit (keeping 0x9a) and writes them back.
    Kvm,
    /// libkrun as it programmed TEE vCPUs (`setup_regs`, `setup_sregs`, `setup_fpu` of
    /// `src/arch/src/x86_64/regs.rs`, libkrun ≤ 1.15; libkrunfw's `utils/vmsa.h` dumps are its
    /// pages): KVM's reset segments read back and written (CS 0x9a, SS 0x92, DS/ES/FS/GS 0x93
    /// by `svm_get_segment`'s accessed bit, TR 0x83), RDX 0, the BSP's RSP and RBP 0x8ff0 and
    /// RSI 0x7000 (its boot_params page), FCW 0x37f and MXCSR 0x1f80 (in the VMSA under
    /// `KVM_SEV_INIT2` only). virtee's `sev` crate (`VMMType::KRUN`) models these pages without
    /// the BSP's three registers — it passes the vCPU count where libkrun's vCPU index belongs,
    /// so its BSP takes the AP branch: a defect of the crate — and without FPU state.
    Krun,
}

impl VmmType {
    /// Every VMM type.
    pub const ALL: [Self; 5] = [Self::Qemu, Self::Ec2, Self::Gce, Self::Kvm, Self::Krun];

    /// The name the command line takes (`qemu`, `ec2`, `gce`, `kvm`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Ec2 => "ec2",
            Self::Gce => "gce",
            Self::Kvm => "kvm",
            Self::Krun => "krun",
        }
    }

    /// The type with this name (ASCII case ignored, so sev-snp-measure's `QEMU` works).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }
}

/// libkrun's BSP stack pointer and frame pointer (`setup_regs`: `BOOT_STACK_POINTER`).
pub const KRUN_BOOT_STACK: u64 = 0x8ff0;
/// libkrun's BSP RSI: the boot_params ("zero page") address (`ZERO_PAGE_START`).
pub const KRUN_ZERO_PAGE: u64 = 0x7000;

/// Guest PAT that GCE programs (sev-snp-measure `vmsa.py`).
pub const PAT_GCE: u64 = 0x0007_0106;
/// RDX that KVM puts at vCPU creation when it has no CPUID yet (`kvm_vcpu_reset`: 0x600).
pub const KVM_RESET_RDX: u64 = 0x600;

/// The architectural reset state as QEMU's `x86_cpu_reset_hold` (QEMU 10.2, `target/i386/cpu.c`)
/// sets it, for a CPU with this signature: the plain (non-SEV) state `info registers` shows.
///
/// CS f000:ffff0000 limit 0xffff attrib 0x9b, DS/ES/FS/GS/SS 0 limit 0xffff attrib 0x93, GDTR/
/// IDTR limit 0xffff, LDTR 0x82 and TR 0x8b with limit 0xffff, CR0 0x60000010, RIP 0xfff0,
/// RFLAGS 2, RDX = signature, DR6 0xffff0ff0, DR7 0x400, PAT 0x0007040600070406, XCR0 1,
/// FCW 0x37f, MXCSR 0x1f80; everything else 0.
pub fn architectural_reset(signature: CpuSignature) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let data = VmcbSegment::new(0, SegmentAttributes::DATA_16BIT_RESET, 0xffff, 0);
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.cs = VmcbSegment::new(
        0xf000,
        SegmentAttributes::CODE_16BIT_RESET,
        0xffff,
        0xffff_0000,
    );
    v.gdtr = VmcbSegment::new(0, SegmentAttributes(0), 0xffff, 0);
    v.idtr = VmcbSegment::new(0, SegmentAttributes(0), 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, SegmentAttributes::LDT_RESET, 0xffff, 0);
    v.tr = VmcbSegment::new(0, SegmentAttributes::TSS32_BUSY_RESET, 0xffff, 0);
    v.cr0 = CR0_RESET;
    v.rip = 0xfff0;
    v.rflags = Rflags::FIXED.bits();
    v.rdx = u64::from(signature.0);
    v.dr6 = DR6_RESET;
    v.dr7 = DR7_RESET;
    v.g_pat = PAT_RESET;
    v.xcr0 = XCR0_RESET;
    v.x87_fcw = FCW_RESET;
    v.mxcsr = MXCSR_RESET;
    v
}

/// KVM's own reset state for a vCPU (`kvm_vcpu_reset` + `init_vmcb`, Linux 6.x): CS 0x9a, data
/// 0x92, LDTR 0x82, TR 0x83 (busy 16-bit TSS), RDX 0x600, otherwise as
/// [`architectural_reset`]. These are the values before KVM's setters shape the VMCB.
pub fn kvm_reset() -> Vmsa {
    let mut v = architectural_reset(CpuSignature(KVM_RESET_RDX as u32));
    let data = VmcbSegment::new(0, SegmentAttributes::DATA_16BIT_KVM_RESET, 0xffff, 0);
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.cs.attrib = SegmentAttributes::CODE_16BIT_KVM_RESET;
    v.tr.attrib = SegmentAttributes::TSS16_BUSY_KVM_RESET;
    v
}

/// Points CS:IP at `eip` the way the SEV-ES reset block says (`sev_es_set_ap_context`,
/// `docs/specs/sev-guest-firmware.rst`): selector 0xf000, base `eip & 0xffff0000`, limit 0xffff,
/// IP `eip & 0xffff`. The attribute is left as it is.
pub fn set_reset_vector(v: &mut Vmsa, eip: u32) {
    v.cs.selector = 0xf000;
    v.cs.base = u64::from(eip & 0xffff_0000);
    v.cs.limit = 0xffff;
    v.rip = u64::from(eip & 0xffff);
}

/// The state a VMM programs into vCPU `cpu_index` (0 = BSP) before the hypervisor syncs it:
/// its reset state, with CS:IP at `eip` (the AP reset address for an AP, [`RESET_VECTOR`](crate::arch::RESET_VECTOR) for
/// the BSP).
pub fn vmm_state(vmm: VmmType, signature: CpuSignature, cpu_index: u32, eip: u32) -> Vmsa {
    let bsp = cpu_index == 0;
    let mut v = match vmm {
        VmmType::Qemu => architectural_reset(signature),
        VmmType::Gce => {
            let mut v = architectural_reset(CpuSignature(KVM_RESET_RDX as u32));
            v.g_pat = PAT_GCE;
            v
        }
        VmmType::Krun => {
            let mut v = kvm_reset();
            for s in [&mut v.es, &mut v.ds, &mut v.fs, &mut v.gs] {
                s.attrib = SegmentAttributes::DATA_16BIT_RESET;
            }
            v.rdx = 0;
            if bsp {
                v.rsp = KRUN_BOOT_STACK;
                v.rbp = KRUN_BOOT_STACK;
                v.rsi = KRUN_ZERO_PAGE;
            }
            v
        }
        VmmType::Kvm | VmmType::Ec2 => {
            let mut v = kvm_reset();
            if !bsp || vmm == VmmType::Ec2 {
                // KVM_GET_SREGS reports DS/ES/FS/GS with the accessed bit (svm_get_segment);
                // the following KVM_SET_SREGS writes it into the VMCB.
                for s in [&mut v.es, &mut v.ds, &mut v.fs, &mut v.gs] {
                    s.attrib = SegmentAttributes::DATA_16BIT_RESET;
                }
            }
            if vmm == VmmType::Ec2 && !bsp {
                v.cs.attrib = SegmentAttributes::CODE_16BIT_RESET;
            }
            v
        }
    };
    set_reset_vector(&mut v, eip);
    v
}
