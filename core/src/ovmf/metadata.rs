//! The `ASEV` SEV metadata: `offset` bytes before the end of the image, a 16-byte header
//! `{ "ASEV", u32 len, u32 version = 1, u32 count }` and `count` descriptors
//! `{ u32 gpa, u32 size, u32 type }` ([`Section`]), which tell an SNP launch what to put where
//! (QEMU `include/hw/i386/pc.h` `OvmfSevMetadata`, edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`).

use super::error::OvmfError;
use super::section::{MAX_SECTIONS, Section, SectionType};
use core::fmt;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the `ASEV` header.
pub const METADATA_HEADER_SIZE: usize = 16;
/// Size of one `ASEV` section descriptor.
pub const SECTION_DESC_SIZE: usize = 12;
/// The `ASEV` signature.
pub const METADATA_SIGNATURE: [u8; 4] = *b"ASEV";
/// The only `ASEV` version there is.
pub const METADATA_VERSION: u32 = 1;

/// `OvmfSevMetadata` without its descriptors (QEMU `include/hw/i386/pc.h`).
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(super) struct MetadataHeader {
    pub(super) signature: [u8; 4],
    pub(super) len: U32,
    pub(super) version: U32,
    pub(super) count: U32,
}

/// `OvmfSevMetadataDesc` as it sits in the image.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(super) struct SectionDesc {
    pub(super) gpa: U32,
    pub(super) size: U32,
    pub(super) section_type: U32,
}

const _: () = assert!(core::mem::size_of::<MetadataHeader>() == METADATA_HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<SectionDesc>() == SECTION_DESC_SIZE);

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

    pub(super) fn parse(image: &'a [u8], offset_from_end: u32) -> Result<Self, OvmfError> {
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
