//! The reset state of an x86 vCPU and the per-vCPU launch VMSAs of an SEV-ES/SNP guest booted
//! from OVMF.
//!
//! Three layers, each a pure function:
//!
//! 1. [`architectural_reset`]: what QEMU's `x86_cpu_reset_hold` (`target/i386/cpu.c`, QEMU 10.2)
//!    puts in `CPUX86State` — the plain, non-SEV reset state, as `info registers` shows it.
//! 2. [`vmm_state`]: what a VMM ([`VmmType`]) programs into KVM for one vCPU: the reset state,
//!    and for an AP the SEV-ES reset block (`sev_es_set_ap_context`, QEMU `target/i386/sev.c`).
//! 3. [`crate::kvm_model::sync_vmsa`]: what Linux's `sev_es_sync_vmsa` makes of it — the page the
//!    platform measures.
//!
//! [`launch_vmsas`] runs all three for every vCPU of a guest and refuses what cannot launch.
//!
//! ```
//! use vmsa_core::ovmf::{build, OvmfImage, Section, SectionType, TableEntry};
//! use vmsa_core::reset::{launch_vmsas, CpuSignature, LaunchConfig, SevMode, VmmType};
//!
//! let mut image = [0u8; 4096];
//! let secs = [Section::new(0x80_0000, 0x1000, SectionType::SNP_SECRETS)];
//! build(&mut image, &[TableEntry::SevEsResetBlock { reset_addr: 0x80_b004 }], Some(&secs)).unwrap();
//! let fw = OvmfImage::parse(&image).unwrap();
//!
//! let cfg = LaunchConfig::new(SevMode::Snp, 4, CpuSignature::named("EPYC-v4").unwrap(), VmmType::Qemu);
//! let launch = launch_vmsas(&fw, &cfg).unwrap();
//! let ap = launch.get(1).unwrap();
//! assert_eq!((ap.vmsa.cs.base, ap.vmsa.rip), (0x80_0000, 0xb004));
//! assert_eq!(launch.get(0).unwrap().vmsa.rdx, 0x800f12);
//! assert_eq!(launch.iter().count(), 4);
//! ```

use crate::flags::{Cr0, Rflags, SevFeatures};
use crate::kvm_model::{self, INITIAL_VMSA_GPA, KvmParams, SyncError, SyncInputs};
use crate::ovmf::{OvmfError, OvmfImage};
use crate::segment::{SegmentAttributes, VmcbSegment};
use crate::vmsa::Vmsa;
use core::fmt;
use zerocopy::FromZeros;

/// The CPUID signature (CPUID Fn0000_0001 EAX: family, model, stepping) that QEMU puts in RDX
/// at reset. Any `u32` is a signature, 0 included.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct CpuSignature(pub u32);

/// One named QEMU CPU model (`builtin_x86_defs` and its versions, `target/i386/cpu.c`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuType {
    /// The name `-cpu` takes.
    pub name: &'static str,
    /// Family.
    pub family: u32,
    /// Model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
}

const fn cpu(name: &'static str, family: u32, model: u32, stepping: u32) -> CpuType {
    CpuType {
        name,
        family,
        model,
        stepping,
    }
}

/// The QEMU EPYC family: every name sev-snp-measure 0.0.13 knows (`vcpu_types.py` `CPU_SIGS`)
/// plus the later versions QEMU 10.2 defines (EPYC-Rome-v4/v5, EPYC-Milan-v3, EPYC-Genoa-v2,
/// EPYC-Turin-v1); versions of a model share its family/model/stepping. `qemu64` (15/107/1) is
/// QEMU's default x86-64 model.
pub const CPU_TYPES: &[CpuType] = &[
    cpu("EPYC", 23, 1, 2),
    cpu("EPYC-v1", 23, 1, 2),
    cpu("EPYC-v2", 23, 1, 2),
    cpu("EPYC-IBPB", 23, 1, 2),
    cpu("EPYC-v3", 23, 1, 2),
    cpu("EPYC-v4", 23, 1, 2),
    cpu("EPYC-Rome", 23, 49, 0),
    cpu("EPYC-Rome-v1", 23, 49, 0),
    cpu("EPYC-Rome-v2", 23, 49, 0),
    cpu("EPYC-Rome-v3", 23, 49, 0),
    cpu("EPYC-Rome-v4", 23, 49, 0),
    cpu("EPYC-Rome-v5", 23, 49, 0),
    cpu("EPYC-Milan", 25, 1, 1),
    cpu("EPYC-Milan-v1", 25, 1, 1),
    cpu("EPYC-Milan-v2", 25, 1, 1),
    cpu("EPYC-Milan-v3", 25, 1, 1),
    cpu("EPYC-Genoa", 25, 17, 0),
    cpu("EPYC-Genoa-v1", 25, 17, 0),
    cpu("EPYC-Genoa-v2", 25, 17, 0),
    cpu("EPYC-Turin", 26, 0, 0),
    cpu("EPYC-Turin-v1", 26, 0, 0),
    cpu("qemu64", 15, 107, 1),
];

