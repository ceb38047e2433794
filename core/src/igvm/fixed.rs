//! The fixed header at the start of every IGVM file, and its CRC-32.
//!
//! Layouts: `igvm_defs` 0.5 `IGVM_FIXED_HEADER` (24 bytes, format version 1) and
//! `IGVM_FIXED_HEADER_V2` (32 bytes, version 2 adds `architecture` and `page_size`).

use super::error::IgvmError;
use igvm_defs::{
    IGVM_FIXED_HEADER, IGVM_FIXED_HEADER_V2, IGVM_FORMAT_VERSION_1, IGVM_FORMAT_VERSION_2,
    IGVM_MAGIC_VALUE, IgvmArchitecture, PAGE_SIZE_4K,
};
use zerocopy::FromBytes;

/// Byte offset of `checksum` in both fixed-header versions.
const CHECKSUM_OFFSET: usize = 20;

/// The instruction-set architecture of an IGVM file (version 1 files are always x64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Architecture {
    /// x86-64.
    X64,
    /// AArch64.
    AArch64,
}

impl Architecture {
    /// `"x64"` or `"aarch64"`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::X64 => "x64",
            Architecture::AArch64 => "aarch64",
        }
    }
}

/// The decoded fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FixedHeader {
    /// `format_version`: 1 or 2.
    pub format_version: u32,
    /// x64 for version 1, from the header for version 2.
    pub architecture: Architecture,
    /// Always 4096 (other page sizes are refused).
    pub page_size: u32,
    /// Offset of the variable headers.
    pub variable_header_offset: u32,
    /// Size of the variable headers in bytes.
    pub variable_header_size: u32,
    /// `total_file_size`, equal to the input length.
    pub total_file_size: u32,
    /// The stored (and verified) CRC-32.
    pub checksum: u32,
}

impl FixedHeader {
    /// Size of the fixed header of this version (24 or 32).
    pub fn size(&self) -> u32 {
        if self.format_version == IGVM_FORMAT_VERSION_1 {
            size_of::<IGVM_FIXED_HEADER>() as u32
        } else {
            size_of::<IGVM_FIXED_HEADER_V2>() as u32
        }
    }

    /// File offset where the file-data section starts (the end of the variable headers).
    pub fn data_start(&self) -> u32 {
        // Checked in `parse`: offset + size <= file length <= u32::MAX.
        self.variable_header_offset
            .saturating_add(self.variable_header_size)
    }

