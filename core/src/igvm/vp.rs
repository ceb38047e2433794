//! VP contexts as per-vCPU launch VMSAs, and whether KVM would reproduce them.
//!
//! For an SEV-ES or SNP platform, each `VP_CONTEXT` carries a 4 KiB VMSA for one vCPU: that
//! page is the ABI the guest owner attests. KVM measures a VMSA for **every** vCPU, in index
//! order (`sev_launch_update_vmsa` / `snp_launch_update_vmsa`), so a vCPU without a context
//! gets the reset-state VMSA ([`crate::reset::vcpu_vmsa`] at the reset vector 0xFFFFFFF0: with
//! IGVM QEMU has no OVMF reset block, so `sev_es_set_reset_vector` leaves the APs at the
//! architectural reset vector). A later context for the same vCPU replaces an earlier one, as
//! in QEMU `sev_set_cpu_context` (target/i386/sev.c), and [`Source::Context::replaced`] says
//! so. Only vCPU 0's `sev_features` reach KVM (`KVM_SEV_INIT2` `vmsa_features`, QEMU commit
//! d60238b4c1), so the reset VMSAs carry those.
//!
//! [`IgvmLaunch::fidelity`] applies [`crate::kvm_model::check_vmsa`]: GPA other than
//! 0xFFFFFFFFF000, DR7 ≠ 0x400, features that differ from vCPU 0's, and every field KVM
//! would not reproduce (GDTR/IDTR selector and attrib, `cpl` ≠ SS.DPL, fields outside the
//! registers QEMU hands to KVM...). [`IgvmLaunch::check_strict`] refuses such a file.
//!
//! Nothing here allocates: each vCPU's page is resolved from the file on demand.

use super::error::{At, IgvmError};
use super::header::VpContextData;
use super::platform::Platform;
use super::{IgvmFile, platform_name};
use crate::flags::SevFeatures;
use crate::kvm_model::{Fidelity, FidelityParams, INITIAL_VMSA_GPA, Origin, VmmPath, check_vmsa};
use crate::reset::{self, BSP_RESET_EIP, LaunchConfig, LaunchError, SevMode};
use crate::vmsa::Vmsa;
use igvm_defs::IgvmPlatformType;

/// Where a vCPU's launch VMSA comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum Source {
    /// A `VP_CONTEXT` of the file.
    Context {
        /// The header that won (the last one for this vCPU).
        at: At,
        /// How many earlier contexts for this vCPU it replaced (QEMU: the later one wins).
        replaced: u32,
        /// The first of the replaced ones, if any.
        first: Option<At>,
    },
    /// No context: the reset state KVM measures for every vCPU.
    Reset,
}

/// One vCPU's launch VMSA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEntry {
    /// vCPU index (0 = BSP), the order KVM measures them in.
    pub cpu_index: u32,
    /// The GPA the file asks for (KVM always uses 0xFFFFFFFFF000).
    pub gpa: u64,
    /// The page.
    pub vmsa: Vmsa,
    /// Where it comes from.
    pub source: Source,
}

/// Why an IGVM file's launch VMSAs cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgvmLaunchError {
    /// The selected platform is not SEV-ES or SNP, so it has no VMSAs.
    #[error("platform {0} has no VMSAs (only sev-es and snp do)")]
    NoVmsas(&'static str),
    /// A context for a vCPU the guest does not have (QEMU: "SEV: unable to set CPU context for
    /// out of bounds CPU index").
    #[error("{at}: VP context for vCPU {vp_index}, but the guest has {vcpus} vCPUs")]
    VpIndexOutOfRange {
        /// The header.
        at: At,
        /// Its VP index.
        vp_index: u16,
        /// vCPU count.
        vcpus: u32,
    },
    /// The reset state for the vCPUs without a context cannot be made.
    #[error(transparent)]
    Reset(#[from] LaunchError),
    /// Strict mode: KVM would not reproduce vCPU `cpu_index`'s context.
    #[error(
        "{at}: KVM would not reproduce the VMSA of vCPU {cpu_index} ({refusals} refusal(s), {fields} field(s) differ); see the fidelity report"
    )]
    NotReproducible {
        /// The vCPU.
        cpu_index: u32,
        /// Its VP context header.
        at: At,
        /// Refusals.
        refusals: usize,
        /// Fields KVM would change.
        fields: usize,
    },
    /// QEMU would refuse vCPU `cpu_index`'s context (`check_vmsa_supported`: a refusal, or a
    /// field outside the set QEMU copies into KVM that is not zero).
    #[error(
        "{at}: QEMU would refuse the VMSA of vCPU {cpu_index} ({refusals} refusal(s), {fields} field(s) QEMU cannot pass to KVM are not zero); see the fidelity report"
    )]
    RefusedByQemu {
        /// The vCPU.
        cpu_index: u32,
        /// Its VP context header.
        at: At,
        /// Refusals.
        refusals: usize,
        /// Non-zero fields QEMU does not copy.
        fields: usize,
    },
    /// The file is malformed.
    #[error(transparent)]
    Igvm(#[from] IgvmError),
}

/// The launch VMSAs of an IGVM file on one SEV-ES/SNP platform.
#[derive(Debug, Clone)]
pub struct IgvmLaunch<'f, 'a> {
    file: &'f IgvmFile<'a>,
    platform: Platform,
    cfg: LaunchConfig,
    path: VmmPath,
}

