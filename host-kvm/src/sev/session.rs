//! The launch as an explicit state machine ([`LaunchSession`]): one method per
//! `KVM_MEMORY_ENCRYPT_OP` command, each refused without an ioctl when the firmware's order
//! does not allow it; and what a session needs first — `/dev/sev` ([`open_sev`]), a VM of the
//! mode's type ([`create_vm`]), what this KVM supports ([`supported_vmsa_features`],
//! [`snp_policy_extra`]).
//!
//! Sources: Linux `arch/x86/kvm/svm/sev.c` (`sev_mem_enc_ioctl`, `__sev_guest_init`,
//! `sev_launch_start`, `sev_launch_update_data`, `sev_launch_update_vmsa`, `sev_launch_measure`,
//! `snp_launch_start`, `snp_launch_update`, `snp_launch_finish`), uapi
//! `arch/x86/include/uapi/asm/kvm.h` and `include/uapi/linux/psp-sev.h` (v6.15, as bound by
//! kvm-bindings 0.14). The structures' sizes and offsets are asserted below against the
//! upstream uapi.

use super::error::{FwError, KvmErrno, SevError};
use super::{Command, LaunchState};
use crate::vm::GuestMemory;
use kvm_bindings::{
    kvm_device_attr, kvm_sev_cmd, kvm_sev_init, kvm_sev_launch_measure, kvm_sev_launch_start,
    kvm_sev_launch_update_data, kvm_sev_snp_launch_finish, kvm_sev_snp_launch_start,
    kvm_sev_snp_launch_update,
};
use kvm_ioctls::{Kvm, VmFd};
use std::fs::File;
use std::os::fd::AsRawFd;
use vmsa_core::SevMode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::id_block::{IdAuthInfo, IdBlock};
use vmsa_core::kvm::SnpPolicy;
use zerocopy::IntoBytes;

// UNSAFETY: the system-fd KVM_GET_DEVICE_ATTR is not in kvm-ioctls; it is issued with
// vmm-sys-util's ioctl helpers, with a SAFETY proof.
#[expect(unsafe_code)]
mod sys {
    use super::kvm_device_attr;
    use vmm_sys_util::ioctl_iow_nr;
    /// `KVMIO`.
    const KVMIO: u32 = 0xae;
    ioctl_iow_nr!(KVM_GET_DEVICE_ATTR, KVMIO, 0xe2, kvm_device_attr);

    /// `KVM_GET_DEVICE_ATTR` on the `/dev/kvm` fd: reads one u64 attribute.
    pub fn get_system_attr(
        kvm: &kvm_ioctls::Kvm,
        group: u32,
        attr: u64,
    ) -> Result<u64, vmm_sys_util::errno::Error> {
        let mut value = 0u64;
        let a = kvm_device_attr {
            flags: 0,
            group,
            attr,
            addr: &mut value as *mut u64 as u64,
        };
        // SAFETY: KVM_GET_DEVICE_ATTR reads `struct kvm_device_attr` (size in the ioctl number)
        // from `a`, and writes one u64 (every x86 system attribute is a u64,
        // `kvm_x86_dev_get_attr`) to `a.addr`, which points at `value`, alive for the call.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(kvm, KVM_GET_DEVICE_ATTR(), &a) };
        if ret < 0 {
            Err(vmm_sys_util::errno::Error::last())
        } else {
            Ok(value)
        }
    }
}

// The uapi structures, checked against the upstream layout (`arch/x86/include/uapi/asm/kvm.h`).
macro_rules! layout {
    ($t:ty, $size:literal $(, $f:ident @ $off:literal)*) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
        $( const _: () = assert!(core::mem::offset_of!($t, $f) == $off); )*
    };
}
layout!(kvm_sev_cmd, 24, id @ 0, data @ 8, error @ 16, sev_fd @ 20);
layout!(kvm_sev_init, 48, vmsa_features @ 0, flags @ 8, ghcb_version @ 12, pad1 @ 14, pad2 @ 16);
layout!(kvm_sev_launch_start, 40, handle @ 0, policy @ 4, dh_uaddr @ 8, dh_len @ 16, session_uaddr @ 24, session_len @ 32);
layout!(kvm_sev_launch_update_data, 16, uaddr @ 0, len @ 8);
layout!(kvm_sev_launch_measure, 16, uaddr @ 0, len @ 8);
layout!(kvm_sev_snp_launch_start, 64, policy @ 0, gosvw @ 8, flags @ 24, pad0 @ 26, pad1 @ 32);
layout!(kvm_sev_snp_launch_update, 64, gfn_start @ 0, uaddr @ 8, len @ 16, type_ @ 24, pad0 @ 25, flags @ 26, pad1 @ 28, pad2 @ 32);
layout!(kvm_sev_snp_launch_finish, 88, id_block_uaddr @ 0, id_auth_uaddr @ 8, id_block_en @ 16, auth_key_en @ 17, vcek_disabled @ 18, host_data @ 19, pad0 @ 51, flags @ 54, pad1 @ 56);
layout!(kvm_device_attr, 24, flags @ 0, group @ 4, attr @ 8, addr @ 16);

