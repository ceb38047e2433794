//! IGVM VP contexts as per-vCPU launch VMSAs, and whether KVM would reproduce them.
//!
//! For an SEV-ES or SNP platform, each `VP_CONTEXT` carries a 4 KiB VMSA for one vCPU: that
//! page is the ABI the guest owner attests. KVM measures a VMSA for **every** vCPU, in index
//! order (`sev_launch_update_vmsa` / `snp_launch_update_vmsa`), so a vCPU without a context
//! gets the reset-state VMSA ([`super::vmsas::vcpu_vmsa`] at the reset vector 0xFFFFFFF0: with
//! IGVM QEMU has no OVMF reset block, so `sev_es_set_reset_vector` leaves the APs at the
//! architectural reset vector). A later context for the same vCPU replaces an earlier one, as
//! in QEMU `sev_set_cpu_context` (target/i386/sev.c), and [`VmsaSource::Context`] says so.
//! Only vCPU 0's `sev_features` reach KVM (`KVM_SEV_INIT2` `vmsa_features`, QEMU commit
//! d60238b4c1), so the reset VMSAs carry those.
//!
//! [`IgvmVmsas::fidelity`] applies [`crate::kvm::check_vmsa`]: GPA other than 0xFFFFFFFFF000,
//! DR7 ≠ 0x400, features that differ from vCPU 0's, and every field KVM would not reproduce
//! (GDTR/IDTR selector and attrib, `cpl` ≠ SS.DPL, fields outside the registers QEMU hands to
//! KVM...).
//!
//! Nothing here allocates: each vCPU's page is resolved from the file on demand.

use super::config::LaunchConfig;
use super::error::LaunchError;
use super::vmsas::{LaunchVmsa, VmsaSource, fidelity, vcpu_vmsa};
use crate::arch::RESET_VECTOR;
use crate::flags::SevFeatures;
use crate::igvm::{IgvmFile, Platform, VpContextData};
use crate::kvm::{Fidelity, Origin, refusal};
use crate::page::VMSA_GPA;
use crate::vmsa::Vmsa;

/// The launch VMSAs of an IGVM file on one SEV-ES/SNP platform.
#[derive(Debug, Clone)]
pub(super) struct IgvmVmsas<'f, 'a> {
    file: &'f IgvmFile<'a>,
    platform: Platform,
    cfg: LaunchConfig,
}

impl<'f, 'a> IgvmVmsas<'f, 'a> {
    /// Prepares the launch VMSAs of `file` on `platform` with `cfg.vcpus` vCPUs. `cfg.mode` is
    /// the platform's (the caller checked it); `cfg.guest_features` become vCPU 0's context's
    /// when it has one. Refuses a VP context for a vCPU the guest does not have.
    pub(super) fn new(
        file: &'f IgvmFile<'a>,
        platform: Platform,
        cfg: LaunchConfig,
    ) -> Result<Self, LaunchError> {
        refusal::vcpu_count(cfg.vcpus, cfg.max_vcpus)?;
        for (at, vp) in file.vp_contexts(platform.compatibility_mask) {
            if u32::from(vp.vp_index) >= cfg.vcpus {
                return Err(LaunchError::VpIndexOutOfRange {
                    at,
                    vp_index: vp.vp_index,
                    vcpus: cfg.vcpus,
                });
            }
        }
        let mut this = IgvmVmsas {
            file,
            platform,
            cfg,
        };
        if let Some(bsp) = this.last_context(0) {
            this.cfg.guest_features = SevFeatures::from_bits_retain(bsp.vmsa.sev_features);
        }
        Ok(this)
    }

    /// The configuration in use (guest features as resolved).
    pub(super) fn config(&self) -> &LaunchConfig {
        &self.cfg
    }

    /// vCPU `cpu`'s VP context: the last one in the file, with what it replaced.
    pub(super) fn last_context(&self, cpu: u32) -> Option<LaunchVmsa> {
        let mut found: Option<LaunchVmsa> = None;
        let (mut replaced, mut first) = (0u32, None);
        for (at, vp) in self.file.vp_contexts(self.platform.compatibility_mask) {
            let VpContextData::Vmsa(page) = vp.data else {
                continue;
            };
            if u32::from(vp.vp_index) != cpu {
                continue;
            }
            if let Some(LaunchVmsa {
                source: VmsaSource::Context { at: prev, .. },
                ..
            }) = found
            {
                replaced += 1;
                first.get_or_insert(prev);
            }
            let vmsa: Vmsa = zerocopy::transmute!(*page);
            found = Some(LaunchVmsa {
                cpu_index: cpu,
                gpa: vp.gpa,
                vmsa,
                source: VmsaSource::Context {
                    at,
                    replaced,
                    first,
                },
            });
        }
        found
    }

    /// vCPU `cpu`'s launch VMSA as the file gives it (or the reset state).
    pub(super) fn entry(&self, cpu: u32) -> Result<LaunchVmsa, LaunchError> {
        if let Some(entry) = self.last_context(cpu) {
            return Ok(entry);
        }
        Ok(LaunchVmsa {
            cpu_index: cpu,
            gpa: VMSA_GPA,
            vmsa: vcpu_vmsa(&self.cfg, cpu, RESET_VECTOR)?,
            source: VmsaSource::Reset,
        })
    }

    /// Whether KVM would reproduce `entry` (a VP context; reset VMSAs are KVM's own).
    pub(super) fn fidelity<'e>(&self, entry: &'e LaunchVmsa) -> Fidelity<'e> {
        fidelity(&self.cfg, entry)
    }

    /// `entry` as KVM measures it behind the VMM path of this launch: a VP context becomes the
    /// page KVM builds from what the VMM programs ([`Fidelity::reproduced`]); a reset VMSA is
    /// KVM's already. Refuses what QEMU refuses (`check_vmsa_supported`): any refusal, and any
    /// non-zero field the VMM cannot pass to KVM.
    pub(super) fn as_launched(&self, entry: LaunchVmsa) -> Result<LaunchVmsa, LaunchError> {
        let VmsaSource::Context { at, .. } = entry.source else {
            return Ok(entry);
        };
        let f = self.fidelity(&entry);
        let fields = f
            .findings()
            .filter(|c| c.origin == Origin::NotExpressible)
            .count();
        if !f.refusals().is_empty() || fields > 0 {
            return Err(LaunchError::RefusedByQemu {
                cpu_index: entry.cpu_index,
                at,
                refusals: f.refusals().len(),
                fields,
            });
        }
        let vmsa = f.reproduced().clone();
        Ok(LaunchVmsa { vmsa, ..entry })
    }
}
