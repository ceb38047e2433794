//! Why an IGVM file was refused: one typed error per problem, each naming where it is.

use core::fmt;
use igvm_defs::{IgvmPlatformType, IgvmVariableHeaderType};

/// Where in the file a variable header sits: its index in the variable-header section (0 is
/// the first TLV) and the file offset of its 8-byte type/length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct At {
    /// Index of the header in the variable-header section, from 0.
    pub index: u32,
    /// File offset of the header's `IGVM_VHS_VARIABLE_HEADER` (type, length).
    pub offset: u32,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variable header #{} at file offset {:#x}",
            self.index, self.offset
        )
    }
}

/// The three sections of the variable headers, which must come in this order
/// (`igvm_defs` crate docs, "Variable Header").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Section {
    /// Types 0x1..=0x100: `SUPPORTED_PLATFORM`.
    Platform,
    /// Types 0x101..=0x200: guest policy, relocation regions, CoRIM, version string.
    Initialization,
    /// Types 0x301..=0x400: page data, parameters, VP contexts...
    Directive,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Platform => "platform",
            Section::Initialization => "initialization",
            Section::Directive => "directive",
        })
    }
}

/// What is wrong with a parameter area reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum ParameterAreaProblem {
    /// No earlier `PARAMETER_AREA` declares this index.
    Undeclared,
    /// A second `PARAMETER_AREA` declares an index already declared.
    DeclaredTwice,
    /// The area was already inserted into the guest; it cannot be used or inserted again.
    AlreadyInserted,
}

impl fmt::Display for ParameterAreaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Undeclared => "is not declared by an earlier PARAMETER_AREA",
            Self::DeclaredTwice => "is declared twice",
            Self::AlreadyInserted => "was already inserted by a PARAMETER_INSERT",
        })
    }
}

