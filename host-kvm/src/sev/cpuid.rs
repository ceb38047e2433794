//! The guest CPUID of an SNP launch: QEMU's SNP masking on every vCPU, and vCPU 0's CPUID as
//! KVM then holds it, for the CPUID page (QEMU `sev_snp_adjust_cpuid_features`,
//! `snp_launch_update_cpuid`; the page format is the core's [`vmsa_core::snp_cpuid`]).

use super::error::SevError;
use crate::vm::{Vm, VmError};
use vmm_sys_util::errno;
use vmsa_core::snp_cpuid::{CpuidEntry, adjust_cpuid_features};

/// The guest CPUID of an SNP launch: what the VMM set, and what vCPU 0 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpCpuid {
    /// vCPU 0's CPUID as KVM reports it after `KVM_SET_CPUID2` (`KVM_GET_CPUID2`): what the
    /// CPUID page holds (QEMU `snp_launch_update_cpuid` reads `first_cpu`'s).
    pub entries: Vec<CpuidEntry>,
    /// The entries KVM did not take as set: (set, held). Some KVMs force some leaves (the
    /// PVM-based KVM of the development machine keeps leaf 7.0 as it supports it).
    pub kvm_changed: Vec<(CpuidEntry, CpuidEntry)>,
}

/// Applies QEMU's SNP CPUID masking ([`adjust_cpuid_features`]) to every vCPU's CPUID
/// (`KVM_GET_CPUID2`, mask, `KVM_SET_CPUID2`) and reads vCPU 0's back for the CPUID page.
pub fn snp_adjust_cpuid(vm: &Vm) -> Result<SnpCpuid, SevError> {
    let err = |ioctl| move |source: errno::Error| SevError::from(VmError::Cpuid { ioctl, source });
    let mut out = SnpCpuid {
        entries: Vec::new(),
        kvm_changed: Vec::new(),
    };
    for v in &vm.vcpus {
        let mut c =
            v.fd.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(err("KVM_GET_CPUID2"))?;
        for e in c.as_mut_slice() {
            let mut ours = cpuid_from_kvm(e);
            adjust_cpuid_features(&mut ours);
            (e.eax, e.ebx, e.ecx, e.edx) = (ours.eax, ours.ebx, ours.ecx, ours.edx);
        }
        v.fd.set_cpuid2(&c).map_err(err("KVM_SET_CPUID2"))?;
        if v.index == 0 {
            let held =
                v.fd.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                    .map_err(err("KVM_GET_CPUID2"))?;
            out.entries = held.as_slice().iter().map(cpuid_from_kvm).collect();
            let set = c.as_slice().iter().map(cpuid_from_kvm);
            out.kvm_changed = set
                .filter_map(|s| {
                    let h = out
                        .entries
                        .iter()
                        .find(|h| (h.function, h.index) == (s.function, s.index))?;
                    (*h != s).then_some((s, *h))
                })
                .collect();
        }
    }
    Ok(out)
}

/// The core's view of a `struct kvm_cpuid_entry2`.
pub fn cpuid_from_kvm(e: &kvm_bindings::kvm_cpuid_entry2) -> CpuidEntry {
    CpuidEntry {
        function: e.function,
        index: e.index,
        flags: e.flags,
        eax: e.eax,
        ebx: e.ebx,
        ecx: e.ecx,
        edx: e.edx,
    }
}
