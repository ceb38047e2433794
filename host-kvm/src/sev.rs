//! The SEV-ES and SEV-SNP launch through `KVM_MEMORY_ENCRYPT_OP`, as an explicit state machine.
//!
//! Sources: Linux `arch/x86/kvm/svm/sev.c` (`sev_mem_enc_ioctl`, `__sev_guest_init`,
//! `sev_launch_start`, `sev_launch_update_data`, `sev_launch_update_vmsa`, `sev_launch_measure`,
//! `snp_launch_start`, `snp_launch_update`, `snp_launch_finish`), uapi
//! `arch/x86/include/uapi/asm/kvm.h` and `include/uapi/linux/psp-sev.h` (v6.15, as bound by
//! kvm-bindings 0.14), `Documentation/virt/kvm/x86/amd-memory-encryption.rst`.
//!
//! The order is the firmware's and is enforced here before any ioctl:
//!
//! ```text
//! SEV-ES: New ─INIT2→ Initialized ─LAUNCH_START→ Started ─LAUNCH_UPDATE_DATA*→ Started
//!             ─LAUNCH_UPDATE_VMSA→ VmsasEncrypted ─LAUNCH_MEASURE→ Measured ─LAUNCH_FINISH→ Finished
//! SNP:    New ─INIT2→ Initialized ─SNP_LAUNCH_START→ Started ─SNP_LAUNCH_UPDATE*→ Started
//!             ─SNP_LAUNCH_FINISH (measures every VMSA)→ Finished
//! ```
//!
//! A failed command moves the launch to `Failed`; nothing more is sent, and dropping the
//! [`Launch`] closes the VM (the kernel tears the SEV context down with it).
//!
//! **Hardware-only code.** Without SEV hardware (as on the machine this crate is developed on)
//! every command fails; the tests cover that path, and the struct sizes and offsets are asserted
//! below against the upstream uapi. The success paths — the handle written back by
//! LAUNCH_START, the SNP_LAUNCH_UPDATE partial-progress loop, the measurement blob — were
//! reviewed against `sev.c` but have not run on hardware.

use kvm_bindings::{
    kvm_create_guest_memfd, kvm_device_attr, kvm_memory_attributes, kvm_sev_cmd, kvm_sev_init,
    kvm_sev_launch_measure, kvm_sev_launch_start, kvm_sev_launch_update_data,
    kvm_sev_snp_launch_finish, kvm_sev_snp_launch_start, kvm_sev_snp_launch_update,
    kvm_userspace_memory_region2,
};
use kvm_ioctls::{Kvm, VmFd};
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use vmm_sys_util::errno;
use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm_model::KvmParams;
use vmsa_core::preflight::{LaunchPlan, Preflight, PreflightError, SnpPolicy};
use vmsa_core::reset::SevMode;
// UNSAFETY: the system-fd KVM_GET_DEVICE_ATTR is not in kvm-ioctls; it is issued with
// vmm-sys-util's ioctl helpers, with a SAFETY proof.
#[allow(unsafe_code)]
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
layout!(kvm_memory_attributes, 32, address @ 0, size @ 8, attributes @ 16, flags @ 24);
layout!(kvm_create_guest_memfd, 64, size @ 0, flags @ 8);
layout!(kvm_userspace_memory_region2, 160, slot @ 0, flags @ 4, guest_phys_addr @ 8, memory_size @ 16, userspace_addr @ 24, guest_memfd_offset @ 32, guest_memfd @ 40);

/// `enum sev_cmd_id` (uapi `kvm.h`).
pub mod cmd {
    /// `KVM_SEV_LAUNCH_START`.
    pub const LAUNCH_START: u32 = 2;
    /// `KVM_SEV_LAUNCH_UPDATE_DATA`.
    pub const LAUNCH_UPDATE_DATA: u32 = 3;
    /// `KVM_SEV_LAUNCH_UPDATE_VMSA`.
    pub const LAUNCH_UPDATE_VMSA: u32 = 4;
    /// `KVM_SEV_LAUNCH_MEASURE`.
    pub const LAUNCH_MEASURE: u32 = 6;
    /// `KVM_SEV_LAUNCH_FINISH`.
    pub const LAUNCH_FINISH: u32 = 7;
    /// `KVM_SEV_INIT2`.
    pub const INIT2: u32 = 22;
    /// `KVM_SEV_SNP_LAUNCH_START`.
    pub const SNP_LAUNCH_START: u32 = 100;
    /// `KVM_SEV_SNP_LAUNCH_UPDATE`.
    pub const SNP_LAUNCH_UPDATE: u32 = 101;
    /// `KVM_SEV_SNP_LAUNCH_FINISH`.
    pub const SNP_LAUNCH_FINISH: u32 = 102;
}
const _: () = assert!(cmd::INIT2 == kvm_bindings::sev_cmd_id_KVM_SEV_INIT2);
const _: () = assert!(cmd::SNP_LAUNCH_FINISH == kvm_bindings::sev_cmd_id_KVM_SEV_SNP_LAUNCH_FINISH);
const _: () = assert!(cmd::LAUNCH_MEASURE == kvm_bindings::sev_cmd_id_KVM_SEV_LAUNCH_MEASURE);

