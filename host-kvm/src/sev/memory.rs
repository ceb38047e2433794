//! Guest memory for an SEV launch: the guest_memfd slots SNP needs (`KVM_CREATE_GUEST_MEMFD`,
//! `KVM_SET_USER_MEMORY_REGION2`), private ranges (`KVM_SET_MEMORY_ATTRIBUTES`), where a GPA
//! lives in the VM's mappings, and page-aligned buffers for `SNP_LAUNCH_UPDATE`.
//!
//! Sources: Linux `virt/kvm/guest_memfd.c`, `virt/kvm/kvm_main.c`
//! (`kvm_set_memory_region`, `kvm_vm_ioctl_set_mem_attributes`), uapi `include/uapi/linux/kvm.h`
//! (v6.15, as bound by kvm-bindings 0.14).
// UNSAFETY: a guest_memfd slot hands KVM a host address and an fd
// (KVM_SET_USER_MEMORY_REGION/2), and the fd KVM_CREATE_GUEST_MEMFD returns is owned with
// File::from_raw_fd; each call has its SAFETY proof.
#![expect(unsafe_code)]

use super::error::SevError;
use crate::vm::{GuestMemory, Vm};
use kvm_bindings::{kvm_create_guest_memfd, kvm_memory_attributes, kvm_userspace_memory_region2};
use kvm_ioctls::VmFd;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use vmm_sys_util::errno;

// The uapi structures, checked against the upstream layout (`include/uapi/linux/kvm.h`).
macro_rules! layout {
    ($t:ty, $size:literal $(, $f:ident @ $off:literal)*) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
        $( const _: () = assert!(core::mem::offset_of!($t, $f) == $off); )*
    };
}
layout!(kvm_memory_attributes, 32, address @ 0, size @ 8, attributes @ 16, flags @ 24);
layout!(kvm_create_guest_memfd, 64, size @ 0, flags @ 8);
layout!(kvm_userspace_memory_region2, 160, slot @ 0, flags @ 4, guest_phys_addr @ 8, memory_size @ 16, userspace_addr @ 24, guest_memfd_offset @ 32, guest_memfd @ 40);

/// The [`SevError::PrivateMemory`] of a failed `ioctl`.
fn failed(ioctl: &'static str) -> impl Fn(errno::Error) -> SevError {
    move |e| SevError::PrivateMemory {
        ioctl,
        source: e.into(),
    }
}

/// Marks `[gpa, gpa + size)` private (`KVM_SET_MEMORY_ATTRIBUTES` with
/// `KVM_MEMORY_ATTRIBUTE_PRIVATE`), as SNP_LAUNCH_UPDATE requires.
pub fn set_private(vm: &VmFd, gpa: u64, size: u64) -> Result<(), SevError> {
    vm.set_memory_attributes(kvm_memory_attributes {
        address: gpa,
        size,
        attributes: u64::from(kvm_bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE),
        flags: 0,
    })
    .map_err(failed("KVM_SET_MEMORY_ATTRIBUTES"))
}

/// Creates a guest_memfd of `size` bytes (`KVM_CREATE_GUEST_MEMFD`) for an SNP VM's private
/// memory. The returned file owns the fd.
pub fn create_guest_memfd(vm: &VmFd, size: u64) -> Result<File, SevError> {
    let fd = vm
        .create_guest_memfd(kvm_create_guest_memfd {
            size,
            flags: 0,
            reserved: [0; 6],
        })
        .map_err(failed("KVM_CREATE_GUEST_MEMFD"))?;
    // SAFETY: KVM_CREATE_GUEST_MEMFD returned a new fd that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    Ok(file)
}

