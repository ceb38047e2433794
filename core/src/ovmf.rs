//! OVMF firmware metadata: the GUIDed footer table, the `ASEV` SEV metadata and the SEV-ES reset
//! block, read zero-copy from `&[u8]`, and a builder that writes them into a caller's buffer.
//!
//! Layout, as QEMU reads it (`hw/i386/pc_sysfw_ovmf.c` `pc_system_parse_ovmf_flash` and
//! `pc_system_ovmf_table_find`, QEMU 10.2) and as edk2 writes it
//! (`OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`, `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`):
//!
//! ```text
//! image end - 32 .. end        reset-vector code (BSP starts at 0xfffffff0 = end - 16)
//! image end - 48 .. end - 32   footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d
//! image end - 50 .. end - 48   u16 table length, counting the footer's own 18 bytes
//! below that, walked backwards: [data][u16 entry length (data + 18)][GUID]  ...
//! ```
//!
//! Entries are typed where the stack knows them ([`TableEntry`]) and listed, never dropped, where
//! it does not ([`TableEntry::Unknown`]). The SEV metadata (`ASEV`) sits `offset` bytes before
//! the end of the image: a 16-byte header `{ "ASEV", u32 len, u32 version = 1, u32 count }` and
//! `count` descriptors `{ u32 gpa, u32 size, u32 type }` ([`Section`]); section types are open
//! ([`SectionType`]).
//!
//! Every malformed image is an [`OvmfError`] that names the entry (walk index and GUID) and the
//! offset in the image; parsing never panics and never indexes by a count from the file
//! without a check.
//!
//! ```
//! use vmsa_core::ovmf::{build, OvmfImage, Section, SectionType, TableEntry};
//!
//! // A 4 KiB synthetic firmware: an SEV-ES reset block and SNP metadata.
//! let mut image = [0u8; 4096];
//! let sections = [Section::new(0x80_0000, 0x1000, SectionType::SNP_SECRETS)];
//! build(&mut image, &[TableEntry::SevEsResetBlock { reset_addr: 0x80_b004 }], Some(&sections)).unwrap();
//!
//! let fw = OvmfImage::parse(&image).unwrap();
//! assert_eq!(fw.sev_es_reset_addr(), Some(0x80_b004));
//! assert_eq!(fw.sev_metadata().unwrap().sections().next(), Some(sections[0]));
//! ```

use core::fmt;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A GUID in the byte order EFI stores it (the first three fields little-endian, as Python's
/// `uuid.bytes_le` and QEMU's `qemu_uuid_bswap` produce).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]` in text.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses the usual text form (`96b582de-1fb2-45f7-baea-a366c55a082d`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.as_bytes();
        if t.len() != 36 {
            return None;
        }
        // Position in the text of each byte of the big-endian (RFC 4122) form.
        let mut be = [0u8; 16];
        let mut i = 0;
        for (n, out) in be.iter_mut().enumerate() {
            if matches!(n, 4 | 6 | 8 | 10) {
                if t.get(i) != Some(&b'-') {
                    return None;
                }
                i += 1;
            }
            let hi = hex_digit(*t.get(i)?)?;
            let lo = hex_digit(*t.get(i + 1)?)?;
            *out = hi << 4 | lo;
            i += 2;
        }
        let [a0, a1, a2, a3, b0, b1, c0, c1, r @ ..] = be;
        Some(Self::from_fields(
            u32::from_be_bytes([a0, a1, a2, a3]),
            u16::from_be_bytes([b0, b1]),
            u16::from_be_bytes([c0, c1]),
            r,
        ))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-",
            g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9]
        )?;
        for b in &g[10..] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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
/// Size of the `ASEV` header.
pub const METADATA_HEADER_SIZE: usize = 16;
/// Size of one `ASEV` section descriptor.
pub const SECTION_DESC_SIZE: usize = 12;
/// Sections beyond this count are refused ([`OvmfError::TooManySections`]); edk2 builds have 5–7
/// and the overlap check is quadratic.
pub const MAX_SECTIONS: usize = 256;
/// The `ASEV` signature.
pub const METADATA_SIGNATURE: [u8; 4] = *b"ASEV";
/// The only `ASEV` version there is.
pub const METADATA_VERSION: u32 = 1;

/// The entry header as it sits in the image.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct EntryHeader {
    len: U16,
    guid: Guid,
}

/// `OvmfSevMetadata` without its descriptors (QEMU `include/hw/i386/pc.h`).
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct MetadataHeader {
    signature: [u8; 4],
    len: U32,
    version: U32,
    count: U32,
}