/// A status code of the AMD SEV firmware (`include/uapi/linux/psp-sev.h` `sev_ret_code`), as
/// KVM copies it into `kvm_sev_cmd.error`. Open: unknown codes are kept and shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FwError(pub u32);

impl FwError {
    /// `SEV_RET_SUCCESS`.
    pub const SUCCESS: Self = Self(0);
    /// `SEV_RET_INVALID_PARAM`: SNP_LAUNCH_UPDATE of a CPUID page the firmware corrected.
    pub const INVALID_PARAM: Self = Self(0x16);
    /// `SEV_RET_NO_FW_CALL` (-1): KVM failed before calling the firmware.
    pub const NO_FW_CALL: Self = Self(u32::MAX);

    /// The `psp-sev.h` name, if the code has one.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "SUCCESS",
            1 => "INVALID_PLATFORM_STATE",
            2 => "INVALID_GUEST_STATE",
            3 => "INVALID_CONFIG",
            4 => "INVALID_LEN",
            5 => "ALREADY_OWNED",
            6 => "INVALID_CERTIFICATE",
            7 => "POLICY_FAILURE",
            8 => "INACTIVE",
            9 => "INVALID_ADDRESS",
            0xa => "BAD_SIGNATURE",
            0xb => "BAD_MEASUREMENT",
            0xc => "ASID_OWNED",
            0xd => "INVALID_ASID",
            0xe => "WBINVD_REQUIRED",
            0xf => "DFFLUSH_REQUIRED",
            0x10 => "INVALID_GUEST",
            0x11 => "INVALID_COMMAND",
            0x12 => "ACTIVE",
            0x13 => "HWSEV_RET_PLATFORM",
            0x14 => "HWSEV_RET_UNSAFE",
            0x15 => "UNSUPPORTED",
            0x16 => "INVALID_PARAM",
            0x17 => "RESOURCE_LIMIT",
            0x18 => "SECURE_DATA_INVALID",
            0x19 => "INVALID_PAGE_SIZE",
            0x1a => "INVALID_PAGE_STATE",
            0x1b => "INVALID_MDATA_ENTRY",
            0x1c => "INVALID_PAGE_OWNER",
            0x1d => "AEAD_OFLOW",
            0x1f => "EXIT_RING_BUFFER",
            u32::MAX => "NO_FW_CALL",
            _ => return None,
        })
    }
}

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#x})", self.0),
            None => write!(f, "unknown firmware status {:#x}", self.0),
        }
    }
}

/// An errno from `KVM_MEMORY_ENCRYPT_OP`, with what it means in the SEV code paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmErrno(pub i32);

impl fmt::Display for KvmErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = errno::Error::new(self.0);
        write!(f, "{e}")?;
        match self.0 {
            libc::ENOTTY => f.write_str(
                " — ENOTTY from KVM: this KVM has no SEV support (kvm_amd without SEV, no SEV hardware, \
                 or the VM is not an SEV VM)",
            ),
            libc::EPERM => f.write_str(" — EPERM: an SNP VM refuses the SEV/SEV-ES commands (ids < 100)"),
            libc::EBADF => f.write_str(" — EBADF: the /dev/sev fd is not valid"),
            libc::EIO => f.write_str(" — EIO: the SEV firmware failed the command (see the firmware status)"),
            _ => Ok(()),
        }
    }
}

/// Which launch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LaunchMode {
    /// SEV-ES (`KVM_X86_SEV_ES_VM`).
    SevEs,
    /// SEV-SNP (`KVM_X86_SNP_VM`).
    Snp,
}

impl LaunchMode {
    /// The VM type (`KVM_X86_SEV_ES_VM` 3, `KVM_X86_SNP_VM` 4).
    pub const fn vm_type(self) -> u64 {
        match self {
            Self::SevEs => kvm_bindings::KVM_X86_SEV_ES_VM as u64,
            Self::Snp => kvm_bindings::KVM_X86_SNP_VM as u64,
        }
    }
    /// The core's name for the mode.
    pub const fn sev_mode(self) -> SevMode {
        match self {
            Self::SevEs => SevMode::SevEs,
            Self::Snp => SevMode::Snp,
        }
    }
    /// `sev-es` or `snp`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SevEs => "sev-es",
            Self::Snp => "snp",
        }
    }
}

