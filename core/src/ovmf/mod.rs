//! OVMF firmware metadata: the GUIDed footer table, the `ASEV` SEV metadata and the SEV-ES reset
//! block, read zero-copy from `&[u8]`, and a builder that writes them into a caller's buffer.
//!
//! One module per concern: [`table`] (the footer table and its entries), [`metadata`] (`ASEV`),
//! [`section`] (one `ASEV` descriptor), [`error`] (every way an image is malformed), [`mod@build`]
//! (the writer).
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

pub mod build;
pub mod error;
pub mod metadata;
pub mod section;
pub mod table;

pub use build::{BuildError, OvmfBuilder, build, write_sev_metadata};
pub use error::OvmfError;
pub use metadata::{
    METADATA_HEADER_SIZE, METADATA_SIGNATURE, METADATA_VERSION, SECTION_DESC_SIZE, SevMetadata,
};
pub use section::{MAX_SECTIONS, Section, SectionType};
pub use table::{
    BYTES_AFTER_TABLE, ENTRY_HEADER_SIZE, Entries, Entry, EntryValue, FOOTER_GUID, GpaRange,
    MIN_IMAGE_SIZE, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_GUID, SEV_METADATA_GUID,
    SEV_SECRET_AREA_GUID, SVSM_INFO_GUID, TDX_METADATA_GUID, TableEntry, guid_name,
};

use table::EntryHeader;
use zerocopy::FromBytes;

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
