//! Launch digests of an OVMF firmware launch, in the order QEMU + KVM issue the updates.
//!
//! SNP (QEMU `sev_snp_launch_finish` with `snp_populate_metadata_pages`, sev-snp-measure
//! `snp_calc_launch_digest`): the firmware image as NORMAL pages from `4 GiB - size` upward (or a
//! seed standing for them, `--snp-ovmf-hash`), then the `ASEV` sections in descriptor order, then
//! the VMSAs, BSP first, each at [`VMSA_GPA`](super::VMSA_GPA).
//!
//! SEV / SEV-ES (QEMU `sev_launch_update_data`, `sev_launch_get_measure`): SHA-256 over the image,
//! then the padded hash table when a kernel is given, then (SEV-ES) every VMSA page.

use super::sev::{SevDigest, SevHashes};
use super::snp::{PAGE_SIZE, PageType, SnpDigest};
use super::{ItemKind, MeasureError, Observer};
use crate::ovmf::{OvmfImage, SectionType};
use crate::reset::{LaunchVmsas, SevMode, VmmType};

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
            VmmType::Qemu | VmmType::Kvm => Self::QEMU,
        }
    }
}

/// The firmware cannot be measured the way it was asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchDigestError {
    /// SNP needs the `ASEV` metadata: without it QEMU fails (`Failed to locate SEV metadata
    /// header`) and OVMF would not find its secrets and CPUID pages. sev-snp-measure measures
    /// such an image anyway, with no sections; we refuse.
    #[error(
        "the firmware has no SEV metadata (`ASEV`): an SNP guest cannot launch from it (QEMU: \"Failed to locate SEV metadata header\")"
    )]
    SnpWithoutMetadata,
    /// An `ASEV` section type nobody defines.
    #[error("SEV metadata section {index} (GPA {gpa:#x}) has unknown type {section_type:#x}")]
    UnknownSectionType {
        /// Descriptor index.
        index: usize,
        /// Its GPA.
        gpa: u32,
        /// Its type.
        section_type: u32,
    },
    /// A section that is not whole pages.
    #[error(
        "SEV metadata section {index} ({section_type}) at GPA {gpa:#x} has size {size:#x}, not a multiple of 4 KiB"
    )]
    SectionNotPageMultiple {
        /// Descriptor index.
        index: usize,
        /// Its type.
        section_type: SectionType,
        /// Its GPA.
        gpa: u32,
        /// Its size.
        size: u32,
    },
    /// A SECRETS or CPUID section that is not exactly one page.
    #[error(
        "SEV metadata section {index} ({section_type}) at GPA {gpa:#x} has size {size:#x}: QEMU would launch every page of it while the digest (sev-snp-measure, the SNP ABI) counts one page, so no launch can match"
    )]
    SinglePageSectionSize {
        /// Descriptor index.
        index: usize,
        /// Its type.
        section_type: SectionType,
        /// Its GPA.
        gpa: u32,
        /// Its size.
        size: u32,
    },
    /// sev-snp-measure: "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section".
    #[error("Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section")]
    NoKernelHashesSection,
    /// sev-snp-measure: "Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement".
    #[error("Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement")]
    KernelHashesUnsupported,
    /// The `SNP_KERNEL_HASHES` section is not exactly one page (QEMU writes one page).
    #[error(
        "the SNP_KERNEL_HASHES section at GPA {gpa:#x} is {size:#x} bytes; QEMU fills exactly one 4 KiB page"
    )]
    KernelHashesSectionSize {
        /// Its GPA.
        gpa: u32,
        /// Its size.
        size: u32,
    },
    /// The hash table would not fit in its page at the offset the footer table gives.
    #[error("the kernel hash table at GPA {gpa:#x} does not fit in its page")]
    HashTableOutsidePage {
        /// The table GPA.
        gpa: u32,
    },
    /// SEV-ES and SNP digests include the VMSAs, and none were given.
    #[error("SEV-ES and SNP launch digests need the launch VMSAs")]
    MissingVmsas,
    /// A page range is malformed.
    #[error(transparent)]
    Range(#[from] MeasureError),
}

