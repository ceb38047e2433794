//! One update of a launch: what the VMM sends to the AMD secure processor (or KVM measures
//! itself), in order. Every launch is a sequence of these; the digest hashes them
//! ([`super::digest`]) and the KVM adapter sends them.

use crate::measure::ItemKind;
use crate::page::{PAGE_SIZE, PageType, VMSA_GPA};

/// Where an update's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateSource<'a> {
    /// These bytes, then zeros up to the update's length.
    Bytes(&'a [u8]),
    /// Zeros (ZERO, UNMEASURED and SECRETS pages, and IGVM pages without data).
    Zero,
    /// The SNP CPUID page, which the VMM fills from the vCPU's CPUID
    /// ([`crate::snp_cpuid::SnpCpuidInfo`]); its contents are not measured.
    Cpuid,
    /// IGVM: what the loader placed at this GPA ([`crate::igvm::load::loads`]: a parameter
    /// area with the loader's values); not measured.
    Loaded,
    /// vCPU `cpu`'s launch VMSA ([`super::Launch::vmsa`]), measured by KVM itself
    /// (`LAUNCH_UPDATE_VMSA`, `SNP_LAUNCH_FINISH`) from the state the vCPU was programmed with.
    Vmsa {
        /// vCPU index.
        cpu: u32,
    },
}

/// One update of the launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchUpdate<'a> {
    /// What it is (the `--explain` item kind).
    pub kind: ItemKind,
    /// Guest physical address (SNP: page aligned).
    pub gpa: u64,
    /// Bytes (SNP: a multiple of 4 KiB; a VMSA is one page).
    pub len: u64,
    /// The SNP page type; `None` for SEV and SEV-ES.
    pub page_type: Option<PageType>,
    /// Where the bytes come from.
    pub source: UpdateSource<'a>,
}

impl LaunchUpdate<'_> {
    /// Whether KVM measures it itself (a vCPU's VMSA) rather than the VMM sending it.
    pub fn is_vmsa(&self) -> bool {
        matches!(self.source, UpdateSource::Vmsa { .. })
    }
}

/// The VMSAs of `vcpus` vCPUs as the last updates of a launch: KVM measures each at
/// 0xFFFFFFFFF000 (SNP: page type VMSA), in vCPU order.
pub(super) fn vmsa_updates<'u>(vcpus: u32, snp: bool) -> impl Iterator<Item = LaunchUpdate<'u>> {
    (0..vcpus).map(move |cpu| LaunchUpdate {
        kind: ItemKind::Vmsa { cpu },
        gpa: VMSA_GPA,
        len: PAGE_SIZE,
        page_type: snp.then_some(PageType::VMSA),
        source: UpdateSource::Vmsa { cpu },
    })
}

/// A plan's updates outside guest memory: the first update (other than the VMSAs, which KVM
/// places) that does not lie inside one of `memory`'s `(gpa, len)` ranges.
pub fn outside_memory<'u>(
    updates: impl IntoIterator<Item = LaunchUpdate<'u>>,
    memory: &[(u64, u64)],
) -> Option<LaunchUpdate<'u>> {
    updates.into_iter().find(|u| {
        !u.is_vmsa()
            && !memory.iter().any(|&(base, size)| {
                u.gpa >= base
                    && u.gpa
                        .checked_add(u.len)
                        .zip(base.checked_add(size))
                        .is_some_and(|(end, mem_end)| end <= mem_end)
            })
    })
}