/// What cannot become a [`CpuSignature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A family above 0x10e (0xf + 0xff) does not fit the base and extended family fields.
    #[error("family {0:#x} does not fit CPUID (at most 0x10e)")]
    Family(u32),
    /// A model above 0xff.
    #[error("model {0:#x} does not fit CPUID (at most 0xff)")]
    Model(u32),
    /// A stepping above 0xf.
    #[error("stepping {0:#x} does not fit CPUID (at most 0xf)")]
    Stepping(u32),
}

/// A CPU type name nobody defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown vCPU type; known types are the QEMU EPYC family (EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome[-v1..v5], EPYC-Milan[-v1..v3], EPYC-Genoa[-v1,v2], EPYC-Turin[-v1]) and qemu64"
)]
pub struct UnknownCpuType;

impl CpuSignature {
    /// The signature of a family/model/stepping, as QEMU's `x86_cpuid_version_set_family/model/
    /// stepping` and sev-snp-measure's `cpu_sig` compute it (AMD CPUID spec #25481, Fn0000_0001
    /// EAX): family above 0xf goes to base 0xf plus extended family; model bits 7:4 to the
    /// extended model. Values that do not fit are errors, not masked.
    pub const fn from_family_model_stepping(
        family: u32,
        model: u32,
        stepping: u32,
    ) -> Result<Self, SignatureError> {
        if family > 0xf + 0xff {
            return Err(SignatureError::Family(family));
        }
        if model > 0xff {
            return Err(SignatureError::Model(model));
        }
        if stepping > 0xf {
            return Err(SignatureError::Stepping(stepping));
        }
        let (base, ext) = if family > 0xf {
            (0xf, family - 0xf)
        } else {
            (family, 0)
        };
        Ok(Self(
            ext << 20 | (model >> 4) << 16 | base << 8 | (model & 0xf) << 4 | stepping,
        ))
    }

    /// The signature of a named CPU type ([`CPU_TYPES`], names compared ignoring ASCII case).
    pub fn named(name: &str) -> Result<Self, UnknownCpuType> {
        let t = CPU_TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or(UnknownCpuType)?;
        Self::from_family_model_stepping(t.family, t.model, t.stepping).map_err(|_| UnknownCpuType)
    }

    /// The displayed family (base + extended when base is 0xf).
    pub const fn family(self) -> u32 {
        let base = (self.0 >> 8) & 0xf;
        if base == 0xf {
            base + ((self.0 >> 20) & 0xff)
        } else {
            base
        }
    }

    /// The displayed model (extended model bits included).
    pub const fn model(self) -> u32 {
        ((self.0 >> 16) & 0xf) << 4 | (self.0 >> 4) & 0xf
    }

    /// The stepping.
    pub const fn stepping(self) -> u32 {
        self.0 & 0xf
    }
}

impl fmt::Display for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x} (family {:#x}, model {:#x}, stepping {})",
            self.0,
            self.family(),
            self.model(),
            self.stepping()
        )
    }
}

impl fmt::Debug for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSignature({self})")
    }
}

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
}

impl VmmType {
    /// Every VMM type.
    pub const ALL: [Self; 4] = [Self::Qemu, Self::Ec2, Self::Gce, Self::Kvm];

    /// The name the command line takes (`qemu`, `ec2`, `gce`, `kvm`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Ec2 => "ec2",
            Self::Gce => "gce",
            Self::Kvm => "kvm",
        }
    }

    /// The type with this name (ASCII case ignored, so sev-snp-measure's `QEMU` works).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }
}

/// SEV-ES or SEV-SNP.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum SevMode {
    /// SEV-ES: VMSAs measured into the SHA-256 launch digest by `LAUNCH_UPDATE_VMSA`.
    SevEs,
    /// SEV-SNP: VMSAs measured at `SNP_LAUNCH_FINISH`, at GPA 0xFFFFFFFFF000.
    Snp,
}

/// The reset vector: the BSP starts at 0xfffffff0 (CS base 0xffff0000, IP 0xfff0).
pub const BSP_RESET_EIP: u32 = 0xffff_fff0;

