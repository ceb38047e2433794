//! Why an OVMF image cannot be read.

use super::section::{MAX_SECTIONS, SectionType};
use crate::guid::Guid;

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
