//! Reading input files, in one place: firmware images are mapped where they can be (a 256 MiB
//! image is hashed straight from the page cache, on every core) and read whole otherwise (a
//! pipe); every other input is read whole. Reads are bounded: nothing is read past its limit.
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// A firmware image's bytes.
pub struct FirmwareFile {
    bytes: Bytes,
}

enum Bytes {
    Map(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FirmwareFile {
    /// Opens `path` (mapped when it is a regular, non-empty file), refusing more than `limit`
    /// bytes before reading any.
    pub fn open(path: &Path, limit: u64) -> Result<Self, String> {
        Self::open_with(path, limit, true)
    }

    /// [`FirmwareFile::open`], mapping only when `map` (tests compare both paths).
    pub fn open_with(path: &Path, limit: u64, map: bool) -> Result<Self, String> {
        let f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let meta = f
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_file() && meta.len() > limit {
            return Err(too_large(path, meta.len(), limit));
        }
        if map && meta.is_file() && meta.len() > 0 {
            if let Some(m) = Self::map(&f, meta.len()) {
                return Ok(Self {
                    bytes: Bytes::Map(m),
                });
            }
        }
        Ok(Self {
            bytes: Bytes::Read(read_bounded(f, path, limit)?),
        })
    }

    /// `f` mapped read-only, or `None` where it cannot be.
    #[allow(unsafe_code)]
    fn map(f: &File, len: u64) -> Option<memmap2::Mmap> {
        // SAFETY: the map is read-only and private to this process; the only hazard is another
        // process truncating or rewriting the file while it is hashed, which would make the
        // digest meaningless (as it would with read(2)) and, for truncation, raise SIGBUS. The
        // firmware is the user's own input file, taken as stable for the run, as every
        // measurement tool does.
        // Not populated up front: the hashing workers fault their own pages in, in parallel
        // (populating first kept one core idle for ~45 ms of a 256 MiB digest).
        let map = unsafe { memmap2::MmapOptions::new().map(f) }.ok()?;
        (map.len() as u64 == len).then_some(map)
    }

    /// The image.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Map(m) => m,
            Bytes::Read(v) => v,
        }
    }

    /// Whether the image is mapped (rather than read).
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Map(_))
    }
}

fn too_large(path: &Path, len: u64, limit: u64) -> String {
    format!(
        "{}: {len} bytes is more than the {limit} this input may have",
        path.display()
    )
}

/// Reads `f` whole, but no more than `limit` bytes: a longer input (an endless pipe) is an
/// error once `limit + 1` bytes have arrived.
fn read_bounded(f: File, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "{}: more than the {limit} bytes this input may have",
            path.display()
        ));
    }
    Ok(out)
}

/// Reads a whole file of at most `limit` bytes, with its path in the error.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    read_by_prefix(path, |_| limit)
}

/// Reads a whole file whose limit depends on what it starts with (`limit` sees its first four
/// bytes, fewer if it is shorter): the size check comes before the read for a regular file,
/// and a pipe is read up to the limit.
pub fn read_by_prefix(path: &Path, limit: impl Fn(&[u8]) -> u64) -> Result<Vec<u8>, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut head = Vec::new();
    (&mut f)
        .take(4)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let limit = limit(&head);
    if let Ok(meta) = f.metadata() {
        if meta.is_file() && meta.len() > limit {
            return Err(too_large(path, meta.len(), limit));
        }
    }
    let rest = read_bounded(f, path, limit.saturating_sub(head.len() as u64)).map_err(|_| {
        format!(
            "{}: more than the {limit} bytes this input may have",
            path.display()
        )
    })?;
    head.extend_from_slice(&rest);
    Ok(head)
}

/// SHA-256 of a file, streamed (a kernel or an initrd of any size).
pub fn sha256(path: &Path) -> Result<[u8; 32], String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Input size limits, each a named constant with where it comes from.
pub mod limits {
    /// An IGVM file: the format's offsets and its `total_file_size` are `u32`
    /// (`IGVM_FIXED_HEADER`, igvm_defs 0.5).
    pub const IGVM: u64 = u32::MAX as u64;
    /// A VMSA: a 4096-byte page (QEMU's 1648-byte save area is shorter).
    pub const VMSA: u64 = vmsa_core::vmsa::VMSA_SIZE as u64;
    /// An attestation report as text: 1184 bytes in hex with line breaks every 16 bytes and
    /// spaces (a hex dump: about 3.5 characters a byte) fits with room to spare.
    pub const REPORT_TEXT: u64 = 16 * 1024;
    /// A firmware image: what QEMU loads ([`vmsa_core::launch::MAX_FIRMWARE_SIZE`]).
    pub const FIRMWARE: u64 = vmsa_core::launch::MAX_FIRMWARE_SIZE;

    /// The limit of an input `vmsa inspect` detects by content: an IGVM file's when it starts
    /// with the IGVM magic, else a firmware image's (a VMSA page is far smaller).
    pub fn by_content(head: &[u8]) -> u64 {
        if vmsa_core::FileKind::detect(head) == vmsa_core::FileKind::Igvm {
            IGVM
        } else {
            FIRMWARE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read path (pipes, files that cannot be mapped) gives the same bytes as the map.
    #[test]
    fn read_equals_the_map() {
        let dir = std::env::temp_dir().join(format!("vmsa-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("image.bin");
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mapped = FirmwareFile::open_with(&path, 1 << 20, true).unwrap();
        let read = FirmwareFile::open_with(&path, 1 << 20, false).unwrap();
        assert!(mapped.is_mapped() && !read.is_mapped());
        assert!(mapped.bytes() == data && read.bytes() == data);
        let Err(e) = FirmwareFile::open(&path, 4096) else {
            panic!("a 12288-byte file opened with a 4096-byte limit");
        };
        assert!(e.contains("12288 bytes"), "{e}");
        assert!(read_bounded(File::open(&path).unwrap(), &path, 100).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