/// Guest PAT at reset (`MSR_IA32_CR_PAT_DEFAULT`, APM Vol. 2 §7.8.2 / A.3).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// Guest PAT that GCE programs (sev-snp-measure `vmsa.py`).
pub const PAT_GCE: u64 = 0x0007_0106;
/// CR0 at reset: CD | NW | ET (`x86_cpu_reset_hold`, APM Table 14-1).
pub const CR0_RESET: u64 = Cr0::CD.bits() | Cr0::NW.bits() | Cr0::ET.bits();
/// DR6 at reset (`DR6_ACTIVE_LOW`).
pub const DR6_RESET: u64 = 0xffff_0ff0;
/// DR7 at reset (`DR7_FIXED_1`); KVM refuses to sync any other value.
pub const DR7_RESET: u64 = 0x400;
/// x87 control word at reset (FNINIT).
pub const FCW_RESET: u16 = 0x37f;
/// MXCSR at reset.
pub const MXCSR_RESET: u32 = 0x1f80;
/// XCR0 at reset: x87 only (`XSTATE_FP_MASK`).
pub const XCR0_RESET: u64 = 1;
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
/// its reset state, with CS:IP at `eip` (the AP reset address for an AP, [`BSP_RESET_EIP`] for
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

/// The largest vCPU count accepted: QEMU q35 `max_cpus` (4096 since QEMU 9.0) and KVM's
/// `KVM_MAX_VCPUS` ceiling (`CONFIG_KVM_MAX_NR_VCPUS` ≤ 4096).
pub const MAX_VCPUS: u32 = 4096;

/// Everything that decides the launch VMSAs besides the firmware.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LaunchConfig {
    /// SEV-ES or SNP.
    pub mode: SevMode,
    /// vCPU count (1..=`max_vcpus`).
    pub vcpus: u32,
    /// The vCPU signature (RDX at reset for QEMU).
    pub signature: CpuSignature,
    /// Who programs the vCPUs.
    pub vmm: VmmType,
    /// `sev_features` of every VMSA, as sev-snp-measure's `--guest-features`: for SNP it must
    /// include SNP_ACTIVE (default 0x1); for SEV-ES it must not (default 0). The bits besides
    /// SNP_ACTIVE are `KVM_SEV_INIT2`'s `vmsa_features`.
    pub guest_features: SevFeatures,
    /// The KVM host facts (host CR4.MCE, INIT2 or legacy init, CD/NW quirk) for the `qemu` and
    /// `kvm` VMM types; EC2 and GCE are not KVM and ignore them.
    pub kvm: KvmParams,
    /// The most vCPUs the platform allows ([`MAX_VCPUS`]).
    pub max_vcpus: u32,
}

impl LaunchConfig {
    /// A configuration with the common defaults: guest features SNP_ACTIVE for SNP and 0 for
    /// SEV-ES, [`KvmParams::default`], [`MAX_VCPUS`].
    pub fn new(mode: SevMode, vcpus: u32, signature: CpuSignature, vmm: VmmType) -> Self {
        Self {
            mode,
            vcpus,
            signature,
            vmm,
            guest_features: match mode {
                SevMode::Snp => SevFeatures::SNP_ACTIVE,
                SevMode::SevEs => SevFeatures::empty(),
            },
            kvm: KvmParams::default(),
            max_vcpus: MAX_VCPUS,
        }
    }
}