/// Where a launch is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LaunchState {
    /// The VM exists; nothing sent.
    New,
    /// `KVM_SEV_INIT2` done.
    Initialized,
    /// `LAUNCH_START`/`SNP_LAUNCH_START` done; data may be added.
    Started,
    /// SEV-ES: `LAUNCH_UPDATE_VMSA` done.
    VmsasEncrypted,
    /// SEV-ES: `LAUNCH_MEASURE` done.
    Measured,
    /// `LAUNCH_FINISH`/`SNP_LAUNCH_FINISH` done: the guest may run.
    Finished,
    /// A command failed; nothing more is sent.
    Failed,
}

/// A launch step failed; nothing after it was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// `/dev/sev` could not be opened.
    #[error(
        "no /dev/sev: {0} (the SEV firmware device is missing: no SEV hardware, or the ccp/psp driver is not loaded)"
    )]
    NoSevDevice(#[source] std::io::Error),
    /// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES)` on `/dev/kvm` failed.
    #[error(
        "KVM does not report its supported VMSA features (KVM_GET_DEVICE_ATTR KVM_X86_SEV_VMSA_FEATURES on /dev/kvm: {0}); the kernel predates KVM_SEV_INIT2 or has no SEV support"
    )]
    VmsaFeatures(KvmErrno),
    /// `KVM_CREATE_VM` with the SEV-ES/SNP type failed.
    #[error(
        "KVM_CREATE_VM with type {vm_type} ({mode}) failed: {errno} (this KVM does not offer {mode} VMs)"
    )]
    CreateVm {
        /// The type.
        vm_type: u64,
        /// The mode.
        mode: &'static str,
        /// errno.
        errno: KvmErrno,
    },
    /// The core preflight refused the launch (features, SNP bit, DR7, policy): KVM would
    /// refuse it, so nothing was sent.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The launch has no firmware image to encrypt.
    #[error("an SEV launch needs a firmware image to encrypt; this VM has none")]
    NoFirmware,
    /// A command was asked for in the wrong state; nothing was sent.
    #[error("{command} is not allowed in state {state:?} (the SEV firmware's order)")]
    WrongState {
        /// The command.
        command: &'static str,
        /// The state.
        state: LaunchState,
    },
    /// `KVM_SEV_INIT2` failed.
    #[error("KVM_SEV_INIT2 failed: {errno}; firmware status {fw}")]
    Init2 {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_LAUNCH_START` failed.
    #[error("KVM_SEV_LAUNCH_START failed: {errno}; firmware status {fw}")]
    LaunchStart {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_LAUNCH_UPDATE_DATA` failed.
    #[error("KVM_SEV_LAUNCH_UPDATE_DATA of {len:#x} bytes failed: {errno}; firmware status {fw}")]
    LaunchUpdateData {
        /// Bytes.
        len: usize,
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_LAUNCH_UPDATE_VMSA` failed.
    #[error("KVM_SEV_LAUNCH_UPDATE_VMSA failed: {errno}; firmware status {fw}")]
    LaunchUpdateVmsa {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_LAUNCH_MEASURE` failed.
    #[error("KVM_SEV_LAUNCH_MEASURE failed: {errno}; firmware status {fw}")]
    LaunchMeasure {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_LAUNCH_FINISH` failed.
    #[error("KVM_SEV_LAUNCH_FINISH failed: {errno}; firmware status {fw}")]
    LaunchFinish {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_SNP_LAUNCH_START` failed.
    #[error("KVM_SEV_SNP_LAUNCH_START failed: {errno}; firmware status {fw}")]
    SnpLaunchStart {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// `KVM_SEV_SNP_LAUNCH_UPDATE` failed.
    #[error(
        "KVM_SEV_SNP_LAUNCH_UPDATE at GFN {gfn:#x} (page type {page_type}) failed: {errno}; firmware status {fw}"
    )]
    SnpLaunchUpdate {
        /// The first GFN not done.
        gfn: u64,
        /// The page type.
        page_type: u8,
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// The firmware rejected a CPUID page and wrote its corrected version back.
    #[error(
        "the SEV firmware rejected the CPUID page at GFN {gfn:#x} and wrote back a corrected page (INVALID_PARAM)"
    )]
    CpuidRejected {
        /// GFN.
        gfn: u64,
        /// The firmware's corrected page.
        corrected: Box<[u8; 4096]>,
    },
    /// `KVM_SEV_SNP_LAUNCH_FINISH` failed.
    #[error("KVM_SEV_SNP_LAUNCH_FINISH failed: {errno}; firmware status {fw}")]
    SnpLaunchFinish {
        /// errno.
        errno: KvmErrno,
        /// Firmware status.
        fw: FwError,
    },
    /// guest_memfd memory could not be set up (`KVM_CREATE_GUEST_MEMFD`,
    /// `KVM_SET_USER_MEMORY_REGION2`, `KVM_SET_MEMORY_ATTRIBUTES`).
    #[error("{ioctl} failed: {errno}")]
    PrivateMemory {
        /// The ioctl.
        ioctl: &'static str,
        /// errno.
        errno: KvmErrno,
    },
    /// Setting up the VM's memory or vCPUs, or programming them, failed.
    #[error(transparent)]
    Vm(#[from] Box<crate::vm::VmError>),
    /// Data for LAUNCH_UPDATE/SNP_LAUNCH_UPDATE is not page-sized or page-aligned.
    #[error("launch data at {addr:#x} of {len:#x} bytes must be 4 KiB aligned and sized")]
    Unaligned {
        /// Address.
        addr: u64,
        /// Length.
        len: usize,
    },
}

/// The policy QEMU uses by default for `sev-snp-guest` (SMT allowed, RSVD_MBO).
pub const SNP_POLICY_DEFAULT: u64 = SnpPolicy::QEMU_DEFAULT.0;

/// `KVM_X86_SNP_POLICY_BITS` (uapi `kvm.h`, Linux 6.17; not in kvm-bindings 0.14): the SNP
/// policy bits KVM and the firmware support.
pub const KVM_X86_SNP_POLICY_BITS: u64 = 1;

/// The VMSA features this KVM supports (`KVM_X86_SEV_VMSA_FEATURES` on `/dev/kvm`; kvm-ioctls
/// has no system-fd device attribute call, so it is issued here).
pub fn supported_vmsa_features(kvm: &Kvm) -> Result<SevFeatures, LaunchError> {
    sys::get_system_attr(
        kvm,
        kvm_bindings::KVM_X86_GRP_SEV,
        u64::from(kvm_bindings::KVM_X86_SEV_VMSA_FEATURES),
    )
    .map(SevFeatures::from_bits_retain)
    .map_err(|e| LaunchError::VmsaFeatures(KvmErrno(e.errno())))
}

/// The SNP policy bits 21–25 this KVM allows (`KVM_X86_SNP_POLICY_BITS` on `/dev/kvm`), 0 on
/// kernels that do not have the attribute (they allow none of them).
pub fn snp_policy_extra(kvm: &Kvm) -> u64 {
    sys::get_system_attr(kvm, kvm_bindings::KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS)
        .map_or(0, |bits| bits & SnpPolicy::FIRMWARE_DEPENDENT)
}

/// A launch in progress on one VM.
#[derive(Debug)]
pub struct Launch {
    sev: File,
    mode: LaunchMode,
    state: LaunchState,
    /// SNP policy bits 21–25 KVM reported allowed ([`snp_policy_extra`]).
    snp_policy_extra: u64,
    /// Commands sent, in order (for the report).
    pub log: Vec<&'static str>,
}

/// The SEV-ES launch measurement blob (`LAUNCH_MEASURE`): HMAC-SHA-256 and the nonce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Measurement {
    /// The 32-byte measurement.
    pub digest: [u8; 32],
    /// The 16-byte nonce.
    pub mnonce: [u8; 16],
}

