//! The launch of an OVMF image: what QEMU + KVM send, in their order, and the one check of the
//! image's `ASEV` metadata and kernel-hashes table against what that launch needs.
//!
//! | # | SNP (`sev_snp_launch_finish`) | SEV / SEV-ES (`sev_launch_update_data`, `sev_launch_get_measure`) |
//! |---|---|---|
//! | 1 | the image, NORMAL, from `4 GiB - size` upward | the image (`LAUNCH_UPDATE_DATA`) |
//! | 2 | the `ASEV` sections in descriptor order (`snp_populate_metadata_pages`) with the VMM's [`SectionPolicy`]: SNP_SEC_MEM ZERO (gce: UNMEASURED), SECRETS, CPUID (ec2: after the others), SVSM_CAA ZERO, SNP_KERNEL_HASHES NORMAL with a kernel, else ZERO | the padded kernel hash table, with a kernel |
//! | 3 | every vCPU's VMSA at 0xFFFFFFFFF000, measured by KVM in `SNP_LAUNCH_FINISH` | SEV-ES: every vCPU's VMSA (`LAUNCH_UPDATE_VMSA`) |
//!
//! One difference with QEMU is refused rather than measured: QEMU launches a SECRETS or CPUID
//! section of any length (`desc->len`), while sev-snp-measure and the SNP ABI measure one page;
//! such a section is refused ([`LaunchError::SinglePageSectionSize`]) because no launch could
//! produce the digest.

use super::error::LaunchError;
use super::update::{LaunchUpdate, UpdateSource};
use crate::hash_table::{self, SevHashTable, SevHashes};
use crate::measure::{ItemKind, MeasureError};
use crate::mode::SevMode;
use crate::ovmf::{
    GpaRange, OvmfError, OvmfImage, Section, SectionType, SevMetadata, gpa_ending_at_4g,
};
use crate::page::{PAGE_SIZE, PageType};
use crate::reset::VmmType;
use zerocopy::IntoBytes;

/// The largest firmware image QEMU loads. `x86_bios_rom_init` (`hw/i386/x86-common.c`, QEMU
/// 7.2–10.2; `-bios`, the path SEV and SNP guests take, and pflash0 goes through the same
/// `x86_firmware_configure`) holds the image size in an `int` and fails unless it is positive
/// ("qemu: could not load PC BIOS"), and the image is mapped to end at 4 GiB: so an image is
/// under 2 GiB (the largest 64 KiB multiple below 2^31). pflash is limited further by the
/// machine's `max-fw-size` (8 MiB by default, 16 MiB at most, `pc_system_flash_map`).
pub const MAX_FIRMWARE_SIZE: u64 = (1 << 31) - 0x1_0000;

/// How a VMM measures the `ASEV` sections: the points where the VMMs sev-snp-measure knows
/// differ from QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SectionPolicy {
    /// The page type of `SNP_SEC_MEM` pages: ZERO (QEMU, ec2), UNMEASURED (gce).
    pub sec_mem: PageType,
    /// Measure the CPUID page(s) after every other section instead of in descriptor order (ec2).
    pub cpuid_last: bool,
}

impl SectionPolicy {
    /// QEMU's order and types.
    pub const QEMU: Self = Self {
        sec_mem: PageType::ZERO,
        cpuid_last: false,
    };
    /// AWS EC2: CPUID deferred after the other sections.
    pub const EC2: Self = Self {
        sec_mem: PageType::ZERO,
        cpuid_last: true,
    };
    /// Google GCE: SEC_MEM as UNMEASURED.
    pub const GCE: Self = Self {
        sec_mem: PageType::UNMEASURED,
        cpuid_last: false,
    };

    /// The policy of a VMM profile (`kvm` measures as QEMU does: same VMM-side page order).
    pub const fn for_vmm(vmm: VmmType) -> Self {
        match vmm {
            VmmType::Ec2 => Self::EC2,
            VmmType::Gce => Self::GCE,
            // (the sev crate's KRUN measures OVMF as QEMU does)
            VmmType::Qemu | VmmType::Kvm | VmmType::Krun => Self::QEMU,
        }
    }
}