/// A guest that cannot launch, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// Zero vCPUs.
    #[error("a guest needs at least one vCPU")]
    NoVcpus,
    /// More vCPUs than the platform allows.
    #[error("{vcpus} vCPUs is more than the {max} the platform allows")]
    TooManyVcpus {
        /// Requested.
        vcpus: u32,
        /// Allowed.
        max: u32,
    },
    /// No SEV-ES reset block. QEMU refuses such firmware for every SEV-ES/SNP guest, whatever
    /// the vCPU count (`sev_es_find_reset_vector`: "SEV information block/Firmware GUID Table
    /// block not found in pflash rom", then `exit(1)`); sev-snp-measure measures one vCPU anyway.
    #[error(
        "the firmware has no SEV-ES reset block (GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e): QEMU refuses to launch it under SEV-ES or SNP, even with {vcpus} vCPU(s) (\"SEV information block/Firmware GUID Table block not found in pflash rom\")"
    )]
    NoResetBlock {
        /// Requested vCPUs.
        vcpus: u32,
    },
    /// The reset block says 0 (QEMU `sev_es_parse_reset_block`: "SEV-ES reset address is zero",
    /// fatal for every SEV-ES/SNP guest).
    #[error(
        "the firmware's SEV-ES reset block at offset {offset:#x} gives AP reset address 0; QEMU refuses it (\"SEV-ES reset address is zero\"), even with {vcpus} vCPU(s)"
    )]
    ZeroResetAddress {
        /// Offset of the reset-block data.
        offset: usize,
        /// Requested vCPUs.
        vcpus: u32,
    },
    /// SNP needs `ASEV` metadata (QEMU: "Failed to locate SEV metadata header"); without it the
    /// secrets and CPUID pages are never populated. sev-snp-measure measures such images anyway.
    #[error(
        "SEV-SNP needs the firmware's ASEV SEV metadata (secrets, CPUID and pre-validated pages), and this image has none; it cannot boot under SNP"
    )]
    NoSevMetadata,
    /// The metadata has a section type nobody defines.
    #[error(transparent)]
    Firmware(#[from] OvmfError),
    /// SNP guest features without SNP_ACTIVE (KVM always sets it; QEMU `check_sev_features`).
    #[error("SEV-SNP guest features {0:#x} lack SNP_ACTIVE (bit 0), which KVM always sets for SNP")]
    SnpActiveMissing(u64),
    /// SEV-ES guest features with SNP_ACTIVE.
    #[error("SEV-ES guest features {0:#x} include SNP_ACTIVE (bit 0), which only SNP guests have")]
    SnpActiveWithoutSnp(u64),
    /// KVM would refuse the state or the init parameters.
    #[error(transparent)]
    Kvm(#[from] SyncError),
}

/// One vCPU's launch VMSA (QEMU's `SevLaunchVmsa`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LaunchVmsa {
    /// vCPU index (0 = BSP), the order KVM measures them in.
    pub cpu_index: u32,
    /// The VMSA's guest-physical address: KVM's `INITIAL_VMSA_GPA` 0xFFFFFFFFF000 for every
    /// vCPU (part of the SNP measurement; the SEV-ES digest does not include it).
    pub gpa: u64,
    /// The page the platform measures.
    pub vmsa: Vmsa,
}

/// The launch VMSAs of every vCPU: the BSP's page and one page shared by all APs (they differ
/// in nothing but their index), so no allocation is needed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LaunchVmsas {
    vcpus: u32,
    bsp: Vmsa,
    ap: Option<Vmsa>,
}

impl LaunchVmsas {
    /// vCPU count.
    pub const fn len(&self) -> u32 {
        self.vcpus
    }
    /// Never true (a launch has at least one vCPU); for clippy's sake.
    pub const fn is_empty(&self) -> bool {
        self.vcpus == 0
    }
    /// The BSP's VMSA.
    pub const fn bsp(&self) -> &Vmsa {
        &self.bsp
    }
    /// The VMSA every AP gets (`None` with one vCPU).
    pub const fn ap(&self) -> Option<&Vmsa> {
        self.ap.as_ref()
    }
    /// vCPU `cpu_index`'s page.
    pub fn vmsa(&self, cpu_index: u32) -> Option<&Vmsa> {
        match cpu_index {
            0 => Some(&self.bsp),
            i if i < self.vcpus => self.ap.as_ref(),
            _ => None,
        }
    }
    /// vCPU `cpu_index`'s launch entry.
    pub fn get(&self, cpu_index: u32) -> Option<LaunchVmsa> {
        Some(LaunchVmsa {
            cpu_index,
            gpa: INITIAL_VMSA_GPA,
            vmsa: self.vmsa(cpu_index)?.clone(),
        })
    }
    /// Every vCPU's page with its index, in index (measurement) order.
    pub fn pages(&self) -> impl Iterator<Item = (u32, &Vmsa)> + '_ {
        (0..self.vcpus).filter_map(|i| Some((i, self.vmsa(i)?)))
    }
    /// Every vCPU's launch entry, in index order.
    pub fn iter(&self) -> impl Iterator<Item = LaunchVmsa> + '_ {
        (0..self.vcpus).filter_map(|i| self.get(i))
    }
}

/// The page one vCPU starts from, for `cfg`: [`vmm_state`] synced by the platform model.
/// `eip` is [`BSP_RESET_EIP`] for the BSP and the AP reset address for an AP.
pub fn vcpu_vmsa(cfg: &LaunchConfig, cpu_index: u32, eip: u32) -> Result<Vmsa, LaunchError> {
    let state = vmm_state(cfg.vmm, cfg.signature, cpu_index, eip);
    Ok(match cfg.vmm {
        VmmType::Qemu | VmmType::Kvm => {
            kvm_model::sync_vmsa(&state, cfg.mode, cfg.guest_features, &cfg.kvm)?
        }
        // Not KVM. sev-snp-measure's values are KVM's forced bits (SVME, MCE, CD/NW cleared)
        // with the features as given and no FPU state in the VMSA.
        VmmType::Ec2 | VmmType::Gce => kvm_model::sync_with(
            &state,
            &SyncInputs {
                sev_features: cfg.guest_features,
                host_cr4_mce: true,
                cd_nw_quirk: true,
                copy_fpu: false,
            },
        )?,
    })
}

