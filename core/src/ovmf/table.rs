//! The GUIDed footer table at the end of an OVMF image: its entries, typed where the stack
//! knows them ([`TableEntry`]) and kept, never dropped, where it does not
//! ([`TableEntry::Unknown`]).

use super::error::OvmfError;
use crate::guid::Guid;
use core::fmt;
use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Footer of the OVMF GUIDed table (`OVMF_TABLE_FOOTER_GUID`).
pub const FOOTER_GUID: Guid = Guid::from_fields(
    0x96b582de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// SEV-ES reset block (`SEV_INFO_BLOCK_GUID`): `u32` AP reset address.
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::from_fields(
    0x00f771de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// SEV secret area (`SEV_SECRET_GUID`): `u32 base, u32 size`.
pub const SEV_SECRET_AREA_GUID: Guid = Guid::from_fields(
    0x4c2eb361,
    0x7d9b,
    0x4cc3,
    [0x80, 0x81, 0x12, 0x7c, 0x90, 0xd3, 0xd2, 0x94],
);
/// SEV kernel-hashes table (`SEV_HASH_TABLE_RV_GUID`): `SevHashTableDescriptor { u32 base, u32 size }`.
pub const SEV_HASH_TABLE_GUID: Guid = Guid::from_fields(
    0x7255371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// OVMF SEV metadata (`OVMF_SEV_META_DATA_GUID`): `u32` offset of `ASEV` from the end of the image.
pub const SEV_METADATA_GUID: Guid = Guid::from_fields(
    0xdc886566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// TDX metadata (`TDX_METADATA_GUID`): `u32` offset of `TDVF` from the end of the image.
pub const TDX_METADATA_GUID: Guid = Guid::from_fields(
    0xe47a6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);
/// SVSM information (`SVSM_INFO_GUID`, edk2 `ResetVectorVtf0.asm`, coconut-svsm): starts with
/// the `u32` launch offset of the SVSM entry point; coconut's older stage-0 appends more fields.
pub const SVSM_INFO_GUID: Guid = Guid::from_fields(
    0xa789a612,
    0x0597,
    0x4c4b,
    [0xa4, 0x9f, 0xcb, 0xb1, 0xfe, 0x9d, 0x1d, 0xdd],
);

/// Bytes of reset-vector code after the table footer (QEMU `bytes_after_table_footer`).
pub const BYTES_AFTER_TABLE: usize = 32;
/// An entry header: `u16` length then the GUID.
pub const ENTRY_HEADER_SIZE: usize = 18;
/// The shortest image that can hold a footer.
pub const MIN_IMAGE_SIZE: usize = BYTES_AFTER_TABLE + ENTRY_HEADER_SIZE;

/// The entry header as it sits in the image.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(super) struct EntryHeader {
    pub(super) len: U16,
    pub(super) guid: Guid,
}

const _: () = assert!(core::mem::size_of::<EntryHeader>() == ENTRY_HEADER_SIZE);

/// A guest-physical range from the footer table (`{ u32 base, u32 size }`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct GpaRange {
    /// Base.
    pub base: u32,
    /// Size in bytes.
    pub size: u32,
}

/// One footer-table entry, typed where known.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TableEntry<'a> {
    /// SEV-ES reset block: where APs start (CS base `addr & 0xffff0000`, IP `addr & 0xffff`).
    SevEsResetBlock {
        /// The AP reset address.
        reset_addr: u32,
    },
    /// Where OVMF expects the kernel/initrd/cmdline hash table (`SevHashTableDescriptor`).
    SevHashTable(GpaRange),
    /// The SEV launch-secret area.
    SevSecretArea(GpaRange),
    /// Where the `ASEV` metadata is, counted back from the end of the image.
    SevMetadataOffset {
        /// Bytes from the `ASEV` header to the end of the image.
        offset_from_end: u32,
    },
    /// Where the TDX (`TDVF`) metadata is, counted back from the end of the image.
    TdxMetadataOffset {
        /// Bytes from the `TDVF` header to the end of the image.
        offset_from_end: u32,
    },
    /// SVSM information: at least 4 bytes, the first `u32` the SVSM launch offset.
    SvsmInfo(&'a [u8]),
    /// Any other GUID, kept with its data.
    Unknown {
        /// The entry GUID.
        guid: Guid,
        /// The entry data.
        data: &'a [u8],
    },
}

/// [`fmt::Display`] of [`TableEntry::value`].
#[derive(Debug, Clone, Copy)]
pub struct EntryValue<'e>(&'e TableEntry<'e>);

impl fmt::Display for EntryValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TableEntry::SevEsResetBlock { reset_addr } => {
                write!(f, "AP reset address {reset_addr:#x}")
            }
            TableEntry::SevHashTable(r) | TableEntry::SevSecretArea(r) => {
                write!(f, "base {:#x} size {:#x}", r.base, r.size)
            }
            TableEntry::SevMetadataOffset { offset_from_end }
            | TableEntry::TdxMetadataOffset { offset_from_end } => {
                write!(f, "{offset_from_end:#x} bytes before the end")
            }
            TableEntry::SvsmInfo(d) => match d.get(..4).and_then(|w| <[u8; 4]>::try_from(w).ok()) {
                Some(w) => write!(f, "launch offset {:#x}", u32::from_le_bytes(w)),
                None => write!(f, "{} data bytes", d.len()),
            },
            TableEntry::Unknown { data, .. } => write!(f, "{} data bytes", data.len()),
        }
    }
}

