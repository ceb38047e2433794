//! The host memory behind a guest memory slot: an anonymous mapping, copied into and out of
//! (the guest may write it concurrently, so no reference into it is ever handed out).
// UNSAFETY: the mapping is made and unmapped with mmap/munmap and copied through raw pointers;
// each call has its SAFETY proof.
#![expect(unsafe_code)]

use super::VmError;
use core::fmt;
use std::ptr::NonNull;
use vmm_sys_util::errno;

/// Anonymous, private, zeroed host memory backing a guest memory slot.
pub struct GuestMemory {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is owned by this value alone and only reached through `&self`/`&mut self`
// (the guest writes to it concurrently, which is why only copies in and out are offered).
unsafe impl Send for GuestMemory {}
// SAFETY: as above; shared access only copies bytes.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `size` bytes (a multiple of 4 KiB) of zeroed memory.
    pub fn new(size: usize) -> Result<Self, VmError> {
        // SAFETY: an anonymous private mapping at an address the kernel picks touches no
        // existing memory; the result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(VmError::Mmap {
                size,
                source: errno::Error::last(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(VmError::Mmap {
            size,
            source: errno::Error::new(libc::ENOMEM),
        })?;
        Ok(Self { ptr, size })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the mapping is empty (never, once made).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The host address, for `KVM_SET_USER_MEMORY_REGION`.
    pub fn host_addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Copies `data` to `offset`. `None` when it does not fit.
    pub fn write(&self, offset: usize, data: &[u8]) -> Option<()> {
        let end = offset.checked_add(data.len())?;
        if end > self.size {
            return None;
        }
        // SAFETY: `offset < end <= size`, so the result stays inside the one mapping.
        let dst = unsafe { self.ptr.as_ptr().add(offset) };
        // SAFETY: `dst..dst + len` is inside the mapping (checked above); `copy` tolerates the
        // guest writing the same bytes concurrently (plain memory, no references are formed).
        unsafe { std::ptr::copy(data.as_ptr(), dst, data.len()) };
        Some(())
    }

    /// Copies `buf.len()` bytes from `offset`. `None` when out of range.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        let end = offset.checked_add(buf.len())?;
        if end > self.size {
            return None;
        }
        // SAFETY: `offset < end <= size`, so the result stays inside the one mapping.
        let src = unsafe { self.ptr.as_ptr().add(offset) };
        // SAFETY: `src..src + len` is inside the mapping (checked above); bytes are copied out
        // without forming a reference to guest-writable memory.
        unsafe { std::ptr::copy(src, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no reference into it outlives `self`,
        // and the VM whose slot pointed here is dropped first (field order in `Vm`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestMemory({:#x} bytes)", self.size)
    }
}
