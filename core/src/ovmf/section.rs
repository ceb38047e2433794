//! One `ASEV` section: a guest-physical range and what an SNP launch puts there.

use core::fmt;

/// Sections beyond this count are refused (`OvmfError::TooManySections`); edk2 builds have 5–7
/// and the overlap check is quadratic.
pub const MAX_SECTIONS: usize = 256;

/// An `ASEV` section type (`OvmfSevMetadataSectionType`, QEMU `pc.h`, edk2
/// `OvmfSevMetadata.asm`). Open: any `u32` is representable; [`SectionType::name`] is `None`
/// for a type nobody defines, and launching refuses it ([`OvmfError::UnknownSectionType`](super::OvmfError::UnknownSectionType)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct SectionType(pub u32);

impl SectionType {
    /// `SEV_DESC_TYPE_UNDEF`.
    pub const UNDEF: Self = Self(0);
    /// Pre-validated memory the firmware uses early (`SNP_SEC_MEM`); measured as zero pages.
    pub const SNP_SEC_MEM: Self = Self(1);
    /// The SNP secrets page.
    pub const SNP_SECRETS: Self = Self(2);
    /// The SNP CPUID page.
    pub const CPUID: Self = Self(3);
    /// The SVSM calling-area page (coconut-svsm, edk2 2024).
    pub const SVSM_CAA: Self = Self(4);
    /// The kernel/initrd/cmdline hashes page (`SNP_KERNEL_HASHES`).
    pub const SNP_KERNEL_HASHES: Self = Self(0x10);

    /// The name, or `None` for an unknown type.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            1 => Some("SNP_SEC_MEM"),
            2 => Some("SNP_SECRETS"),
            3 => Some("CPUID"),
            4 => Some("SVSM_CAA"),
            0x10 => Some("SNP_KERNEL_HASHES"),
            _ => None,
        }
    }
}

impl fmt::Display for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown({:#x})", self.0),
        }
    }
}

impl fmt::Debug for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SectionType({self})")
    }
}

/// One `ASEV` descriptor: a guest-physical range and what the launch puts there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Section {
    /// Guest-physical base.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// What the launch puts there.
    pub section_type: SectionType,
}

impl Section {
    /// A section.
    pub const fn new(gpa: u32, size: u32, section_type: SectionType) -> Self {
        Self {
            gpa,
            size,
            section_type,
        }
    }

    /// One past the last byte, as a `u64` (cannot overflow).
    pub const fn end(&self) -> u64 {
        self.gpa as u64 + self.size as u64
    }
}