/// Checks an SNP launch's `ASEV` metadata, all of it, before anything is measured: present
/// (QEMU: "Failed to locate SEV metadata header"), every section of a known type, whole pages,
/// SECRETS and CPUID one page each, none inside the image itself (KVM refuses a second
/// `SNP_LAUNCH_UPDATE` of a page it already assigned); with a kernel, an `SNP_KERNEL_HASHES`
/// section of one page and a hash table that fits in it (sev-snp-measure's messages where it
/// has them). An `ASEV` block with no sections is launched by QEMU (`snp_populate_metadata_pages`
/// loops over none), and so measured.
///
/// `image` is the lowest GPA of the firmware launched before the sections: the image's own
/// (`fw.gpa()`), or for an SVSM launch the SVSM's, below OVMF and its variable store.
pub(super) fn check_snp_metadata<'a>(
    fw: &OvmfImage<'a>,
    image: u64,
    kernel: Option<&SevHashes>,
) -> Result<SevMetadata<'a>, LaunchError> {
    let md = fw.sev_metadata().ok_or(LaunchError::NoSevMetadata)?;
    let mut has_kernel_section = false;
    for (index, s) in md.sections().enumerate() {
        if s.end() > image {
            return Err(LaunchError::SectionInFirmware {
                index,
                section_type: s.section_type,
                gpa: s.gpa,
                size: s.size,
                image,
            });
        }
        if s.section_type.name().is_none() {
            return Err(OvmfError::UnknownSectionType {
                index,
                offset: md.descriptor_offset(index),
                section_type: s.section_type.0,
            }
            .into());
        }
        if u64::from(s.size) % PAGE_SIZE != 0 {
            return Err(LaunchError::SectionNotPageMultiple {
                index,
                section_type: s.section_type,
                gpa: s.gpa,
                size: s.size,
            });
        }
        // QEMU launches the whole section with the section's page type, while sev-snp-measure
        // (and a one-page SNP secrets or CPUID page by the SNP ABI) measure one page: no launch
        // could match, so refuse.
        if matches!(
            s.section_type,
            SectionType::SNP_SECRETS | SectionType::CPUID
        ) && u64::from(s.size) != PAGE_SIZE
        {
            return Err(LaunchError::SinglePageSectionSize {
                index,
                section_type: s.section_type,
                gpa: s.gpa,
                size: s.size,
            });
        }
        if s.section_type == SectionType::SNP_KERNEL_HASHES {
            has_kernel_section = true;
            if kernel.is_some() && u64::from(s.size) != PAGE_SIZE {
                return Err(LaunchError::KernelHashesSectionSize {
                    gpa: s.gpa,
                    size: s.size,
                });
            }
        }
    }
    if let Some(h) = kernel {
        if !has_kernel_section {
            return Err(LaunchError::NoKernelHashesSection);
        }
        kernel_page(fw, h)?;
    }
    Ok(md)
}

/// Where QEMU installs the kernel hashes (`sev_add_kernel_loader_hashes`, QEMU 7.2–10.2, for
/// SEV, SEV-ES and SNP alike): the footer table's hash-table area, which must exist with a
/// non-zero base (sev-snp-measure's message) and hold the padded table (QEMU: "SEV: guest
/// firmware hashes table area is invalid").
fn hash_table_area(fw: &OvmfImage<'_>) -> Result<GpaRange, LaunchError> {
    let area = fw
        .sev_hash_table()
        .filter(|r| r.base != 0)
        .ok_or(LaunchError::KernelHashesUnsupported)?;
    if (area.size as usize) < hash_table::PADDED_SIZE {
        return Err(LaunchError::HashTableAreaInvalid {
            base: area.base,
            size: area.size,
        });
    }
    Ok(area)
}

/// The `SNP_KERNEL_HASHES` page: the padded hash table at the table GPA's offset in its page.
fn kernel_page(fw: &OvmfImage<'_>, h: &SevHashes) -> Result<[u8; 4096], LaunchError> {
    let table = hash_table_area(fw)?;
    h.page((table.base & 0xfff) as usize)
        .ok_or(LaunchError::HashTableOutsidePage { gpa: table.base })
}

/// The kernel hash table, when a kernel is given.
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator in the core: the page lives in the plan, once"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum KernelTable {
    /// SNP: the `SNP_KERNEL_HASHES` page.
    Page([u8; 4096]),
    /// SEV/SEV-ES: the padded table, at the hash table GPA.
    Table(SevHashTable, u64),
}

/// The launch plan of an OVMF image (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct OvmfPlan<'a> {
    image: &'a [u8],
    mode: SevMode,
    policy: SectionPolicy,
    kernel: Option<KernelTable>,
    metadata: Option<SevMetadata<'a>>,
    vcpus: u32,
    /// `snp:svsm`: the SVSM image and its GPA, launched after OVMF (whose metadata is then the
    /// SVSM's).
    svsm: Option<(&'a [u8], u64)>,
}

impl<'a> OvmfPlan<'a> {
    /// The plan for `fw` launched in `mode` by `vmm` with `vcpus` VMSAs (0 for plain SEV) and
    /// the kernel hashes `kernel`. `metadata` is what [`check_snp_metadata`] returned (SNP).
    /// Refuses an SEV/SEV-ES kernel the firmware has no hash table for, and an SNP image that
    /// is not whole pages.
    pub(super) fn new(
        fw: &OvmfImage<'a>,
        mode: SevMode,
        vmm: VmmType,
        kernel: Option<&SevHashes>,
        metadata: Option<SevMetadata<'a>>,
        vcpus: u32,
    ) -> Result<Self, LaunchError> {
        let image = fw.bytes();
        let kernel = match (kernel, mode) {
            (None, _) => None,
            (Some(h), SevMode::Snp) => Some(KernelTable::Page(kernel_page(fw, h)?)),
            (Some(h), SevMode::Sev | SevMode::SevEs) => {
                let area = hash_table_area(fw)?;
                Some(KernelTable::Table(h.table(), u64::from(area.base)))
            }
        };
        if mode == SevMode::Snp && (image.is_empty() || image.len() as u64 % PAGE_SIZE != 0) {
            return Err(MeasureError::NotPageMultiple {
                what: "the firmware image",
                len: image.len() as u64,
            }
            .into());
        }
        Ok(Self {
            image,
            mode,
            policy: SectionPolicy::for_vmm(vmm),
            kernel,
            metadata: metadata.filter(|_| mode == SevMode::Snp),
            vcpus,
            svsm: None,
        })
    }