/// Extends `digest` with the `ASEV` sections of `fw` (SNP), in the order and with the page types
/// QEMU (or the VMM `policy` names) uses. `hashes` are the kernel hashes when a kernel is given.
pub fn snp_update_metadata<O: Observer>(
    digest: &mut SnpDigest<O>,
    fw: &OvmfImage<'_>,
    hashes: Option<&SevHashes>,
    policy: SectionPolicy,
) -> Result<(), LaunchDigestError> {
    let md = fw
        .sev_metadata()
        .ok_or(LaunchDigestError::SnpWithoutMetadata)?;
    // Check everything first, so that nothing is measured from an image we refuse.
    let mut has_kernel_section = false;
    for (index, s) in md.sections().enumerate() {
        if s.section_type.name().is_none() {
            return Err(LaunchDigestError::UnknownSectionType {
                index,
                gpa: s.gpa,
                section_type: s.section_type.0,
            });
        }
        if u64::from(s.size) % PAGE_SIZE != 0 {
            return Err(LaunchDigestError::SectionNotPageMultiple {
                index,
                section_type: s.section_type,
                gpa: s.gpa,
                size: s.size,
            });
        }
        // QEMU launches the whole section with the section's page type, while sev-snp-measure
        // (and a one-page SNP secrets or CPUID page by the SNP ABI) measure one page: no launch
        // could match, so refuse (as the launch plan does).
        if matches!(
            s.section_type,
            SectionType::SNP_SECRETS | SectionType::CPUID
        ) && u64::from(s.size) != PAGE_SIZE
        {
            return Err(LaunchDigestError::SinglePageSectionSize {
                index,
                section_type: s.section_type,
                gpa: s.gpa,
                size: s.size,
            });
        }
        if s.section_type == SectionType::SNP_KERNEL_HASHES {
            has_kernel_section = true;
            if hashes.is_some() && u64::from(s.size) != PAGE_SIZE {
                return Err(LaunchDigestError::KernelHashesSectionSize {
                    gpa: s.gpa,
                    size: s.size,
                });
            }
        }
    }
    let kernel_page = match hashes {
        None => None,
        Some(_) if !has_kernel_section => return Err(LaunchDigestError::NoKernelHashesSection),
        Some(h) => {
            let table = fw
                .sev_hash_table()
                .filter(|r| r.base != 0)
                .ok_or(LaunchDigestError::KernelHashesUnsupported)?;
            let offset = (table.base & 0xfff) as usize;
            Some(
                h.page(offset)
                    .ok_or(LaunchDigestError::HashTableOutsidePage { gpa: table.base })?,
            )
        }
    };
    for u in crate::launch_plan::section_updates(md, policy, kernel_page.as_ref()) {
        let Some(page_type) = u.page_type else {
            continue;
        };
        match u.source {
            crate::launch_plan::UpdateSource::Bytes(page) => {
                digest.update_normal_pages(u.kind, u.gpa, page)?
            }
            _ => digest.update_unmeasured_pages(u.kind, page_type, u.gpa, u.len)?,
        }
    }
    Ok(())
}

/// Checks that a kernel can be measured for SEV/SEV-ES and returns the padded table to feed
/// after the firmware.
pub fn sev_hash_table(
    fw: &OvmfImage<'_>,
    hashes: &SevHashes,
) -> Result<[u8; super::SEV_HASH_TABLE_PADDED_SIZE], LaunchDigestError> {
    if !fw.supports_kernel_hashes() {
        return Err(LaunchDigestError::KernelHashesUnsupported);
    }
    Ok(hashes.table())
}

/// Which launch digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum LaunchMode {
    /// SEV: SHA-256 over the firmware (and kernel hash table).
    Sev,
    /// SEV-ES: SEV, then every VMSA.
    SevEs,
    /// SEV-SNP: the SHA-384 `PAGE_INFO` chain.
    Snp,
}

impl LaunchMode {
    /// The mode with this name, in any of sev-snp-measure's spellings (`SevMode.from_str`):
    /// `sev`, `seves`/`sev-es`, `snp`/`sev-snp` (either case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sev" | "SEV" => Some(Self::Sev),
            "seves" | "sev-es" | "SEVES" | "SEV-ES" => Some(Self::SevEs),
            "snp" | "sev-snp" | "SNP" | "SEV-SNP" => Some(Self::Snp),
            _ => None,
        }
    }

    /// The VMSA mode (`None` for plain SEV, which has no VMSAs).
    pub const fn sev_mode(self) -> Option<SevMode> {
        match self {
            Self::Sev => None,
            Self::SevEs => Some(SevMode::SevEs),
            Self::Snp => Some(SevMode::Snp),
        }
    }

    /// sev-snp-measure's `SevMode.name`: `SEV`, `SEV_ES`, `SEV_SNP` (its `-v` output).
    pub const fn peer_name(self) -> &'static str {
        match self {
            Self::Sev => "SEV",
            Self::SevEs => "SEV_ES",
            Self::Snp => "SEV_SNP",
        }
    }
}

/// A launch digest: SHA-256 (SEV, SEV-ES) or SHA-384 (SNP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaunchDigest {
    /// SEV and SEV-ES.
    Sha256([u8; 32]),
    /// SNP.
    Sha384([u8; 48]),
}