/// `OvmfSevMetadataDesc` as it sits in the image.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct SectionDesc {
    gpa: U32,
    size: U32,
    section_type: U32,
}

const _: () = assert!(core::mem::size_of::<EntryHeader>() == ENTRY_HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<MetadataHeader>() == METADATA_HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<SectionDesc>() == SECTION_DESC_SIZE);

/// An `ASEV` section type (`OvmfSevMetadataSectionType`, QEMU `pc.h`, edk2
/// `OvmfSevMetadata.asm`). Open: any `u32` is representable; [`SectionType::name`] is `None`
/// for a type nobody defines, and launching refuses it ([`OvmfError::UnknownSectionType`]).
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
    pub const fn name(&self) -> &'static str {
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
    fn write_data(&self, out: &mut [u8]) -> Option<()> {
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

/// A display name for a footer-table GUID (`"unknown"` for others).
pub const fn guid_name(guid: &Guid) -> &'static str {
    match *guid {
        FOOTER_GUID => "table footer",
        SEV_ES_RESET_BLOCK_GUID => "SEV-ES reset block",
        SEV_HASH_TABLE_GUID => "SEV hash table",
        SEV_SECRET_AREA_GUID => "SEV secret area",
        SEV_METADATA_GUID => "OVMF SEV metadata offset",
        TDX_METADATA_GUID => "TDX metadata offset",
        SVSM_INFO_GUID => "SVSM info",
        _ => "unknown",
    }
}

