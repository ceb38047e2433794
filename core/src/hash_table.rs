//! The SEV kernel-hashes table: the SHA-256 hashes of a direct-boot kernel, initrd and command
//! line that QEMU installs in guest memory where OVMF's footer table says
//! (`sev_add_kernel_loader_hashes`, QEMU 10.2 `target/i386/sev.c`), and that OVMF checks before
//! it boots them. The table is part of the launch measurement.
//!
//! Layout (QEMU `SevHashTable`, `SevHashTableEntry`, `PaddedSevHashTable`; all packed):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | header GUID 9438d606-4f22-4cc9-b479-a793d411fd21, u16 length 168 |
//! | 0x12 | cmdline entry: GUID 97d02dd8-…, u16 length 50, SHA-256 of the command line and its NUL |
//! | 0x44 | initrd entry: GUID 44baf731-…, u16 length 50, SHA-256 of the initrd (of nothing when none) |
//! | 0x76 | kernel entry: GUID 4de79437-…, u16 length 50, SHA-256 of the kernel |
//! | 0xa8 | zero padding to 176 bytes (`PaddedSevHashTable`, 16-byte multiple) |

use crate::guid::Guid;
use sha2::{Digest, Sha256};
use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `SEV_HASH_TABLE_HEADER_GUID` 9438d606-4f22-4cc9-b479-a793d411fd21.
pub const HEADER_GUID: Guid = Guid::from_fields(
    0x9438d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
/// `SEV_KERNEL_ENTRY_GUID` 4de79437-abd2-427f-b835-d5b172d2045b.
pub const KERNEL_ENTRY_GUID: Guid = Guid::from_fields(
    0x4de79437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
/// `SEV_INITRD_ENTRY_GUID` 44baf731-3a2f-4bd7-9af1-41e29169781d.
pub const INITRD_ENTRY_GUID: Guid = Guid::from_fields(
    0x44baf731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
/// `SEV_CMDLINE_ENTRY_GUID` 97d02dd8-bd20-4c94-aa78-e7714d36ab2a.
pub const CMDLINE_ENTRY_GUID: Guid = Guid::from_fields(
    0x97d02dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);

/// QEMU's `SevHashTableEntry`: GUID, length (50), SHA-256.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct SevHashTableEntry {
    /// Which hash.
    pub guid: Guid,
    /// The entry's length, 50.
    pub len: U16,
    /// The SHA-256.
    pub hash: [u8; 32],
}

/// QEMU's `PaddedSevHashTable`: the header, three entries and the padding to 176 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct SevHashTable {
    /// [`HEADER_GUID`].
    pub guid: Guid,
    /// The table's length without padding, 168.
    pub len: U16,
    /// The command line's entry.
    pub cmdline: SevHashTableEntry,
    /// The initrd's entry.
    pub initrd: SevHashTableEntry,
    /// The kernel's entry.
    pub kernel: SevHashTableEntry,
    /// Zeros up to a multiple of 16 bytes.
    pub padding: [u8; 8],
}

/// Size of one `SevHashTableEntry`: 50 bytes.
pub const ENTRY_SIZE: usize = core::mem::size_of::<SevHashTableEntry>();
/// Size of QEMU's `SevHashTable` (GUID, length, three entries): 168 bytes.
pub const TABLE_SIZE: usize = 16 + 2 + 3 * ENTRY_SIZE;
/// Size of QEMU's `PaddedSevHashTable`: 176 bytes.
pub const PADDED_SIZE: usize = core::mem::size_of::<SevHashTable>();

const _: () = assert!(ENTRY_SIZE == 50);
const _: () = assert!(TABLE_SIZE == 168);
const _: () = assert!(PADDED_SIZE == 176 && PADDED_SIZE == (TABLE_SIZE + 15) & !15);
const _: () = assert!(core::mem::offset_of!(SevHashTable, cmdline) == 0x12);
const _: () = assert!(core::mem::offset_of!(SevHashTable, initrd) == 0x44);
const _: () = assert!(core::mem::offset_of!(SevHashTable, kernel) == 0x76);
const _: () = assert!(core::mem::offset_of!(SevHashTable, padding) == 0xa8);

/// The SHA-256 hashes of a direct-boot kernel, initrd and command line, as QEMU's
/// `sev_add_kernel_loader_hashes` puts them in the firmware's hash table.
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

    /// QEMU's `PaddedSevHashTable` of these hashes: cmdline, initrd, kernel.
    pub fn table(&self) -> SevHashTable {
        let entry = |guid, hash| SevHashTableEntry {
            guid,
            len: U16::new(ENTRY_SIZE as u16),
            hash,
        };
        SevHashTable {
            guid: HEADER_GUID,
            len: U16::new(TABLE_SIZE as u16),
            cmdline: entry(CMDLINE_ENTRY_GUID, self.cmdline),
            initrd: entry(INITRD_ENTRY_GUID, self.initrd),
            kernel: entry(KERNEL_ENTRY_GUID, self.kernel),
            padding: [0; 8],
        }
    }

    /// The 4 KiB page SNP measures for the `SNP_KERNEL_HASHES` section: zero except for
    /// [`SevHashes::table`] at `offset` (the hash table GPA's offset in its page). `None` if
    /// the table does not fit in the page at that offset.
    pub fn page(&self, offset: usize) -> Option<[u8; 4096]> {
        let mut page = [0u8; 4096];
        page.get_mut(offset..offset.checked_add(PADDED_SIZE)?)?
            .copy_from_slice(self.table().as_bytes());
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_bytes() {
        let h = SevHashes {
            kernel: [3; 32],
            initrd: [2; 32],
            cmdline: [1; 32],
        };
        let t = h.table();
        let b = t.as_bytes();
        assert_eq!(b.len(), 176);
        assert_eq!(&b[..4], &[0x06, 0xd6, 0x38, 0x94]);
        assert_eq!(&b[16..18], &[168, 0]);
        assert_eq!(&b[0x12 + 16..0x12 + 18], &[50, 0]);
        assert_eq!(b[0x12 + 18], 1);
        assert_eq!(b[0x44 + 18], 2);
        assert_eq!(b[0x76 + 18], 3);
        assert!(b[0xa8..].iter().all(|&x| x == 0));
        assert!(h.page(4096 - 175).is_none());
        assert_eq!(&h.page(0xc00).unwrap()[0xc00..0xc00 + 176], b);
    }
}