/// An IGVM file the reader refuses. Every variant says what is wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgvmError {
    /// The file is shorter than its fixed header.
    #[error("not an IGVM file: {len} bytes is shorter than the {needed}-byte fixed header")]
    TooShort {
        /// File length.
        len: usize,
        /// Bytes the fixed header needs (24 for version 1, 32 for version 2).
        needed: usize,
    },
    /// The first four bytes are not `IGVM`.
    #[error("not an IGVM file: magic {found:#010x} at offset 0, expected 0x4d564749 (\"IGVM\")")]
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// `format_version` is neither 1 nor 2.
    #[error("IGVM format version {version} is not supported (only 1 and 2)")]
    UnsupportedVersion {
        /// The version in the fixed header.
        version: u32,
    },
    /// A version 2 header names an architecture other than x64 (0) or AArch64 (1).
    #[error("unknown architecture {value:#x} in the version 2 fixed header at offset 0x18")]
    UnknownArchitecture {
        /// The raw value.
        value: u32,
    },
    /// A version 2 header has a page size other than 4096.
    #[error(
        "page size {page_size:#x} in the fixed header at offset 0x1c is not supported (only 4 KiB)"
    )]
    UnsupportedPageSize {
        /// The raw value.
        page_size: u32,
    },
    /// `total_file_size` disagrees with the length of the input.
    #[error(
        "the fixed header says the file is {header} bytes, but it is {actual} bytes (truncated or padded)"
    )]
    SizeMismatch {
        /// `total_file_size`.
        header: u32,
        /// Actual length.
        actual: usize,
    },
    /// `variable_header_offset` points into the fixed header or is not 8-byte aligned.
    #[error(
        "variable_header_offset {offset:#x} must be 8-byte aligned and at least the fixed header size {fixed_size:#x}"
    )]
    VariableHeadersMisplaced {
        /// `variable_header_offset`.
        offset: u32,
        /// Size of the fixed header.
        fixed_size: u32,
    },
    /// The variable-header section extends past the end of the file (or its end overflows).
    #[error(
        "variable headers at offset {offset:#x} with size {size:#x} extend past the end of the {file_len}-byte file"
    )]
    VariableHeadersOutOfBounds {
        /// `variable_header_offset`.
        offset: u32,
        /// `variable_header_size`.
        size: u32,
        /// File length.
        file_len: usize,
    },
    /// The CRC-32 over the fixed header (checksum zeroed) and the variable headers is wrong.
    #[error(
        "checksum mismatch: the fixed header says {stored:#010x}, the headers hash to {computed:#010x}"
    )]
    BadChecksum {
        /// The value in the fixed header.
        stored: u32,
        /// CRC-32 computed over the headers.
        computed: u32,
    },
    /// A header's type/length prefix, body or alignment padding runs past the section end.
    #[error("{at} is truncated: it runs past the end of the variable-header section")]
    HeaderTruncated {
        /// Where.
        at: At,
    },
    /// The bytes that pad a header to 8 bytes are not zero.
    #[error("{at}: the padding after the header body must be zero")]
    NonZeroPadding {
        /// Where.
        at: At,
    },
    /// A header type this reader does not know, without the "optional" bit (bit 31).
    #[error(
        "{at}: unknown required header type {typ:#x} (the loader must understand it to launch)"
    )]
    UnknownHeaderType {
        /// Where.
        at: At,
        /// The raw type.
        typ: u32,
    },
    /// A header of a known type has the wrong length.
    #[error("{at}: header type {typ:#x} must be {expected} bytes long, but its length is {actual}")]
    WrongHeaderLength {
        /// Where.
        at: At,
        /// The type.
        typ: u32,
        /// Size of the structure.
        expected: u32,
        /// The `length` field.
        actual: u32,
    },
    /// A header appears after a later section has started.
    #[error("{at}: a {section} header (type {typ:#x}) cannot follow a {after} header")]
    OutOfOrder {
        /// Where.
        at: At,
        /// The type.
        typ: u32,
        /// The section of this header.
        section: Section,
        /// The section already reached.
        after: Section,
    },
    /// The file declares no platform.
    #[error("the file has no SUPPORTED_PLATFORM header")]
    NoPlatform,
    /// A platform's mask does not have exactly one bit, or reuses another platform's bit.
    #[error(
        "{at}: platform compatibility mask {mask:#x} must be a single bit not used by an earlier platform"
    )]
    PlatformMask {
        /// Where.
        at: At,
        /// The mask.
        mask: u32,
    },
    /// Two platforms of the same type.
    #[error("{at}: a second platform of type {platform:?}")]
    DuplicatePlatform {
        /// Where.
        at: At,
        /// The platform type.
        platform: IgvmPlatformType,
    },
    /// A platform type this reader does not know.
    #[error("{at}: unknown platform type {value:#x}")]
    UnknownPlatformType {
        /// Where.
        at: At,
        /// The raw value.
        value: u8,
    },
    /// A SUPPORTED_PLATFORM with a field out of range.
    #[error("{at}: invalid SUPPORTED_PLATFORM field {field} = {value:#x}")]
    InvalidPlatform {
        /// Where.
        at: At,
        /// The field (`platform_version`, `highest_vtl`, `shared_gpa_boundary`).
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A platform or header that the file's architecture cannot have.
    #[error("{at}: header type {typ:#x} is not valid in an {arch} file")]
    WrongArchitecture {
        /// Where.
        at: At,
        /// The header type.
        typ: u32,
        /// The file's architecture.
        arch: &'static str,
    },
    /// A compatibility mask that is zero or names a platform not declared before it.
    #[error(
        "{at}: compatibility mask {mask:#x} is zero or names a platform not declared earlier (declared: {declared:#x})"
    )]
    UndeclaredMask {
        /// Where.
        at: At,
        /// The mask.
        mask: u32,
        /// The masks declared by SUPPORTED_PLATFORM headers.
        declared: u32,
    },
    /// A reserved field is not zero.
    #[error("{at}: reserved field {field} must be zero")]
    ReservedNotZero {
        /// Where.
        at: At,
        /// The field.
        field: &'static str,
    },
    /// A flags field has bits this reader does not know.
    #[error("{at}: field {field} has unknown bits {value:#x}")]
    UnknownFlags {
        /// Where.
        at: At,
        /// The field.
        field: &'static str,
        /// The unknown bits.
        value: u64,
    },
    /// An address or size is not aligned as required.
    #[error("{at}: {field} = {value:#x} must be a multiple of {alignment:#x}")]
    Unaligned {
        /// Where.
        at: At,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The required alignment.
        alignment: u64,
    },
    /// A field whose value is out of range (VTL, sizes, VP index...).
    #[error("{at}: invalid {field} = {value:#x}")]
    InvalidField {
        /// Where.
        at: At,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A file-data reference that is not inside the file-data section.
    #[error(
        "{at}: file data [{file_offset:#x}, +{size:#x}) is not inside the file-data section [{data_start:#x}, {file_len:#x})"
    )]
    FileDataOutOfRange {
        /// Where.
        at: At,
        /// The `file_offset` field.
        file_offset: u32,
        /// Bytes referenced.
        size: u64,
        /// Where the file data starts (end of the variable headers).
        data_start: u32,
        /// File length.
        file_len: usize,
    },
    /// A required file-data reference is zero (VP contexts must carry data).
    #[error("{at}: file_offset is 0, but this header needs file data")]
    MissingFileData {
        /// Where.
        at: At,
    },
    /// A page data type this reader does not know.
    #[error("{at}: unknown page data type {value:#x}")]
    UnknownPageDataType {
        /// Where.
        at: At,
        /// The raw value.
        value: u16,
    },
    /// A misuse of a parameter area index.
    #[error("{at}: parameter area {area} {problem}")]
    ParameterArea {
        /// Where.
        at: At,
        /// The parameter area index.
        area: u32,
        /// What is wrong.
        problem: ParameterAreaProblem,
    },
    /// A parameter that does not fit in its parameter area.
    #[error(
        "{at}: a {size}-byte parameter at byte {byte_offset:#x} does not fit parameter area {area} of {area_size:#x} bytes"
    )]
    ParameterOutsideArea {
        /// Where.
        at: At,
        /// The parameter area index.
        area: u32,
        /// `byte_offset`.
        byte_offset: u32,
        /// Bytes the loader writes there (1 when the size is not fixed).
        size: u32,
        /// Size of the area.
        area_size: u64,
    },
    /// Two relocation or page-table regions of one platform overlap.
    #[error(
        "{at}: region [{gpa:#x}, +{size:#x}) overlaps an earlier relocation or page-table region of the same platform"
    )]
    RegionsOverlap {
        /// Where.
        at: At,
        /// Region start.
        gpa: u64,
        /// Region size.
        size: u64,
    },
    /// A second page-table relocation region for one platform.
    #[error("{at}: a second PAGE_TABLE_RELOCATION_REGION for compatibility mask {mask:#x}")]
    DuplicatePageTableRegion {
        /// Where.
        at: At,
        /// The overlapping mask bits.
        mask: u32,
    },
    /// A parameter insert into the page-table relocation region.
    #[error("{at}: PARAMETER_INSERT at {gpa:#x} lies inside a page-table relocation region")]
    InsertInPageTableRegion {
        /// Where.
        at: At,
        /// The insert's GPA.
        gpa: u64,
    },
    /// A relocation or page-table region names a VP that has no VP context.
    #[error("{at}: no VP_CONTEXT for VP {vp_index} (VTL {vtl}) that this region refers to")]
    NoMatchingVpContext {
        /// Where (the region header).
        at: At,
        /// VP index.
        vp_index: u16,
        /// VTL.
        vtl: u8,
    },
    /// A VP context whose mask is not exactly one declared platform.
    #[error(
        "{at}: VP_CONTEXT compatibility mask {mask:#x} must name exactly one declared platform"
    )]
    VpContextMask {
        /// Where.
        at: At,
        /// The mask.
        mask: u32,
    },
    /// A VP context whose bytes past the structure are not zero (native, SEV, CCA).
    #[error("{at}: VP context bytes after the {used}-byte structure must be zero")]
    VpContextTrailingBytes {
        /// Where.
        at: At,
        /// Size of the context structure.
        used: u32,
    },
    /// More than one header of a kind that may appear once (per platform).
    #[error("{at}: a second {what} for compatibility mask {mask:#x}")]
    Duplicate {
        /// Where.
        at: At,
        /// What.
        what: &'static str,
        /// The overlapping mask bits (0 for file-wide headers).
        mask: u32,
    },
    /// A CoRIM signature without a CoRIM document before it.
    #[error("{at}: CORIM_SIGNATURE for mask {mask:#x} has no CORIM_DOCUMENT before it")]
    CorimSignatureWithoutDocument {
        /// Where.
        at: At,
        /// The mask bits without document.
        mask: u32,
    },
    /// A version string that is not UTF-8.
    #[error("{at}: VERSION_STRING is not UTF-8")]
    VersionStringNotUtf8 {
        /// Where.
        at: At,
    },
    /// A fixed-capacity table of this reader is full; the file has more of these than it supports.
    #[error("{at}: more than {capacity} {what}; this reader's fixed capacity is exceeded")]
    CapacityExceeded {
        /// Where.
        at: At,
        /// What overflowed.
        what: &'static str,
        /// The capacity.
        capacity: usize,
    },
    /// The caller asked for a platform the file does not declare.
    #[error("the file does not declare platform {platform:?}")]
    PlatformNotInFile {
        /// The requested platform.
        platform: IgvmPlatformType,
    },
    /// No declared platform is SNP, SEV-ES, SEV or native (what QEMU can launch).
    #[error("the file declares no platform QEMU could launch (SNP, SEV-ES, SEV or native)")]
    NoLaunchablePlatform,
}