/// An OVMF image that cannot be read. Offsets are from the start of the image; entry indexes
/// count from the entry nearest the footer (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OvmfError {
    /// Shorter than the 50 bytes a footer needs.
    #[error("the image has {len} bytes, too short for an OVMF footer table (needs at least 50)")]
    TooShort {
        /// Image length.
        len: usize,
    },
    /// No footer GUID 48 bytes before the end: not an OVMF image with a GUIDed table.
    #[error(
        "no OVMF table footer GUID at offset {offset:#x} (found {found}); not an OVMF image with a GUIDed footer table"
    )]
    NoFooter {
        /// Where the footer GUID should be.
        offset: usize,
        /// What is there instead.
        found: Guid,
    },
    /// The footer's table length is below its own 18-byte header.
    #[error(
        "the table footer at offset {offset:#x} gives a table length of {len}, less than the footer's own 18 bytes"
    )]
    TableLengthTooSmall {
        /// Offset of the footer's length field.
        offset: usize,
        /// The length.
        len: usize,
    },
    /// The table would start before the image does.
    #[error(
        "the table footer at offset {offset:#x} gives a table length of {len} bytes, but only {available} bytes precede it"
    )]
    TableOverrunsImage {
        /// Offset of the footer's length field.
        offset: usize,
        /// The length.
        len: usize,
        /// Bytes available before the footer, footer included.
        available: usize,
    },
    /// An entry's length is below the 18-byte header it includes.
    #[error(
        "table entry {index} ({guid}) at offset {offset:#x} has length {len}, less than its own 18-byte header"
    )]
    EntryTooShort {
        /// Walk index.
        index: usize,
        /// Offset of the entry's length field.
        offset: usize,
        /// Entry GUID.
        guid: Guid,
        /// The length.
        len: usize,
    },
    /// An entry's length reaches past the start of the table.
    #[error(
        "table entry {index} ({guid}) at offset {offset:#x} has length {len}, past the start of the table ({remaining} bytes left)"
    )]
    EntryOverrunsTable {
        /// Walk index.
        index: usize,
        /// Offset of the entry's length field.
        offset: usize,
        /// Entry GUID.
        guid: Guid,
        /// The length.
        len: usize,
        /// Table bytes left for this entry.
        remaining: usize,
    },
    /// Bytes left at the start of the table that cannot hold an entry header.
    #[error(
        "{len} stray bytes at offset {offset:#x}, at the start of the table, too few for an entry"
    )]
    TrailingTableBytes {
        /// Offset of the stray bytes.
        offset: usize,
        /// How many.
        len: usize,
    },
    /// A known entry has the wrong data size (e.g. a reset block that is not 4 bytes).
    #[error(
        "table entry {index} ({name}, {guid}) at offset {offset:#x} has {len} data bytes, expected {expected}"
    )]
    EntryWrongSize {
        /// Walk index.
        index: usize,
        /// Offset of the entry data.
        offset: usize,
        /// Entry GUID.
        guid: Guid,
        /// Display name.
        name: &'static str,
        /// Data bytes found.
        len: usize,
        /// Data bytes expected.
        expected: &'static str,
    },
    /// A known GUID appears twice; which one a VMM uses is ambiguous.
    #[error(
        "table entries {first} and {second} ({guid}) are both a {name}; the firmware is ambiguous"
    )]
    DuplicateEntry {
        /// Walk index of the first.
        first: usize,
        /// Walk index of the second.
        second: usize,
        /// GUID.
        guid: Guid,
        /// Display name.
        name: &'static str,
    },
    /// The metadata offset points outside the image (or leaves no room for the header).
    #[error(
        "the SEV metadata offset {offset_from_end:#x} from the end does not fit an ASEV header in a {image_len:#x}-byte image"
    )]
    MetadataOutsideImage {
        /// Offset from the end.
        offset_from_end: u32,
        /// Image length.
        image_len: usize,
    },
    /// The metadata header does not start with `ASEV`.
    #[error("SEV metadata at offset {offset:#x} has signature {found:02x?}, expected \"ASEV\"")]
    BadMetadataSignature {
        /// Offset of the header.
        offset: usize,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The metadata version is not 1.
    #[error("SEV metadata at offset {offset:#x} has version {version}, only version 1 exists")]
    BadMetadataVersion {
        /// Offset of the header.
        offset: usize,
        /// The version.
        version: u32,
    },
    /// The metadata length is below the header or past the end of the image.
    #[error(
        "SEV metadata at offset {offset:#x} has length {len}, which is below 16 or runs past the end of the image ({available} bytes left)"
    )]
    BadMetadataLength {
        /// Offset of the header.
        offset: usize,
        /// The length.
        len: u32,
        /// Bytes from the header to the end of the image.
        available: usize,
    },
    /// The descriptors do not fit in the metadata length.
    #[error(
        "SEV metadata at offset {offset:#x} declares {count} sections, which need {needed} bytes, but its length is {len}"
    )]
    DescriptorsPastEnd {
        /// Offset of the header.
        offset: usize,
        /// Declared count.
        count: u32,
        /// Bytes the header and descriptors need.
        needed: u64,
        /// The declared length.
        len: u32,
    },
    /// More sections than [`MAX_SECTIONS`].
    #[error(
        "SEV metadata at offset {offset:#x} declares {count} sections; at most {MAX_SECTIONS} are accepted"
    )]
    TooManySections {
        /// Offset of the header.
        offset: usize,
        /// Declared count.
        count: u32,
    },
    /// A section of size 0.
    #[error(
        "SEV metadata section {index} at offset {offset:#x} (gpa {gpa:#x}, {section_type}) has size 0"
    )]
    ZeroSizedSection {
        /// Section index.
        index: usize,
        /// Offset of its descriptor.
        offset: usize,
        /// Its GPA.
        gpa: u32,
        /// Its type.
        section_type: SectionType,
    },
    /// A section that runs past 4 GiB.
    #[error(
        "SEV metadata section {index} at offset {offset:#x} (gpa {gpa:#x} size {size:#x}) runs past 4 GiB"
    )]
    SectionPast4G {
        /// Section index.
        index: usize,
        /// Offset of its descriptor.
        offset: usize,
        /// Its GPA.
        gpa: u32,
        /// Its size.
        size: u32,
    },
    /// Two sections overlap.
    #[error(
        "SEV metadata sections {first} ({first_gpa:#x}+{first_size:#x}) and {second} ({second_gpa:#x}+{second_size:#x}) overlap"
    )]
    OverlappingSections {
        /// Index of the earlier section.
        first: usize,
        /// Its GPA.
        first_gpa: u32,
        /// Its size.
        first_size: u32,
        /// Index of the later section.
        second: usize,
        /// Its GPA.
        second_gpa: u32,
        /// Its size.
        second_size: u32,
    },
    /// A section type nobody defines; the launch cannot say what to put there.
    #[error(
        "SEV metadata section {index} at offset {offset:#x} has unknown type {section_type:#x}"
    )]
    UnknownSectionType {
        /// Section index.
        index: usize,
        /// Offset of its descriptor.
        offset: usize,
        /// The type.
        section_type: u32,
    },
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
/// [`OvmfImage::parse`] has checked, so it yields every entry.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    table: &'a [u8],
    base: usize,
    index: usize,
}

impl<'a> Entries<'a> {
    /// Walks one entry down; `Ok(None)` at the start of the table.
    fn step(&mut self) -> Result<Option<Entry<'a>>, OvmfError> {
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

/// The `ASEV` SEV metadata of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SevMetadata<'a> {
    offset: usize,
    len: u32,
    descs: &'a [SectionDesc],
}

