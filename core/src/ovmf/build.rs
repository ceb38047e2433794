//! Writing an OVMF footer table and `ASEV` metadata into a caller's buffer (tests, fuzzing and
//! the synthetic firmware of `vmsa-kvm`).

use super::metadata::{
    METADATA_HEADER_SIZE, METADATA_SIGNATURE, METADATA_VERSION, MetadataHeader, SECTION_DESC_SIZE,
    SectionDesc,
};
use super::section::{MAX_SECTIONS, Section};
use super::table::{ENTRY_HEADER_SIZE, EntryHeader, FOOTER_GUID, MIN_IMAGE_SIZE, TableEntry};
use crate::guid::Guid;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32};

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
    use crate::ovmf::{OvmfImage, SectionType};

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