impl Launch {
    /// Starts a launch on `vm` (created with [`LaunchMode::vm_type`], no vCPUs yet), with the
    /// SEV firmware device `sev` (`/dev/sev`, see [`open_sev`]).
    pub fn new(sev: File, mode: LaunchMode) -> Self {
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
    pub fn mode(&self) -> LaunchMode {
        self.mode
    }

    /// Where the launch is.
    pub fn state(&self) -> LaunchState {
        self.state
    }

    fn expect(&self, command: &'static str, states: &[LaunchState]) -> Result<(), LaunchError> {
        if states.contains(&self.state) {
            Ok(())
        } else {
            Err(LaunchError::WrongState {
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
        name: &'static str,
        id: u32,
        data: Option<&mut T>,
    ) -> Result<(), (KvmErrno, FwError)> {
        let mut c = kvm_sev_cmd {
            id,
            data: data.map_or(0, |d| d as *mut T as u64),
            sev_fd: self.sev.as_raw_fd() as u32,
            ..Default::default()
        };
        self.log.push(name);
        // kvm-ioctls' safe wrapper: the kernel reads `struct kvm_sev_cmd`, then the command's
        // structure at `data` (each caller passes the structure its id takes, alive for the
        // call), and writes back `error` and the command's output fields.
        match vm.encrypt_op_sev(&mut c) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.state = LaunchState::Failed;
                Err((KvmErrno(e.errno()), FwError(c.error)))
            }
        }
    }

    /// `KVM_SEV_INIT2` with `vmsa_features` (from the core preflight, [`LaunchPlan`]);
    /// ghcb_version 0 lets KVM pick 2.
    pub fn init2(&mut self, vm: &VmFd, vmsa_features: SevFeatures) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_INIT2", &[LaunchState::New])?;
        let mut init = kvm_sev_init {
            vmsa_features: vmsa_features.bits(),
            ..Default::default()
        };
        self.op(vm, "KVM_SEV_INIT2", cmd::INIT2, Some(&mut init))
            .map_err(|(errno, fw)| LaunchError::Init2 { errno, fw })?;
        self.state = LaunchState::Initialized;
        Ok(())
    }

    /// SEV-ES `KVM_SEV_LAUNCH_START` with `policy` (no DH certificate or session: a plain
    /// launch). Returns the guest handle.
    pub fn launch_start(&mut self, vm: &VmFd, policy: u32) -> Result<u32, LaunchError> {
        self.expect("KVM_SEV_LAUNCH_START", &[LaunchState::Initialized])?;
        let mut s = kvm_sev_launch_start {
            policy,
            ..Default::default()
        };
        self.op(vm, "KVM_SEV_LAUNCH_START", cmd::LAUNCH_START, Some(&mut s))
            .map_err(|(errno, fw)| LaunchError::LaunchStart { errno, fw })?;
        self.state = LaunchState::Started;
        Ok(s.handle)
    }

    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_DATA`: encrypts and measures `data` in place (guest
    /// memory the VM maps); 16-byte aligned address and length.
    pub fn launch_update_data(
        &mut self,
        vm: &VmFd,
        mem: &crate::vm::GuestMemory,
    ) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_LAUNCH_UPDATE_DATA", &[LaunchState::Started])?;
        let len = mem.len();
        let addr = mem.host_addr();
        if len == 0 || len % 16 != 0 || addr % 16 != 0 {
            return Err(LaunchError::Unaligned { addr, len });
        }
        let mut u = kvm_sev_launch_update_data {
            uaddr: addr,
            len: len as u32,
            pad0: 0,
        };
        self.op(
            vm,
            "KVM_SEV_LAUNCH_UPDATE_DATA",
            cmd::LAUNCH_UPDATE_DATA,
            Some(&mut u),
        )
        .map_err(|(errno, fw)| LaunchError::LaunchUpdateData { len, errno, fw })
    }

    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_VMSA`: KVM syncs and encrypts every vCPU's VMSA in index
    /// order (`sev_es_sync_vmsa`), so the vCPUs must hold their launch state already.
    pub fn launch_update_vmsa(&mut self, vm: &VmFd) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_LAUNCH_UPDATE_VMSA", &[LaunchState::Started])?;
        self.op::<()>(
            vm,
            "KVM_SEV_LAUNCH_UPDATE_VMSA",
            cmd::LAUNCH_UPDATE_VMSA,
            None,
        )
        .map_err(|(errno, fw)| LaunchError::LaunchUpdateVmsa { errno, fw })?;
        self.state = LaunchState::VmsasEncrypted;
        Ok(())
    }