impl TableEntry<'_> {
    /// The entry's GUID.
    pub const fn guid(&self) -> Guid {
        match self {
            Self::SevEsResetBlock { .. } => SEV_ES_RESET_BLOCK_GUID,
            Self::SevHashTable(_) => SEV_HASH_TABLE_GUID,
            Self::SevSecretArea(_) => SEV_SECRET_AREA_GUID,
            Self::SevMetadataOffset { .. } => SEV_METADATA_GUID,
            Self::TdxMetadataOffset { .. } => TDX_METADATA_GUID,
            Self::SvsmInfo(_) => SVSM_INFO_GUID,
            Self::Unknown { guid, .. } => *guid,
        }
    }

    /// A short name for display.
    pub fn name(&self) -> &'static str {
        guid_name(&self.guid())
    }

    /// The entry's value in words (`AP reset address 0x80b004`, `base 0x810c00 size 0x400`,
    /// `0x52c bytes before the end`, …), as `vmsa inspect` and the browser page show it.
    pub fn value(&self) -> EntryValue<'_> {
        EntryValue(self)
    }

    /// Bytes of data the entry carries.
    pub const fn data_len(&self) -> usize {
        match self {
            Self::SevEsResetBlock { .. }
            | Self::SevMetadataOffset { .. }
            | Self::TdxMetadataOffset { .. } => 4,
            Self::SevHashTable(_) | Self::SevSecretArea(_) => 8,
            Self::SvsmInfo(d) | Self::Unknown { data: d, .. } => d.len(),
        }
    }

    /// Writes the data into `out` (exactly [`data_len`](Self::data_len) bytes).
    pub(super) fn write_data(&self, out: &mut [u8]) -> Option<()> {
        let mut range = [0u8; 8];
        let bytes: &[u8] = match self {
            Self::SevEsResetBlock { reset_addr: v }
            | Self::SevMetadataOffset { offset_from_end: v }
            | Self::TdxMetadataOffset { offset_from_end: v } => {
                range[..4].copy_from_slice(&v.to_le_bytes());
                &range[..4]
            }
            Self::SevHashTable(r) | Self::SevSecretArea(r) => {
                range[..4].copy_from_slice(&r.base.to_le_bytes());
                range[4..].copy_from_slice(&r.size.to_le_bytes());
                &range
            }
            Self::SvsmInfo(d) | Self::Unknown { data: d, .. } => d,
        };
        out.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(())
    }

    /// Types raw entry data by GUID, checking the size of known entries.
    fn from_raw(guid: Guid, data: &[u8]) -> Result<TableEntry<'_>, &'static str> {
        fn exact<const N: usize>(data: &[u8]) -> Result<[u8; N], &'static str> {
            <[u8; N]>::try_from(data).map_err(|_| "")
        }
        let u32_at = |b: [u8; 4]| u32::from_le_bytes(b);
        let range = |d: &[u8]| {
            exact::<8>(d).map(|b| {
                let [a, b2, c, d2, e, f, g, h] = b;
                GpaRange {
                    base: u32::from_le_bytes([a, b2, c, d2]),
                    size: u32::from_le_bytes([e, f, g, h]),
                }
            })
        };
        Ok(match guid {
            SEV_ES_RESET_BLOCK_GUID => TableEntry::SevEsResetBlock {
                reset_addr: u32_at(exact(data).map_err(|_| "4")?),
            },
            SEV_HASH_TABLE_GUID => TableEntry::SevHashTable(range(data).map_err(|_| "8")?),
            SEV_SECRET_AREA_GUID => TableEntry::SevSecretArea(range(data).map_err(|_| "8")?),
            SEV_METADATA_GUID => TableEntry::SevMetadataOffset {
                offset_from_end: u32_at(exact(data).map_err(|_| "4")?),
            },
            TDX_METADATA_GUID => TableEntry::TdxMetadataOffset {
                offset_from_end: u32_at(exact(data).map_err(|_| "4")?),
            },
            SVSM_INFO_GUID => {
                if data.len() < 4 {
                    return Err("at least 4");
                }
                TableEntry::SvsmInfo(data)
            }
            guid => TableEntry::Unknown { guid, data },
        })
    }
}