/// The policy QEMU uses by default for `sev-snp-guest` (SMT allowed, RSVD_MBO).
pub const SNP_POLICY_DEFAULT: u64 = SnpPolicy::QEMU_DEFAULT.0;

/// `KVM_X86_SNP_POLICY_BITS` (uapi `kvm.h`, Linux 6.17; not in kvm-bindings 0.14): the SNP
/// policy bits KVM and the firmware support.
pub const KVM_X86_SNP_POLICY_BITS: u64 = 1;

/// The KVM VM type of a mode: `KVM_X86_SEV_VM` 2, `KVM_X86_SEV_ES_VM` 3, `KVM_X86_SNP_VM` 4.
pub const fn vm_type(mode: SevMode) -> u64 {
    (match mode {
        SevMode::Sev => kvm_bindings::KVM_X86_SEV_VM,
        SevMode::SevEs => kvm_bindings::KVM_X86_SEV_ES_VM,
        SevMode::Snp => kvm_bindings::KVM_X86_SNP_VM,
    }) as u64
}

/// The VMSA features this KVM supports (`KVM_X86_SEV_VMSA_FEATURES` on `/dev/kvm`; kvm-ioctls
/// has no system-fd device attribute call, so it is issued here).
pub fn supported_vmsa_features(kvm: &Kvm) -> Result<SevFeatures, SevError> {
    sys::get_system_attr(
        kvm,
        kvm_bindings::KVM_X86_GRP_SEV,
        u64::from(kvm_bindings::KVM_X86_SEV_VMSA_FEATURES),
    )
    .map(SevFeatures::from_bits_retain)
    .map_err(|e| SevError::VmsaFeatures(e.into()))
}

/// The SNP policy bits 21–25 this KVM allows (`KVM_X86_SNP_POLICY_BITS` on `/dev/kvm`), 0 on
/// kernels that do not have the attribute (they allow none of them).
pub fn snp_policy_extra(kvm: &Kvm) -> u64 {
    sys::get_system_attr(kvm, kvm_bindings::KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS)
        .map_or(0, |bits| bits & SnpPolicy::FIRMWARE_DEPENDENT)
}

/// Opens the SEV firmware device.
pub fn open_sev() -> Result<File, SevError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/sev")
        .map_err(SevError::NoSevDevice)
}

/// Creates a VM of the mode's type ([`vm_type`]).
pub fn create_vm(kvm: &Kvm, mode: SevMode) -> Result<VmFd, SevError> {
    kvm.create_vm_with_type(vm_type(mode))
        .map_err(|e| SevError::CreateVm {
            vm_type: vm_type(mode),
            mode,
            source: e.into(),
        })
}

/// The SEV-ES launch measurement blob (`LAUNCH_MEASURE`): HMAC-SHA-256 and the nonce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Measurement {
    /// The 32-byte measurement.
    pub digest: [u8; 32],
    /// The 16-byte nonce.
    pub mnonce: [u8; 16],
}

/// A launch in progress on one VM: the SEV firmware device, the mode, where the launch is, and
/// every command sent.
#[derive(Debug)]
pub struct LaunchSession {
    sev: File,
    mode: SevMode,
    state: LaunchState,
    /// SNP policy bits 21–25 KVM reported allowed ([`snp_policy_extra`]).
    snp_policy_extra: u64,
    /// Commands sent, in order (for the report).
    pub log: Vec<&'static str>,
}

impl LaunchSession {
    /// Starts a launch on a VM created with [`create_vm`] (no vCPUs yet), with the SEV firmware
    /// device `sev` (`/dev/sev`, see [`open_sev`]).
    pub fn new(sev: File, mode: SevMode) -> Self {
        Self {
            sev,
            mode,
            state: LaunchState::New,
            snp_policy_extra: 0,
            log: Vec::new(),
        }
    }

