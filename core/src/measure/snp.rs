//! The SEV-SNP launch digest.
//!
//! The firmware keeps a 48-byte digest `LD`, initially zero. Every `SNP_LAUNCH_UPDATE` of a page
//! replaces it with `SHA-384(PAGE_INFO)` ([`PageInfo`], SEV-SNP Firmware ABI rev. 1.55,
//! Table 67). This module writes zeros for the VMPL permissions and exposes no way to set them
//! (see [`crate::page`]).

use super::{ItemKind, MeasureError, MeasuredItem, Observer};
use crate::page::{PAGE_SIZE, PageInfo, PageType, VMSA_GPA};
use crate::vmsa::Vmsa;
use sha2::{Digest, Sha384};
use zerocopy::IntoBytes;

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

/// Hashes many 4 KiB pages: the contents hashes of NORMAL pages are independent of each other,
/// so a hosted caller can compute them on several cores, several pages per SIMD register
/// (`vmsa-pagehash`), while the `PAGE_INFO` chain stays sequential.
pub trait PageHasher {
    /// Calls `each` with the SHA-384 of every whole page of `pages`, in page order, in as many
    /// calls as the hasher likes (a short tail of `pages` is ignored).
    fn sha384_pages(&self, pages: &[u8], each: &mut dyn FnMut(&[[u8; 48]]));
}

/// The core's own [`PageHasher`]: `sha2`, one page at a time, on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha2Pages;

impl PageHasher for Sha2Pages {
    fn sha384_pages(&self, pages: &[u8], each: &mut dyn FnMut(&[[u8; 48]])) {
        for page in pages.chunks_exact(PAGE_SIZE as usize) {
            each(&[sha384(page)]);
        }
    }
}