    /// SEV-ES `KVM_SEV_LAUNCH_MEASURE`: the 48-byte blob (measurement and nonce).
    pub fn launch_measure(&mut self, vm: &VmFd) -> Result<Measurement, LaunchError> {
        self.expect("KVM_SEV_LAUNCH_MEASURE", &[LaunchState::VmsasEncrypted])?;
        let mut blob = [0u8; 48];
        let mut m = kvm_sev_launch_measure {
            uaddr: blob.as_mut_ptr() as u64,
            len: 48,
            pad0: 0,
        };
        self.op(
            vm,
            "KVM_SEV_LAUNCH_MEASURE",
            cmd::LAUNCH_MEASURE,
            Some(&mut m),
        )
        .map_err(|(errno, fw)| LaunchError::LaunchMeasure { errno, fw })?;
        self.state = LaunchState::Measured;
        let mut digest = [0u8; 32];
        let mut mnonce = [0u8; 16];
        digest.copy_from_slice(&blob[..32]);
        mnonce.copy_from_slice(&blob[32..]);
        Ok(Measurement { digest, mnonce })
    }

    /// SEV-ES `KVM_SEV_LAUNCH_FINISH`.
    pub fn launch_finish(&mut self, vm: &VmFd) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_LAUNCH_FINISH", &[LaunchState::Measured])?;
        self.op::<()>(vm, "KVM_SEV_LAUNCH_FINISH", cmd::LAUNCH_FINISH, None)
            .map_err(|(errno, fw)| LaunchError::LaunchFinish { errno, fw })?;
        self.state = LaunchState::Finished;
        Ok(())
    }

    /// `KVM_SEV_SNP_LAUNCH_START` with `policy`, checked first as the kernel checks it.
    pub fn snp_launch_start(&mut self, vm: &VmFd, policy: u64) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_SNP_LAUNCH_START", &[LaunchState::Initialized])?;
        SnpPolicy(policy).check(self.snp_policy_extra)?;
        let mut s = kvm_sev_snp_launch_start {
            policy,
            ..Default::default()
        };
        self.op(
            vm,
            "KVM_SEV_SNP_LAUNCH_START",
            cmd::SNP_LAUNCH_START,
            Some(&mut s),
        )
        .map_err(|(errno, fw)| LaunchError::SnpLaunchStart { errno, fw })?;
        self.state = LaunchState::Started;
        Ok(())
    }

    /// The `KVM_SEV_SNP_LAUNCH_UPDATE` loop for `pages` (4 KiB multiples, page aligned) at
    /// `gpa` with `page_type` (`KVM_SEV_SNP_PAGE_TYPE_*`). The range must be private
    /// ([`set_private`]) in a guest_memfd slot. KVM reports partial progress by advancing
    /// `gfn_start`/`uaddr`/`len` and returning 0, and may return EAGAIN: both are retried. A
    /// CPUID page the firmware rejects comes back corrected in
    /// [`LaunchError::CpuidRejected`].
    pub fn snp_launch_update(
        &mut self,
        vm: &VmFd,
        gpa: u64,
        pages: &mut [u8],
        page_type: u8,
    ) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_SNP_LAUNCH_UPDATE", &[LaunchState::Started])?;
        let addr = pages.as_mut_ptr() as u64;
        if pages.is_empty() || pages.len() % 4096 != 0 || addr % 4096 != 0 || gpa % 4096 != 0 {
            return Err(LaunchError::Unaligned {
                addr,
                len: pages.len(),
            });
        }
        let mut u = kvm_sev_snp_launch_update {
            gfn_start: gpa >> 12,
            uaddr: addr,
            len: pages.len() as u64,
            type_: page_type,
            ..Default::default()
        };
        while u.len != 0 {
            match self.op(
                vm,
                "KVM_SEV_SNP_LAUNCH_UPDATE",
                cmd::SNP_LAUNCH_UPDATE,
                Some(&mut u),
            ) {
                Ok(()) => {}
                Err((KvmErrno(libc::EAGAIN), _)) => self.state = LaunchState::Started,
                Err((errno, fw)) => {
                    let gfn = u.gfn_start;
                    if u32::from(page_type) == kvm_bindings::KVM_SEV_SNP_PAGE_TYPE_CPUID
                        && fw == FwError::INVALID_PARAM
                    {
                        let off = ((gfn << 12) - gpa) as usize;
                        let mut corrected = Box::new([0u8; 4096]);
                        if let Some(p) = pages.get(off..off + 4096) {
                            corrected.copy_from_slice(p);
                        }
                        return Err(LaunchError::CpuidRejected { gfn, corrected });
                    }
                    return Err(LaunchError::SnpLaunchUpdate {
                        gfn,
                        page_type,
                        errno,
                        fw,
                    });
                }
            }
        }
        Ok(())
    }

    /// `KVM_SEV_SNP_LAUNCH_FINISH` (the upstream 88-byte structure), no ID block, `host_data`.
    /// KVM measures every vCPU's VMSA first, at GPA 0xFFFFFFFFF000, in index order.
    pub fn snp_launch_finish(&mut self, vm: &VmFd, host_data: [u8; 32]) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_SNP_LAUNCH_FINISH", &[LaunchState::Started])?;
        let mut f = kvm_sev_snp_launch_finish {
            host_data,
            ..Default::default()
        };
        self.op(
            vm,
            "KVM_SEV_SNP_LAUNCH_FINISH",
            cmd::SNP_LAUNCH_FINISH,
            Some(&mut f),
        )
        .map_err(|(errno, fw)| LaunchError::SnpLaunchFinish { errno, fw })?;
        self.state = LaunchState::Finished;
        Ok(())
    }
}