/// Re-registers guest RAM (slot 0) and the firmware (slot 1, if any) as guest_memfd slots
/// (`KVM_CREATE_GUEST_MEMFD`, `KVM_SET_USER_MEMORY_REGION2` with `KVM_MEM_GUEST_MEMFD`),
/// keeping the shared mappings as their userspace addresses. The guest_memfds are returned
/// and must live as long as the VM.
pub(super) fn private_slots(vm: &Vm) -> Result<Vec<File>, SevError> {
    let mut slots = vec![(0u32, 0u64, &vm.ram)];
    if let Some(f) = &vm.flash {
        slots.push((1, vm.flash_base, f));
    }
    let mut files = Vec::new();
    for (slot, gpa, mem) in slots {
        let gmem = create_guest_memfd(&vm.fd, mem.len() as u64)?;
        private_slot(vm, slot, gpa, mem, &gmem)?;
        files.push(gmem);
    }
    Ok(files)
}

fn private_slot(
    vm: &Vm,
    slot: u32,
    gpa: u64,
    mem: &GuestMemory,
    gmem: &File,
) -> Result<(), SevError> {
    let region = kvm_userspace_memory_region2 {
        slot,
        flags: kvm_bindings::KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: gpa,
        memory_size: mem.len() as u64,
        userspace_addr: mem.host_addr(),
        guest_memfd_offset: 0,
        guest_memfd: gmem.as_raw_fd() as u32,
        ..Default::default()
    };
    let delete = kvm_bindings::kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: 0,
        userspace_addr: mem.host_addr(),
    };
    // SAFETY: memory_size 0 deletes the slot; no memory is handed to KVM.
    unsafe { vm.fd.set_user_memory_region(delete) }
        .map_err(failed("KVM_SET_USER_MEMORY_REGION"))?;
    // SAFETY: the slot is backed by `mem` (vm.ram or vm.flash), a live mapping of exactly
    // `memory_size` bytes owned by `vm`, and by `gmem`, a guest_memfd of the same size that the
    // caller keeps open while the VM lives; `vm` drops its VM fd before its memory.
    unsafe { vm.fd.set_user_memory_region2(region) }
        .map_err(failed("KVM_SET_USER_MEMORY_REGION2"))?;
    Ok(())
}

/// The guest memory mapping holding `[gpa, gpa + len)` and the offset of `gpa` in it.
pub(super) fn host_range(vm: &Vm, gpa: u64, len: u64) -> Result<(&GuestMemory, usize), SevError> {
    let fits = |base: u64, mem: &GuestMemory| {
        let off = gpa.checked_sub(base)?;
        (off.checked_add(len)? <= mem.len() as u64).then_some(off as usize)
    };
    if let Some(off) = fits(0, &vm.ram) {
        return Ok((&vm.ram, off));
    }
    if let Some(f) = &vm.flash {
        if let Some(off) = fits(vm.flash_base, f) {
            return Ok((f, off));
        }
    }
    Err(SevError::OutsideMemory {
        gpa,
        len,
        ram: vm.ram.len() as u64,
    })
}

/// Page-aligned host memory for `SNP_LAUNCH_UPDATE`'s `uaddr` (KVM wants it page aligned).
#[repr(C, align(4096))]
#[derive(
    Clone, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
)]
struct Page([u8; 4096]);

/// Whole pages, page aligned, zeroed: what one `SNP_LAUNCH_UPDATE` sends.
pub(super) struct PageBuf(Vec<Page>);

impl PageBuf {
    /// `len` bytes rounded up to whole pages, zeroed.
    pub(super) fn new(len: u64) -> Result<Self, SevError> {
        let pages = usize::try_from(len.div_ceil(4096)).map_err(|_| SevError::Unaligned {
            addr: 0,
            len: usize::MAX,
        })?;
        Ok(Self(vec![Page([0; 4096]); pages]))
    }

    /// The pages' bytes.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        use zerocopy::IntoBytes;
        self.0.as_mut_bytes()
    }

    /// Copies `src` to the start (as much as fits).
    pub(super) fn fill(&mut self, src: &[u8]) {
        let dst = self.bytes_mut();
        let n = src.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf")
            .field("pages", &self.0.len())
            .finish()
    }
}