impl PartialEq for SectionDesc {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for SectionDesc {}
impl fmt::Debug for SectionDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Section::from(*self).fmt(f)
    }
}
impl From<SectionDesc> for Section {
    fn from(d: SectionDesc) -> Self {
        Section::new(d.gpa.get(), d.size.get(), SectionType(d.section_type.get()))
    }
}

impl<'a> SevMetadata<'a> {
    /// Offset of the `ASEV` header in the image.
    pub const fn offset(&self) -> usize {
        self.offset
    }
    /// The header's length field.
    pub const fn len(&self) -> u32 {
        self.len
    }
    /// Whether there are no sections.
    pub const fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }
    /// Number of sections.
    pub const fn section_count(&self) -> usize {
        self.descs.len()
    }
    /// The sections in file order (the order the SNP launch measures them).
    pub fn sections(&self) -> impl ExactSizeIterator<Item = Section> + Clone + use<'a> {
        self.descs.iter().map(|d| Section::from(*d))
    }
    /// Offset in the image of descriptor `index`.
    pub const fn descriptor_offset(&self, index: usize) -> usize {
        self.offset + METADATA_HEADER_SIZE + index * SECTION_DESC_SIZE
    }
    /// [`OvmfError::UnknownSectionType`] for the first section of a type nobody defines.
    pub fn check_known_types(&self) -> Result<(), OvmfError> {
        for (index, s) in self.sections().enumerate() {
            if s.section_type.name().is_none() {
                return Err(OvmfError::UnknownSectionType {
                    index,
                    offset: self.descriptor_offset(index),
                    section_type: s.section_type.0,
                });
            }
        }
        Ok(())
    }
    /// The first section of a type.
    pub fn find(&self, section_type: SectionType) -> Option<Section> {
        self.sections().find(|s| s.section_type == section_type)
    }

    fn parse(image: &'a [u8], offset_from_end: u32) -> Result<Self, OvmfError> {
        let outside = OvmfError::MetadataOutsideImage {
            offset_from_end,
            image_len: image.len(),
        };
        let offset = usize::try_from(offset_from_end)
            .ok()
            .and_then(|o| image.len().checked_sub(o))
            .ok_or(outside)?;
        let at = image.get(offset..).ok_or(outside)?;
        let (header, _) = MetadataHeader::ref_from_prefix(at).map_err(|_| outside)?;
        if header.signature != METADATA_SIGNATURE {
            return Err(OvmfError::BadMetadataSignature {
                offset,
                found: header.signature,
            });
        }
        let version = header.version.get();
        if version != METADATA_VERSION {
            return Err(OvmfError::BadMetadataVersion { offset, version });
        }
        let len = header.len.get();
        let body = usize::try_from(len)
            .ok()
            .filter(|&l| l >= METADATA_HEADER_SIZE)
            .and_then(|l| at.get(METADATA_HEADER_SIZE..l))
            .ok_or(OvmfError::BadMetadataLength {
                offset,
                len,
                available: at.len(),
            })?;
        let count = header.count.get();
        let needed = METADATA_HEADER_SIZE as u64 + SECTION_DESC_SIZE as u64 * u64::from(count);
        if needed > u64::from(len) {
            return Err(OvmfError::DescriptorsPastEnd {
                offset,
                count,
                needed,
                len,
            });
        }
        let n = usize::try_from(count)
            .ok()
            .filter(|&n| n <= MAX_SECTIONS)
            .ok_or(OvmfError::TooManySections { offset, count })?;
        let (descs, _) = <[SectionDesc]>::ref_from_prefix_with_elems(body, n).map_err(|_| {
            OvmfError::DescriptorsPastEnd {
                offset,
                count,
                needed,
                len,
            }
        })?;
        let md = SevMetadata { offset, len, descs };
        for (i, s) in md.sections().enumerate() {
            let desc_offset = md.descriptor_offset(i);
            if s.size == 0 {
                return Err(OvmfError::ZeroSizedSection {
                    index: i,
                    offset: desc_offset,
                    gpa: s.gpa,
                    section_type: s.section_type,
                });
            }
            if s.end() > 1 << 32 {
                return Err(OvmfError::SectionPast4G {
                    index: i,
                    offset: desc_offset,
                    gpa: s.gpa,
                    size: s.size,
                });
            }
            for (j, t) in md.sections().enumerate().take(i) {
                if u64::from(s.gpa) < t.end() && u64::from(t.gpa) < s.end() {
                    return Err(OvmfError::OverlappingSections {
                        first: j,
                        first_gpa: t.gpa,
                        first_size: t.size,
                        second: i,
                        second_gpa: s.gpa,
                        second_size: s.size,
                    });
                }
            }
        }
        Ok(md)
    }
}