/// Opens the SEV firmware device.
pub fn open_sev() -> Result<File, LaunchError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/sev")
        .map_err(LaunchError::NoSevDevice)
}

/// Creates a VM of the launch's type (`KVM_X86_SEV_ES_VM` or `KVM_X86_SNP_VM`).
pub fn create_vm(kvm: &Kvm, mode: LaunchMode) -> Result<VmFd, LaunchError> {
    kvm.create_vm_with_type(mode.vm_type())
        .map_err(|e| LaunchError::CreateVm {
            vm_type: mode.vm_type(),
            mode: mode.name(),
            errno: KvmErrno(e.errno()),
        })
}

/// Marks `[gpa, gpa + size)` private (`KVM_SET_MEMORY_ATTRIBUTES` with
/// `KVM_MEMORY_ATTRIBUTE_PRIVATE`), as SNP_LAUNCH_UPDATE requires.
pub fn set_private(vm: &VmFd, gpa: u64, size: u64) -> Result<(), LaunchError> {
    vm.set_memory_attributes(kvm_memory_attributes {
        address: gpa,
        size,
        attributes: u64::from(kvm_bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE),
        flags: 0,
    })
    .map_err(|e| LaunchError::PrivateMemory {
        ioctl: "KVM_SET_MEMORY_ATTRIBUTES",
        errno: KvmErrno(e.errno()),
    })
}

