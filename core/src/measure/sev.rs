//! The SEV and SEV-ES launch digest and the kernel hash table.
//!
//! `LAUNCH_UPDATE_DATA` and `LAUNCH_UPDATE_VMSA` extend one SHA-256 with every byte they encrypt,
//! in order: the firmware image, then (with `-kernel` and `kernel-hashes=on`) QEMU's padded hash
//! table, then (SEV-ES) each vCPU's VMSA page. This digest is the firmware's `GCTX.LD`; the
//! `LAUNCH_MEASURE` blob is an HMAC over it keyed by the TIK, which only the guest owner can check.

use super::{ItemKind, MeasuredItem, Observer};
use crate::vmsa::Vmsa;
use sha2::{Digest, Sha256};
use zerocopy::IntoBytes;

/// Size of QEMU's `SevHashTable` (GUID, length, three entries): 168 bytes.
pub const SEV_HASH_TABLE_SIZE: usize = 16 + 2 + 3 * SEV_HASH_ENTRY_SIZE;
/// Size of one `SevHashTableEntry` (GUID, length, SHA-256): 50 bytes.
pub const SEV_HASH_ENTRY_SIZE: usize = 16 + 2 + 32;
/// Size of QEMU's `PaddedSevHashTable`: the table padded to 16 bytes, 176.
pub const SEV_HASH_TABLE_PADDED_SIZE: usize = (SEV_HASH_TABLE_SIZE + 15) & !15;

/// `SEV_HASH_TABLE_HEADER_GUID` 9438d606-4f22-4cc9-b479-a793d411fd21, in EFI byte order.
pub const SEV_HASH_TABLE_HEADER_GUID: [u8; 16] = guid_le(
    0x9438d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
/// `SEV_KERNEL_ENTRY_GUID` 4de79437-abd2-427f-b835-d5b172d2045b.
pub const SEV_KERNEL_ENTRY_GUID: [u8; 16] = guid_le(
    0x4de79437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
/// `SEV_INITRD_ENTRY_GUID` 44baf731-3a2f-4bd7-9af1-41e29169781d.
pub const SEV_INITRD_ENTRY_GUID: [u8; 16] = guid_le(
    0x44baf731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
/// `SEV_CMDLINE_ENTRY_GUID` 97d02dd8-bd20-4c94-aa78-e7714d36ab2a.
pub const SEV_CMDLINE_ENTRY_GUID: [u8; 16] = guid_le(
    0x97d02dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);

/// A GUID in the EFI mixed-endian byte order (`uuid.bytes_le`).
pub const fn guid_le(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// The SHA-256 hashes of a direct-boot kernel, initrd and command line, as QEMU's
/// `sev_add_kernel_loader_hashes` (target/i386/sev.c) puts them in the firmware's hash table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevHashes {
    /// SHA-256 of the kernel image.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of zero bytes when none is given).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line including its terminating NUL (just `"\0"` when none).
    pub cmdline: [u8; 32],
}

impl SevHashes {
    /// The hash of a command line as QEMU measures it: the bytes plus a trailing NUL.
    pub fn cmdline_hash(append: Option<&str>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(append.unwrap_or("").as_bytes());
        h.update([0u8]);
        h.finalize().into()
    }

    /// SHA-256 of a byte string (kernel or initrd held in memory).
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    /// QEMU's `PaddedSevHashTable`: header GUID, u16 length 168, then the cmdline, initrd and
    /// kernel entries (GUID, u16 length 50, hash), zero-padded to 176 bytes.
    pub fn table(&self) -> [u8; SEV_HASH_TABLE_PADDED_SIZE] {
        let mut t = [0u8; SEV_HASH_TABLE_PADDED_SIZE];
        let mut w = Writer { buf: &mut t, at: 0 };
        w.put(&SEV_HASH_TABLE_HEADER_GUID);
        w.put(&(SEV_HASH_TABLE_SIZE as u16).to_le_bytes());
        for (guid, hash) in [
            (SEV_CMDLINE_ENTRY_GUID, &self.cmdline),
            (SEV_INITRD_ENTRY_GUID, &self.initrd),
            (SEV_KERNEL_ENTRY_GUID, &self.kernel),
        ] {
            w.put(&guid);
            w.put(&(SEV_HASH_ENTRY_SIZE as u16).to_le_bytes());
            w.put(hash);
        }
        t
    }

    /// The 4 KiB page SNP measures for the `SNP_KERNEL_HASHES` section: zero except for
    /// [`SevHashes::table`] at `offset` (the hash table GPA's offset in its page). `None` if
    /// the table does not fit in the page at that offset.
    pub fn page(&self, offset: usize) -> Option<[u8; 4096]> {
        let mut page = [0u8; 4096];
        page.get_mut(offset..offset.checked_add(SEV_HASH_TABLE_PADDED_SIZE)?)?
            .copy_from_slice(&self.table());
        Some(page)
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    /// Writes at the cursor; the table layout is fixed, so this never runs past the buffer
    /// (the size constants are derived from the same layout).
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
}

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
    pub fn update_hash_table(&mut self, table: &[u8; SEV_HASH_TABLE_PADDED_SIZE]) {
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

    /// Hashes bytes without reporting them.
    pub(crate) fn update_raw(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    /// Reports an item to the observer.
    pub(crate) fn observe(&mut self, item: &MeasuredItem) {
        self.observer.measured(item);
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