/// The footer-table GUIDs this crate names (a table, not a `match`: one comparison loop
/// instead of seven inlined 16-byte compares, which the size-bound browser build notices).
const NAMES: [(Guid, &str); 7] = [
    (FOOTER_GUID, "table footer"),
    (SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block"),
    (SEV_HASH_TABLE_GUID, "SEV hash table"),
    (SEV_SECRET_AREA_GUID, "SEV secret area"),
    (SEV_METADATA_GUID, "OVMF SEV metadata offset"),
    (TDX_METADATA_GUID, "TDX metadata offset"),
    (SVSM_INFO_GUID, "SVSM info"),
];

/// A display name for a footer-table GUID (`"unknown"` for others).
pub fn guid_name(guid: &Guid) -> &'static str {
    NAMES
        .iter()
        .find(|(g, _)| g == guid)
        .map_or("unknown", |(_, name)| name)
}

/// One entry as found in the image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry<'a> {
    /// Walk index (0 = nearest the footer).
    pub index: usize,
    /// Offset of the entry's data in the image.
    pub offset: usize,
    /// The raw data.
    pub data: &'a [u8],
    /// The typed entry.
    pub entry: TableEntry<'a>,
}

/// Iterator over the footer table, nearest the footer first. Built only over a table that
/// [`OvmfImage::parse`](super::OvmfImage::parse) has checked, so it yields every entry.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    pub(super) table: &'a [u8],
    pub(super) base: usize,
    pub(super) index: usize,
}

impl<'a> Entries<'a> {
    /// Walks one entry down; `Ok(None)` at the start of the table.
    pub(super) fn step(&mut self) -> Result<Option<Entry<'a>>, OvmfError> {
        if self.table.is_empty() {
            return Ok(None);
        }
        let Ok((rest, header)) = EntryHeader::read_from_suffix(self.table) else {
            return Err(OvmfError::TrailingTableBytes {
                offset: self.base,
                len: self.table.len(),
            });
        };
        let len = usize::from(header.len.get());
        let guid = header.guid;
        let header_offset = self.base + rest.len();
        if len < ENTRY_HEADER_SIZE {
            return Err(OvmfError::EntryTooShort {
                index: self.index,
                offset: header_offset,
                guid,
                len,
            });
        }
        let data_len = len - ENTRY_HEADER_SIZE;
        let Some(start) = rest.len().checked_sub(data_len) else {
            return Err(OvmfError::EntryOverrunsTable {
                index: self.index,
                offset: header_offset,
                guid,
                len,
                remaining: self.table.len(),
            });
        };
        let (below, data) = rest.split_at(start);
        let entry =
            TableEntry::from_raw(guid, data).map_err(|expected| OvmfError::EntryWrongSize {
                index: self.index,
                offset: self.base + start,
                guid,
                name: guid_name(&guid),
                len: data.len(),
                expected,
            })?;
        let found = Entry {
            index: self.index,
            offset: self.base + start,
            data,
            entry,
        };
        self.table = below;
        self.index += 1;
        Ok(Some(found))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        self.step().ok().flatten()
    }
}
