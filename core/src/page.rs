//! SNP page types and `PAGE_INFO`, the record each `SNP_LAUNCH_UPDATE` step of the launch digest
//! hashes (SEV-SNP Firmware ABI, AMD 56860 rev. 1.55, §8.17 "SNP_LAUNCH_UPDATE", Table 67
//! "PAGE_INFO" and Table 68 "Page Types").
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | `DIGEST_CUR[48]`: the current launch digest |
//! | 0x30 | `CONTENTS[48]`: SHA-384 of the page for NORMAL and VMSA pages, zero otherwise |
//! | 0x60 | `LENGTH` (u16) = 0x70 |
//! | 0x62 | `PAGE_TYPE` (u8) |
//! | 0x63 | `IMI_PAGE` (u8) = 0 |
//! | 0x64 | VMPL permissions (4 bytes), zero for every page KVM measures |
//! | 0x68 | `GPA` (u64) |
//!
//! The VMPL permission bytes are written as `vmpl3, vmpl2, vmpl1, reserved` by sev-snp-measure and
//! as `reserved, vmpl1, vmpl2, vmpl3` by coconut-svsm's igvmmeasure; upstream KVM's
//! `kvm_sev_snp_launch_update` has no permission fields, so they are always zero and the
//! disagreement never changes a digest.

use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// A page size.
pub const PAGE_SIZE: u64 = 4096;

/// The GPA of every vCPU's VMSA: KVM's `INITIAL_VMSA_GPA` 0xFFFFFFFFF000, where KVM places it in
/// the RMP and the SNP measurement, and the only VMSA GPA QEMU's `check_vmsa_supported` accepts.
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// An SNP page type (SEV-SNP Firmware ABI Table 68; KVM `KVM_SEV_SNP_PAGE_TYPE_*`). Open: any
/// byte is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct PageType(pub u8);

impl PageType {
    /// A page whose contents are measured.
    pub const NORMAL: Self = Self(1);
    /// A VMSA page (only KVM's `SNP_LAUNCH_FINISH` issues these).
    pub const VMSA: Self = Self(2);
    /// A page the firmware zeroes; contents not measured.
    pub const ZERO: Self = Self(3);
    /// A page whose contents are not measured.
    pub const UNMEASURED: Self = Self(4);
    /// The secrets page.
    pub const SECRETS: Self = Self(5);
    /// The CPUID page.
    pub const CPUID: Self = Self(6);

    /// The name, or `None` for a value without one.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "NORMAL",
            2 => "VMSA",
            3 => "ZERO",
            4 => "UNMEASURED",
            5 => "SECRETS",
            6 => "CPUID",
            _ => return None,
        })
    }
}

impl core::fmt::Display for PageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "type-{}", self.0),
        }
    }
}

/// `PAGE_INFO`, SEV-SNP Firmware ABI rev. 1.55 Table 67 (0x70 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, Immutable, KnownLayout)]
pub struct PageInfo {
    /// The launch digest before this page.
    pub digest_cur: [u8; 48],
    /// SHA-384 of the page for NORMAL and VMSA pages, zero otherwise.
    pub contents: [u8; 48],
    /// 0x70.
    pub length: u16,
    /// The page type.
    pub page_type: u8,
    /// 1 for pages added by an incoming migration image; always 0 here.
    pub imi_page: u8,
    /// VMPL1–3 permissions and a reserved byte; always 0 (see the module docs).
    pub vmpl_perms: [u8; 4],
    /// The GPA of the page.
    pub gpa: u64,
}

const _: () = assert!(core::mem::size_of::<PageInfo>() == 0x70);
const _: () = assert!(core::mem::offset_of!(PageInfo, contents) == 0x30);
const _: () = assert!(core::mem::offset_of!(PageInfo, length) == 0x60);
const _: () = assert!(core::mem::offset_of!(PageInfo, page_type) == 0x62);
const _: () = assert!(core::mem::offset_of!(PageInfo, imi_page) == 0x63);
const _: () = assert!(core::mem::offset_of!(PageInfo, vmpl_perms) == 0x64);
const _: () = assert!(core::mem::offset_of!(PageInfo, gpa) == 0x68);