    /// The plan of an SVSM launch: this (OVMF's) plan with the SVSM image at `gpa` launched
    /// after OVMF, and the SVSM's `metadata` (checked) in place of OVMF's.
    pub(super) fn with_svsm(self, image: &'a [u8], gpa: u64, metadata: SevMetadata<'a>) -> Self {
        Self {
            svsm: Some((image, gpa)),
            metadata: Some(metadata),
            ..self
        }
    }

    /// The updates, in launch order.
    pub(super) fn updates(&self) -> impl Iterator<Item = LaunchUpdate<'_>> + '_ {
        let snp = self.mode == SevMode::Snp;
        let sev_kernel = match &self.kernel {
            Some(KernelTable::Table(t, base)) => Some(LaunchUpdate {
                kind: ItemKind::KernelHashes,
                gpa: *base,
                len: t.as_bytes().len() as u64,
                page_type: None,
                source: UpdateSource::Bytes(t.as_bytes()),
            }),
            _ => None,
        };
        let kernel_page = match &self.kernel {
            Some(KernelTable::Page(p)) => Some(p),
            _ => None,
        };
        let sections = self
            .metadata
            .into_iter()
            .flat_map(move |m| section_updates(m, self.policy, kernel_page));
        let vmsas = super::update::vmsa_updates(self.vcpus, snp);
        let svsm = self.svsm.map(|(image, gpa)| LaunchUpdate {
            kind: ItemKind::Svsm,
            gpa,
            len: image.len() as u64,
            page_type: Some(PageType::NORMAL),
            source: UpdateSource::Bytes(image),
        });
        core::iter::once(firmware_update(self.image, self.mode))
            .chain(svsm)
            .chain(sev_kernel)
            .chain(sections)
            .chain(vmsas)
    }
}

/// The image, from `4 GiB - size` upward: NORMAL pages for SNP, one `LAUNCH_UPDATE_DATA`
/// otherwise.
pub(super) fn firmware_update(image: &[u8], mode: SevMode) -> LaunchUpdate<'_> {
    LaunchUpdate {
        kind: ItemKind::Firmware,
        gpa: gpa_ending_at_4g(image.len()),
        len: image.len() as u64,
        page_type: (mode == SevMode::Snp).then_some(PageType::NORMAL),
        source: UpdateSource::Bytes(image),
    }
}

/// The `ASEV` sections of an SNP launch, in launch order, as QEMU's
/// `snp_populate_metadata_pages` launches them with the VMM's [`SectionPolicy`]: descriptor
/// order, CPUID deferred after the others for ec2; SNP_SEC_MEM ZERO (gce: UNMEASURED), SECRETS,
/// CPUID (filled by the VMM), SVSM_CAA ZERO, SNP_KERNEL_HASHES the kernel-hashes page as NORMAL
/// when given, else ZERO.
fn section_updates<'a>(
    metadata: SevMetadata<'a>,
    policy: SectionPolicy,
    kernel_page: Option<&'a [u8; 4096]>,
) -> impl Iterator<Item = LaunchUpdate<'a>> + 'a {
    let all = metadata.sections();
    let cpuid_last = policy.cpuid_last;
    let in_order = all
        .clone()
        .filter(move |s| !(cpuid_last && s.section_type == SectionType::CPUID));
    let deferred = all.filter(move |s| cpuid_last && s.section_type == SectionType::CPUID);
    in_order
        .chain(deferred)
        .map(move |s| section_update(&s, policy, kernel_page))
}

/// One `ASEV` section's update.
fn section_update<'a>(
    s: &Section,
    policy: SectionPolicy,
    kernel_page: Option<&'a [u8; 4096]>,
) -> LaunchUpdate<'a> {
    let kind = ItemKind::MetadataSection {
        section_type: s.section_type.0,
    };
    let (gpa, len) = (u64::from(s.gpa), u64::from(s.size));
    let (kind, page_type, source) = match (s.section_type, kernel_page) {
        (SectionType::SNP_SEC_MEM, _) => (kind, policy.sec_mem, UpdateSource::Zero),
        (SectionType::SNP_SECRETS, _) => (kind, PageType::SECRETS, UpdateSource::Zero),
        (SectionType::CPUID, _) => (kind, PageType::CPUID, UpdateSource::Cpuid),
        (SectionType::SNP_KERNEL_HASHES, Some(p)) => (
            ItemKind::KernelHashes,
            PageType::NORMAL,
            UpdateSource::Bytes(p),
        ),
        // SNP_KERNEL_HASHES without a kernel, SVSM_CAA, and (refused before) anything else.
        _ => (kind, PageType::ZERO, UpdateSource::Zero),
    };
    LaunchUpdate {
        kind,
        gpa,
        len,
        page_type: Some(page_type),
        source,
    }
}