/// Creates a guest_memfd of `size` bytes (`KVM_CREATE_GUEST_MEMFD`) for an SNP VM's private
/// memory. The returned file owns the fd.
pub fn create_guest_memfd(vm: &VmFd, size: u64) -> Result<File, LaunchError> {
    use std::os::fd::FromRawFd;
    let fd = vm
        .create_guest_memfd(kvm_create_guest_memfd {
            size,
            flags: 0,
            reserved: [0; 6],
        })
        .map_err(|e| LaunchError::PrivateMemory {
            ioctl: "KVM_CREATE_GUEST_MEMFD",
            errno: KvmErrno(e.errno()),
        })?;
    #[allow(unsafe_code)]
    // SAFETY: KVM_CREATE_GUEST_MEMFD returned a new fd that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    Ok(file)
}

/// What [`launch`] did: every step in order, and the measurement if it got that far.
#[derive(Debug, Default)]
pub struct LaunchReport {
    /// The steps that succeeded, in order.
    pub done: Vec<String>,
    /// The SEV-ES measurement blob (SEV-ES only; SNP's is in the attestation report).
    pub measurement: Option<Measurement>,
}

/// The whole launch of `vmsas` (one per vCPU, in index order) with `firmware` ending at 4 GiB:
/// the pure checks first (features agree, SNP bit, policy), then `/dev/sev`, the supported
/// features, the VM, `KVM_SEV_INIT2`, memory and vCPUs, and the mode's commands in the
/// firmware's order. Stops at the first failure; everything made so far (VM, memory, vCPUs,
/// `/dev/sev`) is closed when it returns.
pub fn launch(
    mode: LaunchMode,
    vmsas: &[vmsa_core::Vmsa],
    config: &crate::vm::VmConfig,
    policy: u64,
) -> (LaunchReport, Result<(), LaunchError>) {
    let mut report = LaunchReport::default();
    let r = launch_steps(mode, vmsas, config, policy, &mut report);
    (report, r)
}

fn launch_steps(
    mode: LaunchMode,
    vmsas: &[vmsa_core::Vmsa],
    config: &crate::vm::VmConfig,
    policy: u64,
    report: &mut LaunchReport,
) -> Result<(), LaunchError> {
    // The core preflight, before anything is opened: features agree and carry the right SNP
    // bit, DR7, the policy (support is checked again once KVM says what it supports).
    let preflight = Preflight::new(mode.sev_mode(), policy, KvmParams::default());
    preflight.before_kvm().check(vmsas)?;
    if config.firmware.is_empty() {
        return Err(LaunchError::NoFirmware);
    }
    report
        .done
        .push("preflight: sev_features agree, SNP bit, DR7 and policy accepted".into());
    let sev = open_sev()?;
    report.done.push("opened /dev/sev".into());
    let kvm = crate::vm::Vm::open_kvm().map_err(|e| {
        LaunchError::VmsaFeatures(KvmErrno(match e {
            crate::vm::VmError::OpenKvm(e) => e.errno(),
            _ => libc::ENODEV,
        }))
    })?;
    let supported = supported_vmsa_features(&kvm)?;
    let extra = snp_policy_extra(&kvm);
    let plan: LaunchPlan = Preflight {
        kvm: KvmParams {
            supported_vmsa_features: supported,
            ..preflight.kvm
        },
        snp_policy_extra: extra,
        ..preflight
    }
    .check(vmsas)?;
    report.done.push(format!(
        "KVM supports VMSA features {:#x}",
        supported.bits()
    ));
    let vmfd = create_vm(&kvm, mode)?;
    report.done.push(format!(
        "created a {} VM (type {})",
        mode.name(),
        mode.vm_type()
    ));
    let mut l = Launch::new(sev, mode).with_snp_policy_extra(extra);
    l.init2(&vmfd, plan.vmsa_features)?;
    report.done.push(format!(
        "KVM_SEV_INIT2 vmsa_features {:#x}",
        plan.vmsa_features.bits()
    ));
    // Memory and vCPUs (KVM_CREATE_VCPU must follow INIT2).
    let mut vm = crate::vm::Vm::with_vm(kvm, vmfd, config).map_err(Box::new)?;
    let (flash_base, flash_len) = match &vm.flash {
        Some(f) => (vm.flash_base, f.len()),
        None => return Err(LaunchError::NoFirmware),
    };
    match mode {
        LaunchMode::SevEs => {
            let handle = l.launch_start(&vm.fd, plan.policy as u32)?;
            report
                .done
                .push(format!("KVM_SEV_LAUNCH_START handle {handle}"));
            if let Some(flash) = &vm.flash {
                l.launch_update_data(&vm.fd, flash)?;
            }
            report.done.push(format!(
                "KVM_SEV_LAUNCH_UPDATE_DATA firmware ({flash_len:#x} bytes)"
            ));
            program_for_launch(&mut vm, vmsas)?;
            l.launch_update_vmsa(&vm.fd)?;
            report.done.push(format!(
                "KVM_SEV_LAUNCH_UPDATE_VMSA ({} vCPUs)",
                vmsas.len()
            ));
            report.measurement = Some(l.launch_measure(&vm.fd)?);
            report.done.push("KVM_SEV_LAUNCH_MEASURE".into());
            l.launch_finish(&vm.fd)?;
            report.done.push("KVM_SEV_LAUNCH_FINISH".into());
        }
        LaunchMode::Snp => {
            // Hardware-only: the firmware range must be a guest_memfd slot, private.
            let gmem = create_guest_memfd(&vm.fd, flash_len as u64)?;
            snp_private_slot(&vm, &gmem)?;
            set_private(&vm.fd, flash_base, flash_len as u64)?;
            report
                .done
                .push("firmware range in a private guest_memfd slot".into());
            l.snp_launch_start(&vm.fd, plan.policy)?;
            report.done.push(format!(
                "KVM_SEV_SNP_LAUNCH_START policy {:#x}",
                plan.policy
            ));
            let mut fw = config.firmware.clone();
            l.snp_launch_update(
                &vm.fd,
                flash_base,
                &mut fw,
                kvm_bindings::KVM_SEV_SNP_PAGE_TYPE_NORMAL as u8,
            )?;
            report
                .done
                .push("KVM_SEV_SNP_LAUNCH_UPDATE firmware".into());
            program_for_launch(&mut vm, vmsas)?;
            l.snp_launch_finish(&vm.fd, [0; 32])?;
            report.done.push("KVM_SEV_SNP_LAUNCH_FINISH".into());
        }
    }
    Ok(())
}

