//! Why a launch cannot happen: the one error of [`crate::launch`].

use super::config::IgvmProfile;
use crate::igvm::{At, IgvmError};
use crate::kvm::Refusal;
use crate::measure::MeasureError;
use crate::ovmf::{OvmfError, SectionType};

/// A launch that cannot happen, and why. Everything [`crate::launch::Launch::new`] refuses,
/// before anything is hashed or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// KVM (or QEMU in front of it) would refuse it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A firmware image QEMU does not load.
    #[error(
        "the firmware image has {len:#x} bytes; QEMU loads at most {max:#x} (its -bios size is an int, and the image ends at 4 GiB)"
    )]
    FirmwareTooLarge {
        /// Image length.
        len: u64,
        /// [`crate::launch::MAX_FIRMWARE_SIZE`].
        max: u64,
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
    /// SNP needs `ASEV` metadata (QEMU `sev_snp_launch_finish`: "Failed to locate SEV metadata
    /// header"); without it the secrets and CPUID pages are never populated. sev-snp-measure
    /// measures such images anyway.
    #[error(
        "SEV-SNP needs the firmware's ASEV SEV metadata (secrets, CPUID and pre-validated pages), and this image has none; it cannot boot under SNP (QEMU: \"Failed to locate SEV metadata header\")"
    )]
    NoSevMetadata,
    /// The firmware's metadata cannot be launched (an `ASEV` section type nobody defines).
    #[error(transparent)]
    Firmware(#[from] OvmfError),
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
    /// An `ASEV` section inside the firmware image's own range: the image's pages are launched
    /// first, and KVM refuses a second `SNP_LAUNCH_UPDATE` of a page it already assigned
    /// (`snp_launch_update`; QEMU reports "SNP_LAUNCH_UPDATE ret=-5").
    #[error(
        "SEV metadata section {index} ({section_type}) at GPA {gpa:#x} (size {size:#x}) lies inside the firmware image (from {image:#x}): KVM refuses to launch a page twice (SNP_LAUNCH_UPDATE fails with EIO)"
    )]
    SectionInFirmware {
        /// Descriptor index.
        index: usize,
        /// Its type.
        section_type: SectionType,
        /// Its GPA.
        gpa: u32,
        /// Its size.
        size: u32,
        /// Where the image starts.
        image: u64,
    },
    /// The hash-table area is smaller than QEMU's `PaddedSevHashTable` (176 bytes).
    #[error(
        "SEV: guest firmware hashes table area is invalid (base={base:#x} size={size:#x}): QEMU needs 176 bytes for the padded hash table"
    )]
    HashTableAreaInvalid {
        /// The area's base.
        base: u32,
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
    /// A page range is malformed (a firmware image that is not whole pages for SNP).
    #[error(transparent)]
    Range(#[from] MeasureError),
    /// The IGVM file is malformed, or has no such platform.
    #[error(transparent)]
    Igvm(#[from] IgvmError),
    /// The IGVM platform is not SEV, SEV-ES or SNP.
    #[error("IGVM platform {0} has no SEV launch")]
    NotSev(&'static str),
    /// Plain SEV has no VMSAs and is not launched here (only measured).
    #[error("plain SEV is not launched (only SEV-ES and SNP)")]
    PlainSev,
    /// A VP context for a vCPU the guest does not have (QEMU: "SEV: unable to set CPU context
    /// for out of bounds CPU index").
    #[error("{at}: VP context for vCPU {vp_index}, but the guest has {vcpus} vCPUs")]
    VpIndexOutOfRange {
        /// The header.
        at: At,
        /// Its VP index.
        vp_index: u16,
        /// vCPU count.
        vcpus: u32,
    },
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
    /// A 2 MiB `PAGE_DATA` the profile cannot measure: the peers measure 2 MiB pages
    /// differently (igvm: one 4 KiB page, igvmmeasure and QEMU: 512 pages), and whether the
    /// firmware takes 512 SECRETS or CPUID pages is not known.
    #[error(
        "IGVM header {header_index}: 2 MiB page at GPA {gpa:#x}: the peers measure 2 MiB pages differently (igvm: one 4 KiB page, igvmmeasure and QEMU: 512 pages), so it is refused"
    )]
    LargePage {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
    },
    /// igvmmeasure profile: a 2 MiB page with data (igvmmeasure asserts that such a page has
    /// 2 MiB of data, which the file format cannot give, and panics).
    #[error(
        "IGVM header {header_index}: 2 MiB page with data at GPA {gpa:#x}: igvmmeasure cannot measure it (it panics)"
    )]
    LargePageWithData {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
    },
    /// A SECRETS or CPUID page for an SEV or SEV-ES platform: those pages exist only on SNP, and
    /// QEMU refuses the file.
    #[error(
        "IGVM header {header_index}: {what} page at GPA {gpa:#x} for an SEV/SEV-ES platform: only SNP has them (QEMU: \"attempt to configure {what} page, but SEV-SNP is not supported\")"
    )]
    SnpOnlyPage {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
        /// "secrets" or "CPUID".
        what: &'static str,
    },
    /// A `PARAMETER_INSERT` of an area no header declares.
    #[error("{at}: parameter insert of undeclared area {index}")]
    UnknownParameterArea {
        /// The header.
        at: At,
        /// Area index.
        index: u32,
    },
    /// A range that overflows the address space.
    #[error("IGVM header {header_index}: range at GPA {gpa:#x} of {len:#x} bytes overflows")]
    IgvmRange {
        /// Header index.
        header_index: u32,
        /// Its GPA.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// The qemu profile: a header type QEMU's IGVM loader has no handler for (it refuses the
    /// file whatever the header's compatibility mask: "IGVM: Unknown header type encountered").
    #[error("{at}: QEMU's IGVM loader refuses header type {typ:#x} (whatever its mask)")]
    QemuUnknownHeader {
        /// The header.
        at: At,
        /// Its type.
        typ: u32,
    },
    /// The qemu profile: a second `SNP_ID_BLOCK` for the platform (QEMU: "IGVM: Multiple ID
    /// blocks encountered").
    #[error("{at}: a second SNP_ID_BLOCK for the platform (QEMU refuses the file)")]
    QemuSecondIdBlock {
        /// The second block.
        at: At,
    },
    /// The qemu profile with `native_zero`: QEMU always sends empty pages as NORMAL.
    #[error("QEMU measures pages without data as NORMAL pages of zeros, never as ZERO pages")]
    QemuNativeZero,
    /// A digest profile that reproduces a measuring tool, not a launch.
    #[error(
        "the IGVM profile {} reproduces a measuring tool's digest; a launch follows the spec profile",
        .0.name()
    )]
    DigestOnlyProfile(IgvmProfile),
    /// `snp:svsm`: the OVMF variable store is not a non-zero multiple of 4 KiB (QEMU's pflash,
    /// `pc_system_flash_map`: "its size must be a non-zero multiple of 0x1000").
    #[error(
        "the OVMF variable store size is {size:#x} bytes; QEMU's pflash needs a non-zero multiple of 0x1000"
    )]
    VarsSize {
        /// The size given.
        size: u64,
    },
    /// `snp:svsm`: the SVSM image is not whole pages.
    #[error("the SVSM image has {len:#x} bytes, not a non-zero multiple of 4 KiB")]
    SvsmNotPageMultiple {
        /// Its length.
        len: u64,
    },
    /// `snp:svsm`: the SVSM image does not fit below OVMF and its variable store.
    #[error(
        "the SVSM image ({svsm_len:#x} bytes) does not fit below OVMF ({ovmf_len:#x} bytes) and its variable store ({vars_size:#x} bytes) under 4 GiB"
    )]
    SvsmDoesNotFit {
        /// OVMF code length.
        ovmf_len: u64,
        /// Variable store size.
        vars_size: u64,
        /// SVSM length.
        svsm_len: u64,
    },
    /// `snp:svsm`: no `SVSM_INFO` entry in the SVSM's footer table (sev-snp-measure: "Can't
    /// find SVSM_INFO_GUID entry in SVSM table").
    #[error(
        "Can't find SVSM_INFO_GUID entry in SVSM table (GUID a789a612-0597-4c4b-a49f-cbb1fe9d1ddd, the SVSM's launch offset)"
    )]
    NoSvsmInfo,
    /// `snp:svsm`: the `SVSM_INFO` launch offset is outside the image.
    #[error("the SVSM's launch offset {offset:#x} is outside its {len:#x}-byte image")]
    SvsmEntryOutside {
        /// The offset.
        offset: u32,
        /// Image length.
        len: u64,
    },
    /// `snp:svsm` with a VMM other than QEMU (sev-snp-measure: "SVSM mode is only implemented
    /// for Qemu").
    #[error("SVSM mode is only implemented for QEMU (coconut-svsm's QEMU fork), not {}", .0.name())]
    SvsmVmm(crate::reset::VmmType),
    /// `snp:svsm` with kernel hashes: the mode launches the SVSM's metadata and no kernel.
    #[error(
        "snp:svsm measures no kernel, initrd or command line (the SVSM's metadata is launched, which has no kernel-hashes page)"
    )]
    SvsmKernel,
    /// `snp:svsm` with guest features other than SNP_ACTIVE.
    #[error(
        "snp:svsm: the SVSM's VMSA has sev_features 0x1 (SNP_ACTIVE) in the launch this mode models; guest features {0:#x} cannot apply (sev-snp-measure ignores them silently)"
    )]
    SvsmFeatures(u64),
    /// `snp:svsm` in a mode other than SNP.
    #[error("an SVSM launch is SEV-SNP only, not {0}")]
    SvsmNotSnp(crate::mode::SevMode),
    /// `snp:svsm` from a precomputed OVMF digest (sev-snp-measure: "SNP OVMF hash only works
    /// with SNP").
    #[error("a precomputed OVMF hash (--snp-ovmf-hash) only works with snp, not snp:svsm")]
    SvsmSeed,
    /// `snp:svsm`: OVMF, its variables and the SVSM exceed what QEMU maps as pflash.
    #[error(
        "OVMF, its variable store and the SVSM hold {total:#x} bytes together; QEMU maps at most {max:#x} of pflash (max-fw-size: 8 MiB by default, 16 MiB at most: \"combined size of system firmware exceeds\")"
    )]
    SvsmFirmwareTooLarge {
        /// The three sizes' sum.
        total: u64,
        /// The 16 MiB ceiling.
        max: u64,
    },
    /// A libkrun launch that libkrun refuses or that cannot be made.
    #[error("libkrun: {0}")]
    Krun(&'static str),
    /// A libkrun launch in a mode libkrun never launched (plain SEV: SEV-ES ≤ 1.10, SNP since).
    #[error("libkrun launches SEV-ES (up to 1.10) or SEV-SNP, not {0}")]
    KrunMode(crate::mode::SevMode),
}