    /// The SNP policy bits 21–25 KVM allows beyond the base set ([`snp_policy_extra`]).
    pub fn with_snp_policy_extra(mut self, extra: u64) -> Self {
        self.snp_policy_extra = extra;
        self
    }

    /// SEV-ES or SNP.
    pub fn mode(&self) -> SevMode {
        self.mode
    }

    /// Where the launch is.
    pub fn state(&self) -> LaunchState {
        self.state
    }

    fn expect(&self, command: Command, states: &[LaunchState]) -> Result<(), SevError> {
        if states.contains(&self.state) {
            Ok(())
        } else {
            Err(SevError::WrongState {
                command,
                state: self.state,
            })
        }
    }

    /// Sends one `KVM_MEMORY_ENCRYPT_OP`; on failure returns (errno, firmware status) and moves
    /// to `Failed`.
    fn op<T>(
        &mut self,
        vm: &VmFd,
        command: Command,
        data: Option<&mut T>,
    ) -> Result<(), (KvmErrno, FwError)> {
        let mut c = kvm_sev_cmd {
            id: command.id(),
            data: data.map_or(0, |d| d as *mut T as u64),
            sev_fd: self.sev.as_raw_fd() as u32,
            ..Default::default()
        };
        self.log.push(command.name());
        // kvm-ioctls' safe wrapper: the kernel reads `struct kvm_sev_cmd`, then the command's
        // structure at `data` (each caller passes the structure its id takes, alive for the
        // call), and writes back `error` and the command's output fields.
        match vm.encrypt_op_sev(&mut c) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.state = LaunchState::Failed;
                Err((e.into(), FwError(c.error)))
            }
        }
    }

    /// [`LaunchSession::op`], with a failure as [`SevError::MemoryEncryptOp`].
    fn send<T>(
        &mut self,
        vm: &VmFd,
        command: Command,
        data: Option<&mut T>,
    ) -> Result<(), SevError> {
        self.op(vm, command, data)
            .map_err(|(source, firmware_error)| SevError::MemoryEncryptOp {
                command,
                firmware_error,
                source,
            })
    }

    /// `KVM_SEV_INIT2` with `vmsa_features` (from the core preflight,
    /// [`vmsa_core::kvm::InitParams`]); ghcb_version 0 lets KVM pick 2.
    pub fn init2(&mut self, vm: &VmFd, vmsa_features: SevFeatures) -> Result<(), SevError> {
        self.expect(Command::Init2, &[LaunchState::New])?;
        let mut init = kvm_sev_init {
            vmsa_features: vmsa_features.bits(),
            ..Default::default()
        };
        self.send(vm, Command::Init2, Some(&mut init))?;
        self.state = LaunchState::Initialized;
        Ok(())
    }

    /// SEV-ES `KVM_SEV_LAUNCH_START` with `policy` (no DH certificate or session: a plain
    /// launch). Returns the guest handle.
    pub fn launch_start(&mut self, vm: &VmFd, policy: u32) -> Result<u32, SevError> {
        self.expect(Command::LaunchStart, &[LaunchState::Initialized])?;
        let mut s = kvm_sev_launch_start {
            policy,
            ..Default::default()
        };
        self.send(vm, Command::LaunchStart, Some(&mut s))?;
        self.state = LaunchState::Started;
        Ok(s.handle)
    }

    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_DATA`: encrypts and measures `len` bytes at `offset` of
    /// `mem` in place (guest memory the VM maps); 16-byte aligned address and length.
    pub fn launch_update_data(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemory,
        offset: usize,
        len: usize,
    ) -> Result<(), SevError> {
        let command = Command::LaunchUpdateData { len };
        self.expect(command, &[LaunchState::Started])?;
        let addr = mem.host_addr().wrapping_add(offset as u64);
        let inside = offset.checked_add(len).is_some_and(|end| end <= mem.len());
        if !inside || len == 0 || len % 16 != 0 || addr % 16 != 0 || u32::try_from(len).is_err() {
            return Err(SevError::Unaligned { addr, len });
        }
        let mut u = kvm_sev_launch_update_data {
            uaddr: addr,
            len: len as u32,
            pad0: 0,
        };
        self.send(vm, command, Some(&mut u))
    }

    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_VMSA`: KVM syncs and encrypts every vCPU's VMSA in index
    /// order (`sev_es_sync_vmsa`), so the vCPUs must hold their launch state already.
    pub fn launch_update_vmsa(&mut self, vm: &VmFd) -> Result<(), SevError> {
        self.expect(Command::LaunchUpdateVmsa, &[LaunchState::Started])?;
        self.send::<()>(vm, Command::LaunchUpdateVmsa, None)?;
        self.state = LaunchState::VmsasEncrypted;
        Ok(())
    }

    /// SEV-ES `KVM_SEV_LAUNCH_MEASURE`: the 48-byte blob (measurement and nonce).
    pub fn launch_measure(&mut self, vm: &VmFd) -> Result<Measurement, SevError> {
        self.expect(Command::LaunchMeasure, &[LaunchState::VmsasEncrypted])?;
        let mut blob = [0u8; 48];
        let mut m = kvm_sev_launch_measure {
            uaddr: blob.as_mut_ptr() as u64,
            len: 48,
            pad0: 0,
        };
        self.send(vm, Command::LaunchMeasure, Some(&mut m))?;
        self.state = LaunchState::Measured;
        let mut digest = [0u8; 32];
        let mut mnonce = [0u8; 16];
        digest.copy_from_slice(&blob[..32]);
        mnonce.copy_from_slice(&blob[32..]);
        Ok(Measurement { digest, mnonce })
    }

    /// SEV-ES `KVM_SEV_LAUNCH_FINISH`.
    pub fn launch_finish(&mut self, vm: &VmFd) -> Result<(), SevError> {
        self.expect(Command::LaunchFinish, &[LaunchState::Measured])?;
        self.send::<()>(vm, Command::LaunchFinish, None)?;
        self.state = LaunchState::Finished;
        Ok(())
    }

    /// `KVM_SEV_SNP_LAUNCH_START` with `policy`, checked first as the kernel checks it.
    pub fn snp_launch_start(&mut self, vm: &VmFd, policy: u64) -> Result<(), SevError> {
        self.expect(Command::SnpLaunchStart, &[LaunchState::Initialized])?;
        SnpPolicy(policy).check(self.snp_policy_extra)?;
        let mut s = kvm_sev_snp_launch_start {
            policy,
            ..Default::default()
        };
        self.send(vm, Command::SnpLaunchStart, Some(&mut s))?;
        self.state = LaunchState::Started;
        Ok(())
    }

    /// The `KVM_SEV_SNP_LAUNCH_UPDATE` loop for `pages` (4 KiB multiples, page aligned) at
    /// `gpa` with `page_type` (`KVM_SEV_SNP_PAGE_TYPE_*`). The range must be private
    /// ([`super::set_private`]) in a guest_memfd slot. KVM reports partial progress by
    /// advancing `gfn_start`/`uaddr`/`len` and returning 0, and may return EAGAIN: both are
    /// retried. A CPUID page the firmware rejects comes back corrected in
    /// [`SevError::CpuidRejected`].
    pub fn snp_launch_update(
        &mut self,
        vm: &VmFd,
        gpa: u64,
        pages: &mut [u8],
        page_type: u8,
    ) -> Result<(), SevError> {
        let command = |gfn| Command::SnpLaunchUpdate { gfn, page_type };
        self.expect(command(gpa >> 12), &[LaunchState::Started])?;
        let addr = pages.as_mut_ptr() as u64;
        if pages.is_empty() || pages.len() % 4096 != 0 || addr % 4096 != 0 || gpa % 4096 != 0 {
            return Err(SevError::Unaligned {
                addr,
                len: pages.len(),
            });
        }
        // QEMU keeps the CPUID page it sent, to compare with the firmware's correction.
        let is_cpuid = u32::from(page_type) == kvm_bindings::KVM_SEV_SNP_PAGE_TYPE_CPUID;
        let provided: Option<Box<[u8; 4096]>> = is_cpuid
            .then(|| {
                pages
                    .get(..4096)
                    .and_then(|p| p.try_into().ok())
                    .map(Box::new)
            })
            .flatten();
        let mut u = kvm_sev_snp_launch_update {
            gfn_start: gpa >> 12,
            uaddr: addr,
            len: pages.len() as u64,
            type_: page_type,
            ..Default::default()
        };
        while u.len != 0 {
            match self.op(vm, command(u.gfn_start), Some(&mut u)) {
                Ok(()) => {}
                Err((KvmErrno(libc::EAGAIN), _)) => self.state = LaunchState::Started,
                Err((source, firmware_error)) => {
                    let gfn = u.gfn_start;
                    if let (Some(provided), FwError::INVALID_PARAM) = (provided, firmware_error) {
                        // HARDWARE-ONLY: KVM copied the firmware's corrected page back to
                        // `uaddr` (sev.c `snp_launch_update`, `sev_gmem_post_populate`).
                        let off = usize::try_from((gfn << 12).saturating_sub(gpa)).unwrap_or(0);
                        let mut corrected = Box::new([0u8; 4096]);
                        if let Some(p) = pages.get(off..off.saturating_add(4096)) {
                            corrected.copy_from_slice(p);
                        }
                        return Err(SevError::CpuidRejected {
                            gfn,
                            provided,
                            corrected,
                        });
                    }
                    return Err(SevError::MemoryEncryptOp {
                        command: command(gfn),
                        firmware_error,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// `KVM_SEV_SNP_LAUNCH_FINISH` (the upstream 88-byte structure) with `finish`: the ID block
    /// and its authentication information when given (`id_block_en`, `auth_key_en`), `host_data`
    /// and `vcek_disabled`, as QEMU's `sev_snp_launch_finish` passes them. KVM measures every
    /// vCPU's VMSA first, at GPA 0xFFFFFFFFF000, in index order; then the firmware checks the ID
    /// block against the launch.
    pub fn snp_launch_finish(&mut self, vm: &VmFd, finish: &SnpFinish) -> Result<(), SevError> {
        self.expect(Command::SnpLaunchFinish, &[LaunchState::Started])?;
        let mut f = finish_args(finish);
        self.send(vm, Command::SnpLaunchFinish, Some(&mut f))?;
        self.state = LaunchState::Finished;
        Ok(())
    }
}

/// What `SNP_LAUNCH_FINISH` takes besides the launch: QEMU's `sev-snp-guest` properties
/// `id-block`, `id-auth`, `author-key-enabled`, `host-data` and `vcek-disabled`.
#[derive(Debug, Clone, Default)]
pub struct SnpFinish {
    /// The ID block and its authentication information, if the launch carries them.
    pub id: Option<SnpIdBlock>,
    /// `HOST_DATA`: 32 bytes the report carries.
    pub host_data: [u8; 32],
    /// `VCEK_DISABLED`: the guest may not use the VCEK (only the VLEK) to sign reports.
    pub vcek_disabled: bool,
}

/// An ID block for `SNP_LAUNCH_FINISH`.
#[derive(Debug, Clone)]
pub struct SnpIdBlock {
    /// `ID_BLOCK`.
    pub block: IdBlock,
    /// `ID_AUTH_INFO`.
    pub auth: Box<IdAuthInfo>,
    /// `AUTHOR_KEY_EN`: the firmware checks the author key's signature of the ID key.
    pub author_key_en: bool,
}

/// The ioctl structure for `finish`: the pointers borrow `finish`, which outlives the ioctl.
fn finish_args(finish: &SnpFinish) -> kvm_sev_snp_launch_finish {
    let mut f = kvm_sev_snp_launch_finish {
        host_data: finish.host_data,
        vcek_disabled: u8::from(finish.vcek_disabled),
        ..Default::default()
    };
    if let Some(id) = &finish.id {
        f.id_block_uaddr = id.block.as_bytes().as_ptr() as u64;
        f.id_auth_uaddr = id.auth.as_bytes().as_ptr() as u64;
        f.id_block_en = 1;
        f.auth_key_en = u8::from(id.author_key_en);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_points_at_the_id_block_and_auth() {
        let mut auth = Box::new(<IdAuthInfo as zerocopy::FromZeros>::new_zeroed());
        auth.id_key_algo = 1;
        let finish = SnpFinish {
            id: Some(SnpIdBlock {
                block: IdBlock::new([1; 48], [2; 16], [3; 16], 4, 0x30000),
                auth,
                author_key_en: true,
            }),
            host_data: [9; 32],
            vcek_disabled: true,
        };
        let f = finish_args(&finish);
        let id = finish.id.as_ref().unwrap();
        assert_eq!(f.id_block_uaddr, id.block.as_bytes().as_ptr() as u64);
        assert_eq!(f.id_auth_uaddr, id.auth.as_bytes().as_ptr() as u64);
        assert_eq!((f.id_block_en, f.auth_key_en, f.vcek_disabled), (1, 1, 1));
        assert_eq!(f.host_data, [9; 32]);
        let none = finish_args(&SnpFinish::default());
        assert_eq!(
            (none.id_block_uaddr, none.id_block_en, none.auth_key_en),
            (0, 0, 0)
        );
    }

    #[test]
    fn vm_types_are_the_uapis() {
        assert_eq!(vm_type(SevMode::Sev), 2);
        assert_eq!(vm_type(SevMode::SevEs), 3);
        assert_eq!(vm_type(SevMode::Snp), 4);
    }
}