impl LaunchDigest {
    /// The digest bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Sha256(d) => d,
            Self::Sha384(d) => d,
        }
    }
}

/// What follows the firmware pages in an SEV/SEV-ES digest: the hash table (with a kernel), then
/// (SEV-ES, `vmsas` given) every VMSA in vCPU order. Feed the firmware first
/// ([`SevDigest::update_firmware`], [`SevDigest::end_firmware`]).
pub fn sev_finish<O: Observer>(
    mut digest: SevDigest<O>,
    fw: &OvmfImage<'_>,
    hashes: Option<&SevHashes>,
    vmsas: Option<&LaunchVmsas>,
) -> Result<([u8; 32], O), LaunchDigestError> {
    if let Some(h) = hashes {
        digest.update_hash_table(&sev_hash_table(fw, h)?);
    }
    for (cpu, page) in vmsas.into_iter().flat_map(LaunchVmsas::pages) {
        digest.update_vmsa(cpu, page);
    }
    Ok(digest.finish())
}

/// What follows the firmware pages in an SNP digest: the `ASEV` sections as `vmm` measures them,
/// then every VMSA in vCPU order (KVM's `SNP_LAUNCH_FINISH`). Feed the firmware pages first (or
/// seed the digest with `--snp-ovmf-hash`).
pub fn snp_finish<O: Observer>(
    digest: &mut SnpDigest<O>,
    fw: &OvmfImage<'_>,
    hashes: Option<&SevHashes>,
    vmm: VmmType,
    vmsas: &LaunchVmsas,
) -> Result<(), LaunchDigestError> {
    snp_update_metadata(digest, fw, hashes, SectionPolicy::for_vmm(vmm))?;
    for (cpu, page) in vmsas.pages() {
        digest.update_vmsa(cpu, page);
    }
    Ok(())
}

/// Checks the inputs before anything is hashed, so that a refusal costs nothing: a kernel needs
/// the hash table (SEV/SEV-ES) or the `SNP_KERNEL_HASHES` section (SNP); SNP needs the `ASEV`
/// metadata with known section types; SNP and SEV-ES need their VMSAs.
pub fn check_launch_inputs(
    fw: &OvmfImage<'_>,
    mode: LaunchMode,
    hashes: Option<&SevHashes>,
    vmsas: Option<&LaunchVmsas>,
) -> Result<(), LaunchDigestError> {
    match mode {
        LaunchMode::Sev | LaunchMode::SevEs => {
            if let Some(h) = hashes {
                sev_hash_table(fw, h)?;
            }
        }
        LaunchMode::Snp => {
            let mut probe = SnpDigest::new();
            snp_update_metadata(&mut probe, fw, hashes, SectionPolicy::QEMU)?;
        }
    }
    if mode != LaunchMode::Sev && vmsas.is_none() {
        return Err(LaunchDigestError::MissingVmsas);
    }
    Ok(())
}

/// The launch digest of a firmware image held in memory, in QEMU's order: firmware (NORMAL pages
/// from `4 GiB - size` for SNP), then [`sev_finish`] or [`snp_finish`]. `vmsas` are the launch
/// VMSAs (`reset::launch_vmsas`; not needed for SEV). Callers that stream a large image on
/// several cores feed the pages themselves and call the `*_finish` functions.
pub fn launch_digest<O: Observer>(
    image: &[u8],
    fw: &OvmfImage<'_>,
    mode: LaunchMode,
    vmm: VmmType,
    hashes: Option<&SevHashes>,
    vmsas: Option<&LaunchVmsas>,
    observer: O,
) -> Result<(LaunchDigest, O), LaunchDigestError> {
    check_launch_inputs(fw, mode, hashes, vmsas)?;
    match (mode, vmsas) {
        (LaunchMode::Snp, Some(v)) => {
            let mut d = SnpDigest::with_observer([0; 48], observer);
            d.update_normal_pages(
                ItemKind::Firmware,
                super::gpa_ending_at_4g(image.len()),
                image,
            )?;
            snp_finish(&mut d, fw, hashes, vmm, v)?;
            Ok((LaunchDigest::Sha384(d.ld()), d.into_observer()))
        }
        (LaunchMode::Snp, None) => Err(LaunchDigestError::MissingVmsas),
        (mode, vmsas) => {
            let mut d = SevDigest::with_observer(observer);
            d.update_firmware(image);
            d.end_firmware();
            let vmsas = if mode == LaunchMode::SevEs {
                vmsas
            } else {
                None
            };
            let (h, o) = sev_finish(d, fw, hashes, vmsas)?;
            Ok((LaunchDigest::Sha256(h), o))
        }
    }
}