/// A parsed OVMF image: its footer table, typed entries and `ASEV` metadata, borrowed from the
/// image bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvmfImage<'a> {
    image: &'a [u8],
    table_offset: usize,
    table: &'a [u8],
    reset_block: Option<Entry<'a>>,
    hash_table: Option<GpaRange>,
    secret_area: Option<GpaRange>,
    metadata_offset: Option<u32>,
    tdx_metadata_offset: Option<u32>,
    svsm_info: Option<&'a [u8]>,
    metadata: Option<SevMetadata<'a>>,
}

/// The guest-physical address an image is loaded at when it ends at 4 GiB (QEMU `-bios`/pflash
/// placement, sev-snp-measure `OVMF.gpa`): `4 GiB - len`.
pub const fn gpa_ending_at_4g(image_len: usize) -> u64 {
    (1u64 << 32).wrapping_sub(image_len as u64)
}

impl<'a> OvmfImage<'a> {
    /// Whether `bytes` end with an OVMF table footer GUID (cheap, for content detection).
    pub fn has_footer(bytes: &[u8]) -> bool {
        bytes
            .len()
            .checked_sub(BYTES_AFTER_TABLE)
            .and_then(|end| bytes.get(..end))
            .and_then(|b| EntryHeader::read_from_suffix(b).ok())
            .is_some_and(|(_, h)| h.guid == FOOTER_GUID)
    }

    /// Parses and checks the footer table, every entry, and the `ASEV` metadata if the table
    /// points to one.
    pub fn parse(image: &'a [u8]) -> Result<Self, OvmfError> {
        let len = image.len();
        let footer_end = len
            .checked_sub(BYTES_AFTER_TABLE)
            .filter(|&e| e >= ENTRY_HEADER_SIZE)
            .ok_or(OvmfError::TooShort { len })?;
        let below_footer = image.get(..footer_end).ok_or(OvmfError::TooShort { len })?;
        let (before, footer) =
            EntryHeader::read_from_suffix(below_footer).map_err(|_| OvmfError::TooShort { len })?;
        let footer_offset = before.len();
        if footer.guid != FOOTER_GUID {
            return Err(OvmfError::NoFooter {
                offset: footer_offset + 2,
                found: footer.guid,
            });
        }
        let table_len = usize::from(footer.len.get());
        let entries_len =
            table_len
                .checked_sub(ENTRY_HEADER_SIZE)
                .ok_or(OvmfError::TableLengthTooSmall {
                    offset: footer_offset,
                    len: table_len,
                })?;
        let table_offset =
            before
                .len()
                .checked_sub(entries_len)
                .ok_or(OvmfError::TableOverrunsImage {
                    offset: footer_offset,
                    len: table_len,
                    available: footer_end,
                })?;
        let table = before.get(table_offset..).unwrap_or_default();
        let mut fw = OvmfImage {
            image,
            table_offset,
            table,
            reset_block: None,
            hash_table: None,
            secret_area: None,
            metadata_offset: None,
            tdx_metadata_offset: None,
            svsm_info: None,
            metadata: None,
        };
        let mut walk = fw.entries();
        let mut seen: [Option<usize>; 6] = [None; 6];
        while let Some(e) = walk.step()? {
            let slot = match e.entry {
                TableEntry::SevEsResetBlock { .. } => {
                    fw.reset_block = Some(e);
                    0
                }
                TableEntry::SevHashTable(r) => {
                    fw.hash_table = Some(r);
                    1
                }
                TableEntry::SevSecretArea(r) => {
                    fw.secret_area = Some(r);
                    2
                }
                TableEntry::SevMetadataOffset { offset_from_end } => {
                    fw.metadata_offset = Some(offset_from_end);
                    3
                }
                TableEntry::TdxMetadataOffset { offset_from_end } => {
                    fw.tdx_metadata_offset = Some(offset_from_end);
                    4
                }
                TableEntry::SvsmInfo(d) => {
                    fw.svsm_info = Some(d);
                    5
                }
                TableEntry::Unknown { .. } => continue,
            };
            if let Some(first) = seen.get_mut(slot) {
                if let Some(first) = *first {
                    return Err(OvmfError::DuplicateEntry {
                        first,
                        second: e.index,
                        guid: e.entry.guid(),
                        name: e.entry.name(),
                    });
                }
                *first = Some(e.index);
            }
        }
        if let Some(off) = fw.metadata_offset {
            fw.metadata = Some(SevMetadata::parse(image, off)?);
        }
        Ok(fw)
    }

