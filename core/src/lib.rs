//! `vmsa-core`: the initial CPU state of AMD SEV-ES and SEV-SNP guests, exact and checkable.
//!
//! An SEV-ES/SNP vCPU starts from an encrypted 4 KiB page, the VMSA (VM save area), and every
//! VMSA is part of the launch measurement the guest owner attests. This crate models that page
//! byte for byte ([`Vmsa`]), reads the firmware that decides it ([`ovmf`], [`igvm`]), models
//! what KVM does to it ([`kvm`]), and computes a whole launch — its VMSAs, its ordered updates,
//! its refusals and its digest — in one place ([`launch`]).
//!
//! The crate is `#![no_std]`, needs no allocator, and contains no `unsafe`: every byte view goes
//! through `zerocopy`. Its layers, bottom up (imports point down; `ARCHITECTURE.md` has the
//! rules):
//!
//! | floor | modules |
//! |---|---|
//! | wire types | [`arch`], [`flags`], [`segment`], [`vmsa`], [`guid`], [`hex`], [`mode`], [`cpu`], [`page`], [`hash_table`], [`snp_cpuid`], [`report`] |
//! | formats and hashing | [`ovmf`], [`igvm`], [`measure`], [`id_block`] |
//! | models | [`reset`], [`kvm`], [`host`] |
//! | the launch | [`launch`] |
//!
//! ```
//! use vmsa_core::{Vmsa, flags::SevFeatures, segment::SegmentAttributes};
//! use zerocopy::{FromZeros, IntoBytes};
//!
//! let mut vmsa = Vmsa::new_zeroed();
//! vmsa.cs.selector = 0xf000;
//! vmsa.cs.base = 0xffff_0000;
//! vmsa.cs.limit = 0xffff;
//! vmsa.cs.attrib = SegmentAttributes::CODE_16BIT_RESET;
//! vmsa.rip = 0xfff0;
//! vmsa.sev_features = SevFeatures::SNP_ACTIVE.bits();
//! let page: &[u8] = vmsa.as_bytes();
//! assert_eq!(page.len(), 4096);
//! assert_eq!(Vmsa::from_page(page).unwrap().rip, 0xfff0);
//! ```
#![no_std]
#![forbid(unsafe_code)]
// The core never panics on input: no unchecked indexing, no unwrap/expect, no panic! outside
// tests (STYLE.md, "Parsing untrusted bytes").
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

// Wire types.
pub mod arch;
pub mod cpu;
pub mod flags;
pub mod guid;
pub mod hash_table;
pub mod hex;
pub mod mode;
pub mod page;
pub mod report;
pub mod segment;
pub mod snp_cpuid;
pub mod vmsa;
// Formats and hashing.
pub mod id_block;
pub mod igvm;
pub mod measure;
pub mod ovmf;
// Models.
pub mod host;
pub mod kvm;
pub mod reset;
// The launch.
pub mod launch;

#[cfg(feature = "proptest")]
pub mod strategy;

pub use cpu::CpuSignature;
pub use guid::Guid;
pub use mode::SevMode;
pub use segment::{SegmentAttributes, VmcbSegment};
pub use vmsa::{Vmsa, VmsaError};

/// What a file is, by content, as `vmsa inspect` and the browser page detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// An IGVM file (starts with the `IGVM` magic).
    Igvm,
    /// An OVMF image (ends with the GUIDed footer table).
    Ovmf,
    /// Anything else: a VMSA page if it is 4096 bytes ([`Vmsa::from_page`] says why not).
    Vmsa,
}

impl FileKind {
    /// Detects the kind of `bytes`: IGVM magic first, then the OVMF footer, else a VMSA page.
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.get(..4) == Some(&igvm::igvm_defs::IGVM_MAGIC_VALUE.to_le_bytes()[..]) {
            Self::Igvm
        } else if ovmf::OvmfImage::has_footer(bytes) {
            Self::Ovmf
        } else {
            Self::Vmsa
        }
    }

    /// `igvm`, `ovmf` or `vmsa`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Igvm => "igvm",
            Self::Ovmf => "ovmf",
            Self::Vmsa => "vmsa",
        }
    }
}
