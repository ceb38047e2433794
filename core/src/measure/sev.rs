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

/// The platform's answer to `LAUNCH_MEASURE` for an SEV or SEV-ES guest (SEV API, doc. 55766,
/// `LAUNCH_MEASURE`): `HMAC-SHA-256(TIK; 0x04 ‖ API_MAJOR ‖ API_MINOR ‖ BUILD ‖ POLICY ‖ LD ‖
/// MNONCE)`, with POLICY as 4 little-endian bytes. The guest owner, who holds the TIK from the
/// launch session, compares it with the 32 bytes QEMU's `query-sev-launch-measure` returns
/// before its 16-byte nonce (virtee `sevctl measurement build` computes the same).
pub struct LaunchMeasureInput<'a> {
    /// The launch digest ([`SevDigest`]).
    pub ld: &'a [u8; 32],
    /// `API_MAJOR` of the platform.
    pub api_major: u8,
    /// `API_MINOR`.
    pub api_minor: u8,
    /// `BUILD`.
    pub build: u8,
    /// The guest policy.
    pub policy: u32,
    /// `MNONCE`, chosen by the firmware and reported with the measurement.
    pub mnonce: &'a [u8; 16],
}

/// [`LaunchMeasureInput`] under `tik` (the transport integrity key).
pub fn launch_measure(input: &LaunchMeasureInput<'_>, tik: &[u8; 16]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // A 16-byte key is always a valid HMAC key.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(tik) else {
        return [0; 32];
    };
    mac.update(&[0x04, input.api_major, input.api_minor, input.build]);
    mac.update(&input.policy.to_le_bytes());
    mac.update(input.ld);
    mac.update(input.mnonce);
    mac.finalize().into_bytes().into()
}