    /// The whole image.
    pub const fn bytes(&self) -> &'a [u8] {
        self.image
    }
    /// Offset of the first (lowest) table byte; the footer's length field is at
    /// `len - 50`.
    pub const fn table_offset(&self) -> usize {
        self.table_offset
    }
    /// The footer's table length (entries plus the 18-byte footer header).
    pub const fn table_len(&self) -> usize {
        self.table.len() + ENTRY_HEADER_SIZE
    }
    /// Every entry, nearest the footer first, unknown ones included.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            table: self.table,
            base: self.table_offset,
            index: 0,
        }
    }
    /// The SEV-ES AP reset address, if the image has a reset block (it may be 0, which cannot
    /// launch APs).
    pub fn sev_es_reset_addr(&self) -> Option<u32> {
        match self.reset_block?.entry {
            TableEntry::SevEsResetBlock { reset_addr } => Some(reset_addr),
            _ => None,
        }
    }
    /// The reset-block entry with its offset.
    pub const fn reset_block(&self) -> Option<Entry<'a>> {
        self.reset_block
    }
    /// The kernel-hashes table descriptor, if any.
    pub const fn sev_hash_table(&self) -> Option<GpaRange> {
        self.hash_table
    }
    /// Whether OVMF will verify kernel/initrd/cmdline hashes (a hash-table entry with a
    /// non-zero base, as sev-snp-measure `is_sev_hashes_table_supported`).
    pub fn supports_kernel_hashes(&self) -> bool {
        self.hash_table.is_some_and(|r| r.base != 0)
    }
    /// The SEV secret area, if any.
    pub const fn sev_secret_area(&self) -> Option<GpaRange> {
        self.secret_area
    }
    /// The `ASEV` metadata, if the table has a metadata-offset entry.
    pub const fn sev_metadata(&self) -> Option<SevMetadata<'a>> {
        self.metadata
    }
    /// The TDX metadata offset from the end, if any.
    pub const fn tdx_metadata_offset(&self) -> Option<u32> {
        self.tdx_metadata_offset
    }
    /// The SVSM info entry data, if any.
    pub const fn svsm_info(&self) -> Option<&'a [u8]> {
        self.svsm_info
    }
    /// The GPA the image is loaded at when it ends at 4 GiB.
    pub const fn gpa(&self) -> u64 {
        gpa_ending_at_4g(self.image.len())
    }
}

/// The caller's buffer cannot hold what [`OvmfBuilder`] was asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The buffer is shorter than the footer (50 bytes) or what was written so far.
    #[error("the buffer has {len} bytes, {needed} are needed")]
    BufferTooSmall {
        /// Buffer length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// An entry longer than a `u16` length can say.
    #[error("a table entry of {len} data bytes does not fit a u16 length")]
    EntryTooLong {
        /// Data bytes.
        len: usize,
    },
    /// The table as a whole is longer than a `u16` length can say.
    #[error("the footer table would be {len} bytes; its u16 length cannot say that")]
    TableTooLong {
        /// Table bytes.
        len: usize,
    },
    /// More sections than a `u32` count, or than [`MAX_SECTIONS`].
    #[error("{count} SEV metadata sections; at most {MAX_SECTIONS} are accepted")]
    TooManySections {
        /// Section count.
        count: usize,
    },
    /// The metadata would not sit inside the buffer at the given offset from the end.
    #[error(
        "SEV metadata of {len} bytes does not fit {offset_from_end:#x} bytes before the end of a {buffer:#x}-byte buffer"
    )]
    MetadataDoesNotFit {
        /// Requested offset from the end.
        offset_from_end: usize,
        /// Metadata bytes.
        len: usize,
        /// Buffer length.
        buffer: usize,
    },
}

/// Writes an OVMF footer table (and optionally `ASEV` metadata) into a caller-provided buffer,
/// without allocating. The buffer is the whole image: the table ends 32 bytes before its end,
/// and the last 32 bytes (reset-vector code) are left as the caller wrote them.
///
/// Entries are written in walk order: the first [`entry`](Self::entry) sits next to the
/// footer. [`sev_metadata`](Self::sev_metadata) places the `ASEV` block right below the table
/// and appends the metadata-offset entry pointing to it as the last entry.
#[derive(Debug)]
pub struct OvmfBuilder<'b, 's> {
    buf: &'b mut [u8],
    /// Offset of the lowest table byte written so far.
    cursor: usize,
    metadata: Option<&'s [Section]>,
}

