//! The launch VMSAs of a guest booted from OVMF: every vCPU's reset state as QEMU programs it
//! (`x86_cpu_reset`, `sev_es_set_ap_context`), synced by KVM (`sev_es_sync_vmsa`).
//!
//! ```
//! use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
//! use vmsa_core::ovmf::{build, OvmfImage, Section, SectionType, TableEntry};
//! use vmsa_core::reset::VmmType;
//! use vmsa_core::{CpuSignature, SevMode};
//!
//! let mut image = [0u8; 4096];
//! let secs = [Section::new(0x80_0000, 0x1000, SectionType::SNP_SECRETS)];
//! build(&mut image, &[TableEntry::SevEsResetBlock { reset_addr: 0x80_b004 }], Some(&secs)).unwrap();
//! let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
//!
//! let cfg = LaunchConfig::new(SevMode::Snp, 4, CpuSignature::named("EPYC-v4").unwrap(), VmmType::Qemu);
//! let launch = Launch::new(&fw, &cfg).unwrap();
//! let ap = launch.vmsa(1).unwrap();
//! assert_eq!((ap.vmsa.cs.base, ap.vmsa.rip), (0x80_0000, 0xb004));
//! assert_eq!(launch.vmsa(0).unwrap().vmsa.rdx, 0x800f12);
//! assert_eq!(launch.vmsas().count(), 4);
//! ```

use super::config::LaunchConfig;
use super::error::LaunchError;
use crate::arch::RESET_VECTOR;
use crate::host::ApFpu;
use crate::igvm::At;
use crate::kvm::{self, Fidelity, FidelityParams, SyncInputs, check_vmsa};
use crate::ovmf::OvmfImage;
use crate::page::VMSA_GPA;
use crate::reset::{VmmType, vmm_state};
use crate::vmsa::Vmsa;

/// Where a vCPU's launch VMSA comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum VmsaSource {
    /// An IGVM `VP_CONTEXT`.
    Context {
        /// The header that won (the last one for this vCPU).
        at: At,
        /// How many earlier contexts for this vCPU it replaced (QEMU: the later one wins).
        replaced: u32,
        /// The first of the replaced ones, if any.
        first: Option<At>,
    },
    /// The reset state as the VMM programs it and KVM syncs it (OVMF: the BSP at the reset
    /// vector, the APs at the SEV-ES reset block's address; IGVM: a vCPU without a context).
    Reset,
}

/// One vCPU's launch VMSA (QEMU's `SevLaunchVmsa`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchVmsa {
    /// vCPU index (0 = BSP), the order KVM measures them in.
    pub cpu_index: u32,
    /// The GPA the VMSA is asked for at: KVM's 0xFFFFFFFFF000 for every reset VMSA, what the
    /// file says for an IGVM VP context (KVM places it at 0xFFFFFFFFF000 whatever it says).
    pub gpa: u64,
    /// The page.
    pub vmsa: Vmsa,
    /// Where it comes from.
    pub source: VmsaSource,
}

/// The page one vCPU starts from, for `cfg`: [`vmm_state`] synced by the platform model.
/// `eip` is [`RESET_VECTOR`] for the BSP and the AP reset address for an AP.
pub fn vcpu_vmsa(cfg: &LaunchConfig, cpu_index: u32, eip: u32) -> Result<Vmsa, LaunchError> {
    let mut state = vmm_state(cfg.vmm, cfg.signature, cpu_index, eip);
    if cfg.vmm == VmmType::Qemu && cpu_index > 0 && cfg.ap_fpu == ApFpu::Zero {
        // QEMU ≥ 10.1 `sev_apply_cpu_context`: the AP's launch VMSA has no FPU words.
        state.x87_fcw = 0;
        state.mxcsr = 0;
    }
    Ok(match cfg.vmm {
        VmmType::Qemu | VmmType::Kvm | VmmType::Krun => {
            kvm::sync_vmsa(&state, cpu_index, cfg.mode, cfg.guest_features, &cfg.kvm)?
        }
        // Not KVM. sev-snp-measure's values are KVM's forced bits (SVME, MCE, CD/NW cleared)
        // with the features as given and no FPU state in the VMSA.
        VmmType::Ec2 | VmmType::Gce => kvm::sync_with(
            &state,
            &SyncInputs {
                sev_features: cfg.guest_features,
                host_cr4_mce: true,
                cd_nw_quirk: true,
                copy_fpu: false,
            },
        ),
    })
}

/// The launch VMSAs of an OVMF guest: the BSP's page and one page shared by all APs (they
/// differ in nothing but their index), so no allocation is needed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct OvmfVmsas {
    vcpus: u32,
    bsp: Vmsa,
    ap: Option<Vmsa>,
}

impl OvmfVmsas {
    /// The launch VMSAs of `cfg.vcpus` vCPUs booted from `firmware`. The caller has checked the
    /// vCPU count, the mode and the metadata; this refuses what QEMU refuses of the reset
    /// block (missing, or address 0, for any SEV-ES/SNP guest) and what KVM refuses at the sync.
    pub(super) fn new(firmware: &OvmfImage<'_>, cfg: &LaunchConfig) -> Result<Self, LaunchError> {
        // QEMU's `sev_es_save_reset_vector` needs the reset block for every SEV-ES/SNP guest,
        // even one whose only vCPU starts at the reset vector.
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
        let bsp = vcpu_vmsa(cfg, 0, RESET_VECTOR)?;
        let ap = match ap_eip {
            Some(eip) => Some(vcpu_vmsa(cfg, 1, eip)?),
            None => None,
        };
        Ok(Self {
            vcpus: cfg.vcpus,
            bsp,
            ap,
        })
    }

    /// `cfg.vcpus` vCPUs from `cfg`'s VMM state, the BSP at the reset vector and the APs at
    /// `ap_eip` (a libkrun launch: qboot's AP entry).
    pub(super) fn with_ap_eip(cfg: &LaunchConfig, ap_eip: u32) -> Result<Self, LaunchError> {
        Ok(Self {
            vcpus: cfg.vcpus,
            bsp: vcpu_vmsa(cfg, 0, RESET_VECTOR)?,
            ap: match cfg.vcpus > 1 {
                true => Some(vcpu_vmsa(cfg, 1, ap_eip)?),
                false => None,
            },
        })
    }

    /// `vcpus` vCPUs that all start from `vmsa` (an SVSM launch).
    pub(super) fn same(vcpus: u32, vmsa: Vmsa) -> Self {
        Self {
            vcpus,
            bsp: vmsa.clone(),
            ap: Some(vmsa),
        }
    }

    /// vCPU `cpu_index`'s launch VMSA.
    pub(super) fn get(&self, cpu_index: u32) -> Option<LaunchVmsa> {
        let vmsa = match cpu_index {
            0 => &self.bsp,
            i if i < self.vcpus => self.ap.as_ref()?,
            _ => return None,
        };
        Some(LaunchVmsa {
            cpu_index,
            gpa: VMSA_GPA,
            vmsa: vmsa.clone(),
            source: VmsaSource::Reset,
        })
    }
}

/// Whether KVM would reproduce `entry` under `cfg` (mode, host, who programs the vCPUs; vCPU
/// 0's features apply to every vCPU).
pub(super) fn fidelity<'e>(cfg: &LaunchConfig, entry: &'e LaunchVmsa) -> Fidelity<'e> {
    let params = FidelityParams {
        mode: cfg.mode,
        kvm: cfg.kvm,
        path: cfg.path,
    };
    check_vmsa(
        &entry.vmsa,
        entry.cpu_index,
        entry.gpa,
        cfg.guest_features.bits(),
        &params,
    )
}