    /// Reads and checks the fixed header of `file`: magic, version, architecture, page size,
    /// total size, placement of the variable headers and the checksum.
    ///
    /// The checksum is the standard CRC-32 (IEEE 802.3, as `crc32fast` and zlib compute it)
    /// over the fixed header with its checksum field zeroed, followed by the
    /// `variable_header_size` bytes at `variable_header_offset`; file data is not covered
    /// (`igvm` 0.5 `IgvmFile::new_from_binary` and `serialize`).
    pub fn parse(file: &[u8]) -> Result<Self, IgvmError> {
        let v1_size = size_of::<IGVM_FIXED_HEADER>();
        let (v1, _) =
            IGVM_FIXED_HEADER::read_from_prefix(file).map_err(|_| IgvmError::TooShort {
                len: file.len(),
                needed: v1_size,
            })?;
        if v1.magic != IGVM_MAGIC_VALUE {
            return Err(IgvmError::BadMagic { found: v1.magic });
        }
        let (architecture, page_size, fixed_size) = match v1.format_version {
            IGVM_FORMAT_VERSION_1 => (Architecture::X64, PAGE_SIZE_4K as u32, v1_size),
            IGVM_FORMAT_VERSION_2 => {
                let needed = size_of::<IGVM_FIXED_HEADER_V2>();
                let (v2, _) = IGVM_FIXED_HEADER_V2::read_from_prefix(file).map_err(|_| {
                    IgvmError::TooShort {
                        len: file.len(),
                        needed,
                    }
                })?;
                let arch = match v2.architecture {
                    IgvmArchitecture::X64 => Architecture::X64,
                    IgvmArchitecture::AARCH64 => Architecture::AArch64,
                    other => return Err(IgvmError::UnknownArchitecture { value: other.0 }),
                };
                if u64::from(v2.page_size) != PAGE_SIZE_4K {
                    return Err(IgvmError::UnsupportedPageSize {
                        page_size: v2.page_size,
                    });
                }
                (arch, v2.page_size, needed)
            }
            version => return Err(IgvmError::UnsupportedVersion { version }),
        };
        if usize::try_from(v1.total_file_size).ok() != Some(file.len()) {
            return Err(IgvmError::SizeMismatch {
                header: v1.total_file_size,
                actual: file.len(),
            });
        }
        let offset = v1.variable_header_offset;
        if (offset as usize) < fixed_size || offset % 8 != 0 {
            return Err(IgvmError::VariableHeadersMisplaced {
                offset,
                fixed_size: fixed_size as u32,
            });
        }
        let out_of_bounds = IgvmError::VariableHeadersOutOfBounds {
            offset,
            size: v1.variable_header_size,
            file_len: file.len(),
        };
        let end = offset
            .checked_add(v1.variable_header_size)
            .ok_or(out_of_bounds)?;
        let variable = file
            .get(offset as usize..end as usize)
            .ok_or(out_of_bounds)?;
        let fixed = file.get(..fixed_size).ok_or(IgvmError::TooShort {
            len: file.len(),
            needed: fixed_size,
        })?;
        let computed = checksum(fixed, variable);
        if computed != v1.checksum {
            return Err(IgvmError::BadChecksum {
                stored: v1.checksum,
                computed,
            });
        }
        Ok(FixedHeader {
            format_version: v1.format_version,
            architecture,
            page_size,
            variable_header_offset: offset,
            variable_header_size: v1.variable_header_size,
            total_file_size: v1.total_file_size,
            checksum: v1.checksum,
        })
    }
}

/// CRC-32 of `fixed` with its checksum field (bytes 20..24) taken as zero, then `variable`.
pub fn checksum(fixed: &[u8], variable: &[u8]) -> u32 {
    let mut hasher = Crc32::new();
    let (before, rest) = fixed.split_at(CHECKSUM_OFFSET.min(fixed.len()));
    hasher.update(before);
    let zeroed = rest.len().min(4);
    hasher.update([0u8; 4].get(..zeroed).unwrap_or(&[]));
    hasher.update(rest.get(zeroed..).unwrap_or(&[]));
    hasher.update(variable);
    hasher.finalize()
}

/// The standard CRC-32 (ISO-HDLC, zlib's): crc32fast on hosts (SIMD), the `crc` crate with one
/// 1 KiB table in the browser build (see `Cargo.toml`). Both are checked against the same known
/// answers (`checksum_known_answer`).
#[cfg(not(target_arch = "wasm32"))]
type Crc32 = crc32fast::Hasher;

#[cfg(target_arch = "wasm32")]
struct Crc32(crc::Digest<'static, u32, crc::Table<1>>);

#[cfg(target_arch = "wasm32")]
static CRC32: crc::Crc<u32, crc::Table<1>> =
    crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(target_arch = "wasm32")]
impl Crc32 {
    fn new() -> Self {
        Self(CRC32.digest())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_known_answer() {
        // The CRC-32/ISO-HDLC check value (Greg Cook's catalogue): "123456789" → 0xcbf43926.
        assert_eq!(checksum(b"123456789", b""), 0xcbf4_3926);
        // The checksum field (bytes 20..24) counts as zeros.
        let mut fixed = [0x5au8; 32];
        let plain = checksum(&fixed, b"rest");
        fixed[20..24].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(checksum(&fixed, b"rest"), plain);
    }
}
