//! Hashing primitives of the launch digests: what the AMD secure processor computes while a
//! guest is launched. The order of what is hashed is the launch's (`crate::launch`); this
//! module only hashes.
//!
//! - [`snp`]: the SEV-SNP launch digest, a SHA-384 chain of `PAGE_INFO` records (SEV-SNP Firmware
//!   ABI specification, rev. 1.55, §8.17 "SNP_LAUNCH_UPDATE", Table 67 "PAGE_INFO"), and
//!   [`PageHasher`], how a hosted caller hashes many pages at once.
//! - [`sev`]: the SEV and SEV-ES launch digest, SHA-256 over everything `LAUNCH_UPDATE_DATA` and
//!   `LAUNCH_UPDATE_VMSA` encrypted.
//!
//! Everything streams: pages are fed as they come, nothing holds a whole image, and each update
//! can be reported to an [`Observer`] (for `--explain`). A page's contents hash is separate from
//! the chain step ([`snp::SnpDigest::update_with_contents`]), so a hosted caller can hash pages on
//! several cores and chain them in order.

use crate::page::PageType;

pub mod sev;
pub mod snp;

pub use sev::SevDigest;
pub use snp::{PageHasher, Sha2Pages, SnpDigest, sha384, sha384_zero_page};

/// A launch digest: SHA-256 (SEV, SEV-ES) or SHA-384 (SNP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// SEV and SEV-ES.
    Sha256([u8; 32]),
    /// SNP.
    Sha384([u8; 48]),
}

impl Digest {
    /// The digest bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Sha256(d) => d,
            Self::Sha384(d) => d,
        }
    }
}

/// What a measured item is, for `--explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case", tag = "kind")
)]
#[non_exhaustive]
pub enum ItemKind {
    /// A page (SNP) or a chunk (SEV) of the firmware image.
    Firmware,
    /// A page of the SVSM image (`snp:svsm`).
    Svsm,
    /// The pages of a firmware metadata section (OVMF `ASEV` descriptor), by its type value.
    MetadataSection {
        /// The section type (`SNP_SEC_MEM` 1, `SNP_SECRETS` 2, `CPUID` 3, `SVSM_CAA` 4, `SNP_KERNEL_HASHES` 0x10).
        section_type: u32,
    },
    /// The kernel/initrd/cmdline hash table (SEV/SEV-ES) or its page (SNP).
    KernelHashes,
    /// A kernel loaded and measured whole (libkrun's kernel bundle).
    Kernel,
    /// An initrd loaded and measured whole (libkrun's initrd bundle).
    Initrd,
    /// The Linux boot_params ("zero page") the VMM wrote (libkrun).
    BootParams,
    /// A vCPU's VMSA page.
    Vmsa {
        /// The vCPU index.
        cpu: u32,
    },
    /// An IGVM directive, by its index among the variable headers.
    IgvmDirective {
        /// Index of the variable header in the file.
        header_index: u32,
    },
}

impl core::fmt::Display for ItemKind {
    /// As `vmsa measure --explain` names it: `firmware`, `svsm`, `section SNP_SECRETS`,
    /// `kernel-hashes`, `vmsa cpu3`, `igvm header 12`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Firmware => f.write_str("firmware"),
            Self::Svsm => f.write_str("svsm"),
            Self::MetadataSection { section_type } => {
                write!(f, "section {}", crate::ovmf::SectionType(*section_type))
            }
            Self::KernelHashes => f.write_str("kernel-hashes"),
            Self::Kernel => f.write_str("kernel"),
            Self::Initrd => f.write_str("initrd"),
            Self::BootParams => f.write_str("boot-params"),
            Self::Vmsa { cpu } => write!(f, "vmsa cpu{cpu}"),
            Self::IgvmDirective { header_index } => write!(f, "igvm header {header_index}"),
        }
    }
}

/// One step of a launch digest, as `--explain` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredItem {
    /// What was measured.
    pub kind: ItemKind,
    /// Guest physical address (SNP), or 0 for SEV/SEV-ES data that has no GPA in the digest.
    pub gpa: u64,
    /// The SNP page type, `None` for SEV/SEV-ES.
    pub page_type: Option<PageType>,
    /// Number of bytes covered (4096 for an SNP page).
    pub len: u64,
    /// SNP: the `CONTENTS` field (SHA-384 of the page, or zero). SEV/SEV-ES: the first 32 bytes
    /// are the SHA-256 of the data, the rest zero.
    pub contents: [u8; 48],
    /// The digest after this step (SNP: the new launch digest; SEV/SEV-ES: zero, since SHA-256
    /// has no observable intermediate digest).
    pub digest_after: [u8; 48],
}

/// Receives every measured item, in order.
pub trait Observer {
    /// Called after each step of the digest.
    fn measured(&mut self, item: &MeasuredItem);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn measured(&mut self, _item: &MeasuredItem) {}
}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn measured(&mut self, item: &MeasuredItem) {
        (**self).measured(item)
    }
}

/// A measurement input is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// A byte range that must be whole 4 KiB pages is not.
    #[error("{what} is {len:#x} bytes, not a multiple of 4 KiB")]
    NotPageMultiple {
        /// What the range is.
        what: &'static str,
        /// Its length.
        len: u64,
    },
    /// A GPA range wraps past 2^64.
    #[error("{what} at GPA {gpa:#x} with length {len:#x} wraps around the address space")]
    GpaOverflow {
        /// What the range is.
        what: &'static str,
        /// Start GPA.
        gpa: u64,
        /// Length.
        len: u64,
    },
}