impl IgvmError {
    /// The header the error is about, if it is about one.
    pub fn at(&self) -> Option<At> {
        use IgvmError::*;
        match *self {
            HeaderTruncated { at }
            | NonZeroPadding { at }
            | UnknownHeaderType { at, .. }
            | WrongHeaderLength { at, .. }
            | OutOfOrder { at, .. }
            | PlatformMask { at, .. }
            | DuplicatePlatform { at, .. }
            | UnknownPlatformType { at, .. }
            | InvalidPlatform { at, .. }
            | WrongArchitecture { at, .. }
            | UndeclaredMask { at, .. }
            | ReservedNotZero { at, .. }
            | UnknownFlags { at, .. }
            | Unaligned { at, .. }
            | InvalidField { at, .. }
            | FileDataOutOfRange { at, .. }
            | MissingFileData { at }
            | UnknownPageDataType { at, .. }
            | ParameterArea { at, .. }
            | ParameterOutsideArea { at, .. }
            | RegionsOverlap { at, .. }
            | DuplicatePageTableRegion { at, .. }
            | InsertInPageTableRegion { at, .. }
            | NoMatchingVpContext { at, .. }
            | VpContextMask { at, .. }
            | VpContextTrailingBytes { at, .. }
            | Duplicate { at, .. }
            | CorimSignatureWithoutDocument { at, .. }
            | VersionStringNotUtf8 { at }
            | CapacityExceeded { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Name of a header type for messages and listings (`"PAGE_DATA"`), or `None` when unknown.
pub fn header_type_name(typ: IgvmVariableHeaderType) -> Option<&'static str> {
    use IgvmVariableHeaderType as T;
    Some(match typ.0 & !igvm_defs::IGVM_VHT_OPTIONAL_BIT {
        x if x == T::IGVM_VHT_SUPPORTED_PLATFORM.0 => "SUPPORTED_PLATFORM",
        x if x == T::IGVM_VHT_GUEST_POLICY.0 => "GUEST_POLICY",
        x if x == T::IGVM_VHT_RELOCATABLE_REGION.0 => "RELOCATABLE_REGION",
        x if x == T::IGVM_VHT_PAGE_TABLE_RELOCATION_REGION.0 => "PAGE_TABLE_RELOCATION_REGION",
        x if x == T::IGVM_VHT_CORIM_DOCUMENT.0 => "CORIM_DOCUMENT",
        x if x == T::IGVM_VHT_CORIM_SIGNATURE.0 => "CORIM_SIGNATURE",
        x if x == T::IGVM_VHT_CCA_POLICY.0 => "CCA_POLICY",
        x if x == T::IGVM_VHT_VERSION_STRING.0 => "VERSION_STRING",
        x if x == T::IGVM_VHT_PARAMETER_AREA.0 => "PARAMETER_AREA",
        x if x == T::IGVM_VHT_PAGE_DATA.0 => "PAGE_DATA",
        x if x == T::IGVM_VHT_PARAMETER_INSERT.0 => "PARAMETER_INSERT",
        x if x == T::IGVM_VHT_VP_CONTEXT.0 => "VP_CONTEXT",
        x if x == T::IGVM_VHT_REQUIRED_MEMORY.0 => "REQUIRED_MEMORY",
        x if x == T::RESERVED_DO_NOT_USE.0 => "RESERVED_DO_NOT_USE",
        x if x == T::IGVM_VHT_VP_COUNT_PARAMETER.0 => "VP_COUNT_PARAMETER",
        x if x == T::IGVM_VHT_SRAT.0 => "SRAT",
        x if x == T::IGVM_VHT_MADT.0 => "MADT",
        x if x == T::IGVM_VHT_MMIO_RANGES.0 => "MMIO_RANGES",
        x if x == T::IGVM_VHT_SNP_ID_BLOCK.0 => "SNP_ID_BLOCK",
        x if x == T::IGVM_VHT_MEMORY_MAP.0 => "MEMORY_MAP",
        x if x == T::IGVM_VHT_ERROR_RANGE.0 => "ERROR_RANGE",
        x if x == T::IGVM_VHT_COMMAND_LINE.0 => "COMMAND_LINE",
        x if x == T::IGVM_VHT_SLIT.0 => "SLIT",
        x if x == T::IGVM_VHT_PPTT.0 => "PPTT",
        x if x == T::IGVM_VHT_VBS_MEASUREMENT.0 => "VBS_MEASUREMENT",
        x if x == T::IGVM_VHT_DEVICE_TREE.0 => "DEVICE_TREE",
        x if x == T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER.0 => "ENVIRONMENT_INFO_PARAMETER",
        _ => return None,
    })
}
