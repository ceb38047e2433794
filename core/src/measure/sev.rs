//! The SEV and SEV-ES launch digest.
//!
//! `LAUNCH_UPDATE_DATA` and `LAUNCH_UPDATE_VMSA` extend one SHA-256 with every byte they encrypt,
//! in order: the firmware image, then (with `-kernel` and `kernel-hashes=on`) QEMU's padded hash
//! table, then (SEV-ES) each vCPU's VMSA page. This digest is the firmware's `GCTX.LD`; the
//! `LAUNCH_MEASURE` blob is an HMAC over it keyed by the TIK, which only the guest owner can check.

use super::{ItemKind, MeasuredItem, Observer};
use crate::hash_table::SevHashTable;
use crate::vmsa::Vmsa;
use sha2::{Digest, Sha256};
use zerocopy::IntoBytes;

/// The SEV/SEV-ES launch digest (SHA-256), streaming.
#[derive(Debug, Clone)]
pub struct SevDigest<O: Observer> {
    hash: Sha256,
    chunk: Sha256,
    chunk_len: u64,
    observer: O,
}

impl SevDigest<super::NoObserver> {
    /// A new digest.
    pub fn new() -> Self {
        Self::with_observer(super::NoObserver)
    }
}

impl Default for SevDigest<super::NoObserver> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Observer> SevDigest<O> {
    /// A new digest reporting each item to `observer`.
    pub fn with_observer(observer: O) -> Self {
        Self {
            hash: Sha256::new(),
            chunk: Sha256::new(),
            chunk_len: 0,
            observer,
        }
    }

    /// Feeds part of the firmware image; call [`SevDigest::end_firmware`] after the last part.
    pub fn update_firmware(&mut self, data: &[u8]) {
        self.hash.update(data);
        self.chunk.update(data);
        self.chunk_len += data.len() as u64;
    }

    /// Ends the firmware item (reported to the observer as one item).
    pub fn end_firmware(&mut self) {
        let chunk = core::mem::take(&mut self.chunk);
        let len = core::mem::take(&mut self.chunk_len);
        self.report(ItemKind::Firmware, len, chunk.finalize().into());
    }

    /// The padded kernel hash table.
    pub fn update_hash_table(&mut self, table: &SevHashTable) {
        let table = table.as_bytes();
        self.hash.update(table);
        self.report(
            ItemKind::KernelHashes,
            table.len() as u64,
            Sha256::digest(table).into(),
        );
    }

    /// A vCPU's VMSA page (SEV-ES).
    pub fn update_vmsa(&mut self, cpu: u32, vmsa: &Vmsa) {
        self.hash.update(vmsa.as_bytes());
        self.report(
            ItemKind::Vmsa { cpu },
            4096,
            Sha256::digest(vmsa.as_bytes()).into(),
        );
    }

    /// Data measured at `gpa` by an update other than the firmware image, the kernel hashes and
    /// a VMSA (IGVM directives), reported with its GPA.
    pub fn update_data(&mut self, kind: ItemKind, gpa: u64, data: &[u8]) {
        self.hash.update(data);
        let mut contents = [0u8; 48];
        contents[..32].copy_from_slice(&Sha256::digest(data));
        self.observer.measured(&MeasuredItem {
            kind,
            gpa,
            page_type: None,
            len: data.len() as u64,
            contents,
            digest_after: [0; 48],
        });
    }

    fn report(&mut self, kind: ItemKind, len: u64, sha256: [u8; 32]) {
        let mut contents = [0u8; 48];
        contents[..32].copy_from_slice(&sha256);
        self.observer.measured(&MeasuredItem {
            kind,
            gpa: 0,
            page_type: None,
            len,
            contents,
            digest_after: [0; 48],
        });
    }

    /// The launch digest.
    pub fn finish(self) -> ([u8; 32], O) {
        (self.hash.finalize().into(), self.observer)
    }
}