/// The launch VMSAs of a guest booted from `firmware` (the QEMU OVMF path: `x86_cpu_reset`,
/// `sev_es_set_ap_context`, then KVM's `sev_es_sync_vmsa` per vCPU).
///
/// Refuses what cannot launch: no vCPUs or too many; no reset block or reset address 0 (QEMU
/// refuses both for any SEV-ES/SNP guest); SNP without `ASEV` metadata or with an unknown section type; guest
/// features that contradict the mode; init parameters KVM refuses.
pub fn launch_vmsas(
    firmware: &OvmfImage<'_>,
    cfg: &LaunchConfig,
) -> Result<LaunchVmsas, LaunchError> {
    if cfg.vcpus == 0 {
        return Err(LaunchError::NoVcpus);
    }
    if cfg.vcpus > cfg.max_vcpus {
        return Err(LaunchError::TooManyVcpus {
            vcpus: cfg.vcpus,
            max: cfg.max_vcpus,
        });
    }
    let snp_bit = cfg.guest_features.contains(SevFeatures::SNP_ACTIVE);
    match cfg.mode {
        SevMode::Snp if !snp_bit => {
            return Err(LaunchError::SnpActiveMissing(cfg.guest_features.bits()));
        }
        SevMode::SevEs if snp_bit => {
            return Err(LaunchError::SnpActiveWithoutSnp(cfg.guest_features.bits()));
        }
        _ => {}
    }
    if cfg.mode == SevMode::Snp {
        let md = firmware.sev_metadata().ok_or(LaunchError::NoSevMetadata)?;
        md.check_known_types()?;
    }
    // QEMU's `sev_es_save_reset_vector` needs the reset block for every SEV-ES/SNP guest, even
    // one whose only vCPU starts at the reset vector.
    let block = firmware
        .reset_block()
        .ok_or(LaunchError::NoResetBlock { vcpus: cfg.vcpus })?;
    let ap_eip = match firmware.sev_es_reset_addr() {
        Some(0) | None => {
            return Err(LaunchError::ZeroResetAddress {
                offset: block.offset,
                vcpus: cfg.vcpus,
            });
        }
        Some(a) => (cfg.vcpus > 1).then_some(a),
    };
    let bsp = vcpu_vmsa(cfg, 0, BSP_RESET_EIP)?;
    let ap = match ap_eip {
        Some(eip) => Some(vcpu_vmsa(cfg, 1, eip)?),
        None => None,
    };
    Ok(LaunchVmsas {
        vcpus: cfg.vcpus,
        bsp,
        ap,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn signatures_match_sev_snp_measure() {
        // vcpu_types.py unit test: cpu_sig(14, 1, 2) == 0x0e12.
        assert_eq!(
            CpuSignature::from_family_model_stepping(14, 1, 2),
            Ok(CpuSignature(0xe12))
        );
        let expect = [
            ("EPYC-v4", 0x800f12),
            ("EPYC-Rome", 0x830f10),
            ("EPYC-Milan-v2", 0xa00f11),
            ("EPYC-Genoa", 0xa10f10),
            ("EPYC-Turin", 0xb00f00),
            ("epyc-ibpb", 0x800f12),
        ];
        for (name, sig) in expect {
            assert_eq!(CpuSignature::named(name), Ok(CpuSignature(sig)), "{name}");
        }
        assert_eq!(CpuSignature::named("EPYC-v9"), Err(UnknownCpuType));
        let s = CpuSignature(0xa10f10);
        assert_eq!((s.family(), s.model(), s.stepping()), (25, 17, 0));
    }

    #[test]
    fn signature_bits_are_not_masked() {
        assert_eq!(
            CpuSignature::from_family_model_stepping(0x10f, 0, 0),
            Err(SignatureError::Family(0x10f))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(0x10e, 0xff, 0xf),
            Ok(CpuSignature(0x0fff_0fff))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(6, 0x100, 0),
            Err(SignatureError::Model(0x100))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(6, 0, 16),
            Err(SignatureError::Stepping(16))
        );
    }

    #[test]
    fn every_cpu_type_round_trips() {
        for t in CPU_TYPES {
            let s = CpuSignature::named(t.name).unwrap();
            assert_eq!(
                (s.family(), s.model(), s.stepping()),
                (t.family, t.model, t.stepping)
            );
        }
    }
}
