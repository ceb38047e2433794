//! The SEV-SNP launch digest.
//!
//! The firmware keeps a 48-byte digest `LD`, initially zero. Every `SNP_LAUNCH_UPDATE` of a page
//! replaces it with `SHA-384(PAGE_INFO)`, where `PAGE_INFO` (SEV-SNP Firmware ABI rev. 1.55,
//! Table 67) is:
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | `DIGEST_CUR[48]`: the current `LD` |
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
//! disagreement never changes a digest. This module writes zeros and exposes no way to set them.

use super::{ItemKind, MeasureError, MeasuredItem, Observer};
use crate::vmsa::Vmsa;
use sha2::{Digest, Sha384};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// The GPA KVM gives every VMSA page in the RMP and in the measurement (KVM's
/// `INITIAL_VMSA_GPA`, see [`crate::kvm_model::INITIAL_VMSA_GPA`]).
pub const VMSA_GPA: u64 = crate::kvm_model::INITIAL_VMSA_GPA;

/// A page size.
pub const PAGE_SIZE: u64 = 4096;

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

/// SHA-384 of a byte string.
pub fn sha384(data: &[u8]) -> [u8; 48] {
    Sha384::digest(data).into()
}

/// SHA-384 of a 4 KiB page of zeros, the contents of an empty IGVM page measured as NORMAL.
pub fn sha384_zero_page() -> [u8; 48] {
    sha384(&[0u8; PAGE_SIZE as usize])
}

/// The SNP launch digest (the guest context's `LD`), with an observer for `--explain`.
#[derive(Debug, Clone)]
pub struct SnpDigest<O: Observer> {
    ld: [u8; 48],
    observer: O,
}

impl SnpDigest<super::NoObserver> {
    /// A digest that starts from 48 zero bytes, as `SNP_LAUNCH_START` leaves it.
    pub fn new() -> Self {
        Self::with_observer([0; 48], super::NoObserver)
    }

    /// A digest seeded with a known intermediate value (`--snp-ovmf-hash`).
    pub fn from_seed(seed: [u8; 48]) -> Self {
        Self::with_observer(seed, super::NoObserver)
    }
}

impl Default for SnpDigest<super::NoObserver> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Observer> SnpDigest<O> {
    /// A digest from `seed` that reports every step to `observer`.
    pub fn with_observer(seed: [u8; 48], observer: O) -> Self {
        Self { ld: seed, observer }
    }

    /// The current launch digest.
    pub fn ld(&self) -> [u8; 48] {
        self.ld
    }

    /// The observer back.
    pub fn into_observer(self) -> O {
        self.observer
    }

    /// One `PAGE_INFO` step with precomputed contents; the primitive everything else uses.
    /// `contents` must be the SHA-384 of the page for NORMAL and VMSA pages and zero otherwise.
    pub fn update_with_contents(
        &mut self,
        kind: ItemKind,
        page_type: PageType,
        gpa: u64,
        contents: [u8; 48],
    ) {
        let info = PageInfo {
            digest_cur: self.ld,
            contents,
            length: 0x70,
            page_type: page_type.0,
            imi_page: 0,
            vmpl_perms: [0; 4],
            gpa,
        };
        self.ld = sha384(info.as_bytes());
        self.observer.measured(&MeasuredItem {
            kind,
            gpa,
            page_type: Some(page_type),
            len: PAGE_SIZE,
            contents,
            digest_after: self.ld,
        });
    }

    /// NORMAL pages: `data` (a multiple of 4 KiB) measured page by page from `gpa` upward.
    pub fn update_normal_pages(
        &mut self,
        kind: ItemKind,
        gpa: u64,
        data: &[u8],
    ) -> Result<(), MeasureError> {
        let len = data.len() as u64;
        check_range("NORMAL page data", gpa, len)?;
        let mut page_gpa = gpa;
        for page in data.chunks_exact(PAGE_SIZE as usize) {
            self.update_with_contents(kind, PageType::NORMAL, page_gpa, sha384(page));
            page_gpa = page_gpa.wrapping_add(PAGE_SIZE);
        }
        Ok(())
    }

    /// Pages whose contents are not measured (ZERO, UNMEASURED, SECRETS, CPUID): `len` bytes
    /// from `gpa`, one step per 4 KiB.
    pub fn update_unmeasured_pages(
        &mut self,
        kind: ItemKind,
        page_type: PageType,
        gpa: u64,
        len: u64,
    ) -> Result<(), MeasureError> {
        check_range("page range", gpa, len)?;
        let mut offset = 0;
        while offset < len {
            self.update_with_contents(kind, page_type, gpa + offset, [0; 48]);
            offset += PAGE_SIZE;
        }
        Ok(())
    }

    /// A vCPU's VMSA, as KVM's `SNP_LAUNCH_FINISH` measures it: a VMSA page at [`VMSA_GPA`].
    pub fn update_vmsa(&mut self, cpu: u32, vmsa: &Vmsa) {
        self.update_with_contents(
            ItemKind::Vmsa { cpu },
            PageType::VMSA,
            VMSA_GPA,
            sha384(vmsa.as_bytes()),
        );
    }
}

fn check_range(what: &'static str, gpa: u64, len: u64) -> Result<(), MeasureError> {
    if len % PAGE_SIZE != 0 {
        return Err(MeasureError::NotPageMultiple { what, len });
    }
    // A range that ends exactly at 2^64 is fine: its last byte is 2^64 - 1.
    match len.checked_sub(1) {
        Some(last) if gpa.checked_add(last).is_none() => {
            Err(MeasureError::GpaOverflow { what, gpa, len })
        }
        _ => Ok(()),
    }
}