/// Programs the vCPUs in strict mode: a launch VMSA the vCPU cannot hold would be measured
/// differently, so it is refused.
fn program_for_launch(
    vm: &mut crate::vm::Vm,
    vmsas: &[vmsa_core::Vmsa],
) -> Result<(), LaunchError> {
    vm.program(vmsas, true)
        .map(|_| ())
        .map_err(|e| LaunchError::Vm(Box::new(e)))
}

/// Re-registers the firmware slot (slot 1) as a guest_memfd slot (`KVM_SET_USER_MEMORY_REGION2`
/// with `KVM_MEM_GUEST_MEMFD`), keeping the shared mapping as its userspace address.
fn snp_private_slot(vm: &crate::vm::Vm, gmem: &File) -> Result<(), LaunchError> {
    let flash = vm.flash.as_ref().ok_or(LaunchError::NoFirmware)?;
    let region = kvm_userspace_memory_region2 {
        slot: 1,
        flags: kvm_bindings::KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: vm.flash_base,
        memory_size: flash.len() as u64,
        userspace_addr: flash.host_addr(),
        guest_memfd_offset: 0,
        guest_memfd: gmem.as_raw_fd() as u32,
        ..Default::default()
    };
    let delete = kvm_bindings::kvm_userspace_memory_region {
        slot: 1,
        flags: 0,
        guest_phys_addr: vm.flash_base,
        memory_size: 0,
        userspace_addr: flash.host_addr(),
    };
    let err = |ioctl| {
        move |e: errno::Error| LaunchError::PrivateMemory {
            ioctl,
            errno: KvmErrno(e.errno()),
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: memory_size 0 deletes slot 1; no memory is handed to KVM.
    unsafe { vm.fd.set_user_memory_region(delete) }.map_err(err("KVM_SET_USER_MEMORY_REGION"))?;
    #[allow(unsafe_code)]
    // SAFETY: the slot is backed by `flash` (`vm.flash`), a live mapping of exactly `memory_size` bytes
    // owned by `vm`, and by `gmem`, a guest_memfd of the same size; `vm` outlives the slot
    // (the VM fd closes first).
    unsafe { vm.fd.set_user_memory_region2(region) }.map_err(err("KVM_SET_USER_MEMORY_REGION2"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_modes_map_to_the_core() {
        assert_eq!(LaunchMode::Snp.sev_mode(), SevMode::Snp);
        assert_eq!(LaunchMode::SevEs.sev_mode(), SevMode::SevEs);
        assert_eq!(LaunchMode::Snp.vm_type(), 4);
        assert_eq!(LaunchMode::SevEs.vm_type(), 3);
    }

    #[test]
    fn preflight_refusals_keep_the_cores_words() {
        let e = LaunchError::from(SnpPolicy(0x1_0000).check(0).unwrap_err());
        assert!(
            e.to_string().starts_with("SNP policy 0x10000: bit 17"),
            "{e}"
        );
    }

    #[test]
    fn firmware_codes_are_named_or_kept() {
        assert_eq!(FwError(0xb).to_string(), "BAD_MEASUREMENT (0xb)");
        assert_eq!(FwError(0x99).to_string(), "unknown firmware status 0x99");
        assert_eq!(FwError::NO_FW_CALL.name(), Some("NO_FW_CALL"));
    }
}