impl<'b, 's> OvmfBuilder<'b, 's> {
    /// Starts a table in `buf` (at least 50 bytes).
    pub fn new(buf: &'b mut [u8]) -> Result<Self, BuildError> {
        let len = buf.len();
        let cursor = len
            .checked_sub(MIN_IMAGE_SIZE)
            .ok_or(BuildError::BufferTooSmall {
                len,
                needed: MIN_IMAGE_SIZE,
            })?;
        Ok(Self {
            buf,
            cursor,
            metadata: None,
        })
    }

    /// Appends an entry (written as given, so malformed images can be made on purpose).
    pub fn entry(&mut self, entry: &TableEntry<'_>) -> Result<&mut Self, BuildError> {
        self.raw_entry(entry.guid(), entry.data_len(), |out| entry.write_data(out))
    }

    fn raw_entry(
        &mut self,
        guid: Guid,
        data_len: usize,
        write: impl FnOnce(&mut [u8]) -> Option<()>,
    ) -> Result<&mut Self, BuildError> {
        let total = data_len
            .checked_add(ENTRY_HEADER_SIZE)
            .filter(|&t| t <= usize::from(u16::MAX))
            .ok_or(BuildError::EntryTooLong { len: data_len })?;
        let len = self.buf.len();
        let start = self
            .cursor
            .checked_sub(total)
            .ok_or(BuildError::BufferTooSmall {
                len,
                needed: len - self.cursor + total,
            })?;
        let header = EntryHeader {
            len: U16::new(total as u16),
            guid,
        };
        let region = self
            .buf
            .get_mut(start..self.cursor)
            .ok_or(BuildError::BufferTooSmall { len, needed: total })?;
        let (data, head) = region.split_at_mut(data_len);
        write(data).ok_or(BuildError::BufferTooSmall { len, needed: total })?;
        head.copy_from_slice(header.as_bytes());
        self.cursor = start;
        Ok(self)
    }

    /// Asks for `ASEV` metadata with these sections (written by [`finish`](Self::finish)).
    pub fn sev_metadata(&mut self, sections: &'s [Section]) -> &mut Self {
        self.metadata = Some(sections);
        self
    }

    /// Writes the metadata (if asked for) and the footer; returns the offset of the lowest
    /// byte written.
    pub fn finish(mut self) -> Result<usize, BuildError> {
        let len = self.buf.len();
        let mut lowest = self.cursor;
        if let Some(sections) = self.metadata {
            let md_len = metadata_len(sections)?;
            // The metadata-offset entry is 22 bytes; the ASEV block goes right below it.
            let md_start = self
                .cursor
                .checked_sub(ENTRY_HEADER_SIZE + 4 + md_len)
                .ok_or(BuildError::BufferTooSmall {
                    len,
                    needed: len - self.cursor + ENTRY_HEADER_SIZE + 4 + md_len,
                })?;
            let offset_from_end = len - md_start;
            let off32 =
                u32::try_from(offset_from_end).map_err(|_| BuildError::MetadataDoesNotFit {
                    offset_from_end,
                    len: md_len,
                    buffer: len,
                })?;
            self.entry(&TableEntry::SevMetadataOffset {
                offset_from_end: off32,
            })?;
            write_sev_metadata(self.buf, offset_from_end, sections)?;
            lowest = md_start;
        }
        let footer_at = len - MIN_IMAGE_SIZE;
        let table_len = footer_at - self.cursor + ENTRY_HEADER_SIZE;
        let table_len16 =
            u16::try_from(table_len).map_err(|_| BuildError::TableTooLong { len: table_len })?;
        let footer = EntryHeader {
            len: U16::new(table_len16),
            guid: FOOTER_GUID,
        };
        if let Some(dst) = self.buf.get_mut(footer_at..footer_at + ENTRY_HEADER_SIZE) {
            dst.copy_from_slice(footer.as_bytes());
        }
        Ok(lowest)
    }
}

fn metadata_len(sections: &[Section]) -> Result<usize, BuildError> {
    if sections.len() > MAX_SECTIONS {
        return Err(BuildError::TooManySections {
            count: sections.len(),
        });
    }
    Ok(METADATA_HEADER_SIZE + SECTION_DESC_SIZE * sections.len())
}