impl<'f, 'a> IgvmLaunch<'f, 'a> {
    /// Prepares the launch VMSAs of `file` on `platform` with `cfg.vcpus` vCPUs. `cfg.mode` is
    /// taken from the platform; `cfg.guest_features` from vCPU 0's context when it has one.
    /// `path` is who programs the vCPUs (QEMU, or a VMM that programs every register).
    pub fn new(
        file: &'f IgvmFile<'a>,
        platform: Platform,
        mut cfg: LaunchConfig,
        path: VmmPath,
    ) -> Result<Self, IgvmLaunchError> {
        cfg.mode = match platform.platform_type {
            IgvmPlatformType::SEV_SNP => SevMode::Snp,
            IgvmPlatformType::SEV_ES => SevMode::SevEs,
            other => return Err(IgvmLaunchError::NoVmsas(platform_name(other))),
        };
        if cfg.vcpus == 0 {
            return Err(LaunchError::NoVcpus.into());
        }
        if cfg.vcpus > cfg.max_vcpus {
            return Err(LaunchError::TooManyVcpus {
                vcpus: cfg.vcpus,
                max: cfg.max_vcpus,
            }
            .into());
        }
        for (at, vp) in file.vp_contexts(platform.compatibility_mask) {
            if u32::from(vp.vp_index) >= cfg.vcpus {
                return Err(IgvmLaunchError::VpIndexOutOfRange {
                    at,
                    vp_index: vp.vp_index,
                    vcpus: cfg.vcpus,
                });
            }
        }
        let mut this = IgvmLaunch {
            file,
            platform,
            cfg,
            path,
        };
        if let Some(bsp) = this.last_context(0) {
            this.cfg.guest_features = SevFeatures::from_bits_retain(bsp.vmsa.sev_features);
        }
        Ok(this)
    }

    /// The platform.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The configuration in use (mode and guest features as resolved).
    pub fn config(&self) -> &LaunchConfig {
        &self.cfg
    }

    /// vCPU `cpu`'s VP context: the last one in the file, with what it replaced.
    fn last_context(&self, cpu: u32) -> Option<LaunchEntry> {
        let mut found: Option<LaunchEntry> = None;
        let (mut replaced, mut first) = (0u32, None);
        for (at, vp) in self.file.vp_contexts(self.platform.compatibility_mask) {
            let VpContextData::Vmsa(page) = vp.data else {
                continue;
            };
            if u32::from(vp.vp_index) != cpu {
                continue;
            }
            if let Some(LaunchEntry {
                source: Source::Context { at: prev, .. },
                ..
            }) = found
            {
                replaced += 1;
                first.get_or_insert(prev);
            }
            let vmsa: Vmsa = zerocopy::transmute!(*page);
            found = Some(LaunchEntry {
                cpu_index: cpu,
                gpa: vp.gpa,
                vmsa,
                source: Source::Context {
                    at,
                    replaced,
                    first,
                },
            });
        }
        found
    }

    /// vCPU `cpu`'s launch VMSA.
    pub fn entry(&self, cpu: u32) -> Result<LaunchEntry, IgvmLaunchError> {
        if let Some(entry) = self.last_context(cpu) {
            return Ok(entry);
        }
        Ok(LaunchEntry {
            cpu_index: cpu,
            gpa: INITIAL_VMSA_GPA,
            vmsa: reset::vcpu_vmsa(&self.cfg, cpu, BSP_RESET_EIP)?,
            source: Source::Reset,
        })
    }

    /// Every vCPU's launch VMSA, in index (measurement) order.
    pub fn entries(&self) -> impl Iterator<Item = Result<LaunchEntry, IgvmLaunchError>> + '_ {
        (0..self.cfg.vcpus).map(|cpu| self.entry(cpu))
    }

    /// Whether KVM would reproduce `entry` (a VP context; reset VMSAs are KVM's own).
    pub fn fidelity<'e>(&self, entry: &'e LaunchEntry) -> Fidelity<'e> {
        let params = FidelityParams {
            mode: self.cfg.mode,
            kvm: self.cfg.kvm,
            path: self.path,
        };
        check_vmsa(
            &entry.vmsa,
            entry.gpa,
            self.cfg.guest_features.bits(),
            &params,
        )
    }

    /// `entry` as KVM measures it behind the VMM path of this launch: a VP context becomes the
    /// page KVM builds from what the VMM programs ([`Fidelity::reproduced`]); a reset VMSA is
    /// KVM's already. Refuses what QEMU refuses (`check_vmsa_supported`): any refusal, and any
    /// non-zero field the VMM cannot pass to KVM.
    pub fn as_launched(&self, entry: LaunchEntry) -> Result<LaunchEntry, IgvmLaunchError> {
        let Source::Context { at, .. } = entry.source else {
            return Ok(entry);
        };
        let f = self.fidelity(&entry);
        let fields = f
            .findings()
            .filter(|c| c.origin == Origin::NotExpressible)
            .count();
        if !f.refusals().is_empty() || fields > 0 {
            return Err(IgvmLaunchError::RefusedByQemu {
                cpu_index: entry.cpu_index,
                at,
                refusals: f.refusals().len(),
                fields,
            });
        }
        let vmsa = f.reproduced().clone();
        Ok(LaunchEntry { vmsa, ..entry })
    }

    /// Strict mode: refuses the first VP context KVM would not reproduce exactly.
    pub fn check_strict(&self) -> Result<(), IgvmLaunchError> {
        for entry in self.entries() {
            let entry = entry?;
            let Source::Context { at, .. } = entry.source else {
                continue;
            };
            let f = self.fidelity(&entry);
            if !f.is_exact() {
                return Err(IgvmLaunchError::NotReproducible {
                    cpu_index: entry.cpu_index,
                    at,
                    refusals: f.refusals().len(),
                    fields: f.findings().count(),
                });
            }
        }
        Ok(())
    }
}