/// Writes an `ASEV` block (header plus descriptors, length exact) `offset_from_end` bytes before
/// the end of `buf`. Returns the offset of the header.
pub fn write_sev_metadata(
    buf: &mut [u8],
    offset_from_end: usize,
    sections: &[Section],
) -> Result<usize, BuildError> {
    let md_len = metadata_len(sections)?;
    let misfit = BuildError::MetadataDoesNotFit {
        offset_from_end,
        len: md_len,
        buffer: buf.len(),
    };
    let start = buf.len().checked_sub(offset_from_end).ok_or(misfit)?;
    let region = buf
        .get_mut(start..)
        .and_then(|r| r.get_mut(..md_len))
        .ok_or(misfit)?;
    let header = MetadataHeader {
        signature: METADATA_SIGNATURE,
        len: U32::new(md_len as u32),
        version: U32::new(METADATA_VERSION),
        count: U32::new(sections.len() as u32),
    };
    let (head, mut descs) = region.split_at_mut(METADATA_HEADER_SIZE);
    head.copy_from_slice(header.as_bytes());
    for s in sections {
        let d = SectionDesc {
            gpa: U32::new(s.gpa),
            size: U32::new(s.size),
            section_type: U32::new(s.section_type.0),
        };
        let (this, rest) = descs.split_at_mut(SECTION_DESC_SIZE);
        this.copy_from_slice(d.as_bytes());
        descs = rest;
    }
    Ok(start)
}

/// Writes a footer table with `entries` (walk order) and, if given, `ASEV` metadata into `buf`
/// (see [`OvmfBuilder`]). Returns the offset of the lowest byte written.
///
/// `OvmfImage::parse` of the result lists `entries` in order, then (with metadata) one
/// [`TableEntry::SevMetadataOffset`], and the same sections.
pub fn build(
    buf: &mut [u8],
    entries: &[TableEntry<'_>],
    metadata: Option<&[Section]>,
) -> Result<usize, BuildError> {
    let mut b = OvmfBuilder::new(buf)?;
    for e in entries {
        b.entry(e)?;
    }
    if let Some(s) = metadata {
        b.sev_metadata(s);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trip_and_byte_order() {
        assert_eq!(
            FOOTER_GUID.0[..4],
            [0xde, 0x82, 0xb5, 0x96],
            "first field little-endian, as in the image"
        );
        let text = "96b582de-1fb2-45f7-baea-a366c55a082d";
        assert_eq!(Guid::parse(text), Some(FOOTER_GUID));
        let mut s = heapless_string();
        core::fmt::write(&mut s, format_args!("{FOOTER_GUID}")).unwrap();
        assert_eq!(s.as_str(), text);
        assert_eq!(Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082"), None);
        assert_eq!(Guid::parse("96b582de+1fb2-45f7-baea-a366c55a082d"), None);
        assert_eq!(Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082g"), None);
    }

    struct Buf([u8; 64], usize);
    impl Buf {
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.0[..self.1]).unwrap()
        }
    }
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
    fn heapless_string() -> Buf {
        Buf([0; 64], 0)
    }

    #[test]
    fn builder_places_metadata_below_the_table() {
        let mut img = [0u8; 4096];
        let secs = [
            Section::new(0x80_0000, 0x9000, SectionType::SNP_SEC_MEM),
            Section::new(0x80_d000, 0x1000, SectionType::SNP_SECRETS),
        ];
        let low = build(
            &mut img,
            &[TableEntry::SevEsResetBlock {
                reset_addr: 0x80_b004,
            }],
            Some(&secs),
        )
        .unwrap();
        let fw = OvmfImage::parse(&img).unwrap();
        let md = fw.sev_metadata().unwrap();
        assert_eq!(md.offset(), low);
        assert_eq!(md.len(), 16 + 24);
        assert!(md.sections().eq(secs.iter().copied()));
        assert_eq!(fw.table_len(), 18 + 22 + 22);
        assert_eq!(fw.table_offset(), 4096 - 50 - 44);
        assert_eq!(low, fw.table_offset() - 40);
    }

    #[test]
    fn too_small_buffers_are_errors() {
        let mut b = [0u8; 49];
        assert!(matches!(
            OvmfBuilder::new(&mut b),
            Err(BuildError::BufferTooSmall { .. })
        ));
        let mut b = [0u8; 60];
        assert!(matches!(
            build(
                &mut b,
                &[TableEntry::SevEsResetBlock { reset_addr: 1 }],
                None
            ),
            Err(BuildError::BufferTooSmall { .. })
        ));
        let mut b = [0u8; 80];
        let secs = [Section::new(0, 1, SectionType::CPUID)];
        assert!(matches!(
            build(&mut b, &[], Some(&secs)),
            Err(BuildError::BufferTooSmall { .. })
        ));
    }
}
