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
//! What is sent, and in which order, is the core's launch plan ([`vmsa_core::launch_plan`]):
//! [`launch_ovmf`] walks an [`OvmfPlan`] (the image, the `ASEV` sections — SNP_SEC_MEM, SECRETS,
//! the CPUID page filled from vCPU 0's CPUID ([`snp_adjust_cpuid`]), SVSM_CAA, KERNEL_HASHES —
//! then the VMSAs KVM measures), [`launch_igvm`] an [`IgvmPlan`]. The plan's digest is computed
//! before anything is opened and reported ([`LaunchReport::expected_digest`]); tests check it
//! against `vmsa measure`.
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
use vmsa_core::Vmsa;
use vmsa_core::flags::SevFeatures;
use vmsa_core::igvm::igvm_defs::IgvmPlatformType;
use vmsa_core::igvm::vp::LaunchEntry;
use vmsa_core::igvm::{IgvmFile, Platform};
use vmsa_core::kvm_model::KvmParams;
use vmsa_core::launch_plan::{
    FileDigestDifference, IgvmPlan, LaunchUpdate, OvmfPlan, PlanError, UpdateSource,
    outside_memory, sev_digest, snp_digest,
};
use vmsa_core::measure::igvm::IgvmOptions;
use vmsa_core::measure::{NoObserver, PageType};
use vmsa_core::ovmf::{OvmfError, OvmfImage};
use vmsa_core::preflight::{LaunchPlan, Preflight, PreflightError, SnpPolicy};
use vmsa_core::reset::{LaunchVmsas, SevMode, VmmType};
use vmsa_core::snp_cpuid::{
    CpuidEntry, CpuidPageError, SnpCpuidInfo, adjust_cpuid_features, mismatches,
};
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
    /// The digest's name for the mode.
    pub const fn digest_mode(self) -> vmsa_core::measure::ovmf::LaunchMode {
        match self {
            Self::SevEs => vmsa_core::measure::ovmf::LaunchMode::SevEs,
            Self::Snp => vmsa_core::measure::ovmf::LaunchMode::Snp,
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
    /// The firmware rejected a CPUID page (INVALID_PARAM) and KVM copied its corrected version
    /// back; the message lists what differs, as QEMU's `sev_snp_cpuid_report_mismatches` does.
    #[error(
        "the SEV firmware rejected the CPUID page at GFN {gfn:#x} (INVALID_PARAM){}",
        cpuid_report(provided, corrected)
    )]
    CpuidRejected {
        /// GFN.
        gfn: u64,
        /// The page sent.
        provided: Box<[u8; 4096]>,
        /// The firmware's corrected page.
        corrected: Box<[u8; 4096]>,
    },
    /// The CPUID page cannot be made (more than 64 CPUID entries).
    #[error(transparent)]
    CpuidPage(#[from] CpuidPageError),
    /// The firmware image cannot be parsed.
    #[error(transparent)]
    Firmware(#[from] OvmfError),
    /// The launch cannot be planned (the core's launch plan refuses it).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The plan measures a different number of VMSAs than there are vCPUs.
    #[error("the launch plan measures {planned} VMSAs for {vcpus} vCPUs")]
    PlanVmsas {
        /// VMSAs in the plan.
        planned: usize,
        /// vCPUs.
        vcpus: usize,
    },
    /// The plan's VMSA for a vCPU is not the one the vCPU is programmed with.
    #[error("the launch plan's VMSA for vCPU {cpu} is not the state that vCPU is programmed with")]
    PlanVmsa {
        /// The vCPU.
        cpu: usize,
    },
    /// An update lies outside guest memory (RAM at 0, the firmware below 4 GiB).
    #[error(
        "the launch writes {len:#x} bytes at GPA {gpa:#x}, outside guest memory ({ram:#x} bytes of RAM at 0 and the firmware below 4 GiB)"
    )]
    OutsideMemory {
        /// GPA.
        gpa: u64,
        /// Length.
        len: u64,
        /// RAM size.
        ram: u64,
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

/// The lines QEMU prints when the firmware corrects a CPUID page.
fn cpuid_report(provided: &[u8; 4096], corrected: &[u8; 4096]) -> String {
    match (
        SnpCpuidInfo::from_page(provided),
        SnpCpuidInfo::from_page(corrected),
    ) {
        (Ok(p), Ok(c)) => {
            let lines: Vec<String> = mismatches(&p, &c).map(|m| format!("\n  {m}")).collect();
            if lines.is_empty() {
                ": no entry differs".into()
            } else {
                format!(":{}", lines.concat())
            }
        }
        (_, Err(e)) | (Err(e), _) => format!(": the pages cannot be compared: {e}"),
    }
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

    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_DATA`: encrypts and measures `len` bytes at `offset` of
    /// `mem` in place (guest memory the VM maps); 16-byte aligned address and length.
    pub fn launch_update_data(
        &mut self,
        vm: &VmFd,
        mem: &crate::vm::GuestMemory,
        offset: usize,
        len: usize,
    ) -> Result<(), LaunchError> {
        self.expect("KVM_SEV_LAUNCH_UPDATE_DATA", &[LaunchState::Started])?;
        let addr = mem.host_addr().wrapping_add(offset as u64);
        let inside = offset.checked_add(len).is_some_and(|end| end <= mem.len());
        if !inside || len == 0 || len % 16 != 0 || addr % 16 != 0 || u32::try_from(len).is_err() {
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
                    if let (Some(provided), FwError::INVALID_PARAM) = (provided, fw) {
                        // HARDWARE-ONLY: KVM copied the firmware's corrected page back to
                        // `uaddr` (sev.c `snp_launch_update`, `sev_gmem_post_populate`).
                        let off = usize::try_from((gfn << 12).saturating_sub(gpa)).unwrap_or(0);
                        let mut corrected = Box::new([0u8; 4096]);
                        if let Some(p) = pages.get(off..off.saturating_add(4096)) {
                            corrected.copy_from_slice(p);
                        }
                        return Err(LaunchError::CpuidRejected {
                            gfn,
                            provided,
                            corrected,
                        });
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

/// What a launch did: every step in order, the digest its plan gives, and the SEV-ES
/// measurement if it got that far.
#[derive(Debug, Default)]
pub struct LaunchReport {
    /// The steps that succeeded, in order.
    pub done: Vec<String>,
    /// The launch digest the plan gives (SHA-384 for SNP, SHA-256 for SEV-ES): what the
    /// attestation report's MEASUREMENT (SNP) or the firmware's LD (SEV-ES) will be.
    pub expected_digest: Option<Vec<u8>>,
    /// IGVM: why KVM's launch does not give the file's own digest (`vmsa measure --igvm`),
    /// if it does not.
    pub file_digest_difference: Option<FileDigestDifference>,
    /// The SEV-ES measurement blob (SEV-ES only; SNP's is in the attestation report).
    pub measurement: Option<Measurement>,
}

/// The SEV-ES or SNP launch of an OVMF image (`config.firmware`, ending at 4 GiB) with the
/// launch VMSAs `launch`, walking the core's [`OvmfPlan`] (QEMU's page order and types): the
/// pure checks first, then `/dev/sev`, the supported features, the VM, `KVM_SEV_INIT2`, memory
/// and vCPUs, and the mode's commands in the firmware's order. Stops at the first failure;
/// everything made so far (VM, memory, vCPUs, `/dev/sev`) is closed when it returns.
pub fn launch_ovmf(
    mode: LaunchMode,
    launch: &LaunchVmsas,
    config: &crate::vm::VmConfig,
    policy: u64,
) -> (LaunchReport, Result<(), LaunchError>) {
    let mut report = LaunchReport::default();
    let r = (|| {
        let fw = OvmfImage::parse(&config.firmware)?;
        let plan = OvmfPlan::new(
            &config.firmware,
            fw,
            mode.digest_mode(),
            VmmType::Qemu,
            None,
            launch,
        )?;
        let vmsas: Vec<Vmsa> = launch.pages().map(|(_, v)| v.clone()).collect();
        let updates: Vec<LaunchUpdate<'_>> = plan.updates().collect();
        run_plan(mode, &vmsas, config, policy, &updates, &mut report, |_| {
            Ok(())
        })
    })();
    (report, r)
}

/// The SEV-ES or SNP launch of an IGVM file on `platform` (its mode), with the launch VMSAs
/// `entries` (VP contexts, reset state for the other vCPUs: `IgvmLaunch::entries`), walking the
/// core's [`IgvmPlan`]: the platform's pages are loaded into guest RAM (`config.ram_size`, no
/// firmware image), sent in file order, and the VMSAs measured last by KVM.
pub fn launch_igvm(
    file: &IgvmFile<'_>,
    platform: &Platform,
    entries: &[LaunchEntry],
    config: &crate::vm::VmConfig,
    policy: u64,
) -> (LaunchReport, Result<(), LaunchError>) {
    let mut report = LaunchReport::default();
    let r = (|| {
        let mode = match platform.platform_type {
            IgvmPlatformType::SEV_SNP => LaunchMode::Snp,
            IgvmPlatformType::SEV_ES => LaunchMode::SevEs,
            other => return Err(PlanError::NotSevEsOrSnp(other.0).into()),
        };
        let plan = IgvmPlan::new(file, platform, IgvmOptions::default(), entries)?;
        report.file_digest_difference = plan.file_digest_difference().err();
        let vmsas: Vec<Vmsa> = entries.iter().map(|e| e.vmsa.clone()).collect();
        let updates: Vec<LaunchUpdate<'_>> = plan.updates().collect();
        let (mask, vcpus) = (platform.compatibility_mask, entries.len() as u32);
        run_plan(mode, &vmsas, config, policy, &updates, &mut report, |vm| {
            vm.load_igvm(file, mask, vcpus)
                .map(|_| ())
                .map_err(Box::new)?;
            Ok(())
        })
    })();
    (report, r)
}

/// The checks that need no kernel: the preflight, the plan's VMSAs are the ones the vCPUs get,
/// every update lies in guest memory. Then the digest the plan gives.
fn check_plan(
    mode: LaunchMode,
    vmsas: &[Vmsa],
    config: &crate::vm::VmConfig,
    policy: u64,
    updates: &[LaunchUpdate<'_>],
    report: &mut LaunchReport,
) -> Result<Preflight, LaunchError> {
    let preflight = Preflight::new(mode.sev_mode(), policy, KvmParams::default());
    let pre = preflight.before_kvm().check(vmsas)?;
    let planned: Vec<(u32, &Vmsa)> = updates
        .iter()
        .filter_map(|u| match u.source {
            UpdateSource::Vmsa { cpu, vmsa } => Some((cpu, vmsa)),
            _ => None,
        })
        .collect();
    if planned.len() != vmsas.len() {
        return Err(LaunchError::PlanVmsas {
            planned: planned.len(),
            vcpus: vmsas.len(),
        });
    }
    for (i, ((cpu, p), v)) in planned.iter().zip(vmsas).enumerate() {
        if *cpu as usize != i || *p != v {
            return Err(LaunchError::PlanVmsa { cpu: i });
        }
    }
    let fw_len = config.firmware.len() as u64;
    let memory = [(0, config.ram_size), (crate::vm::FOUR_GIB - fw_len, fw_len)];
    if let Some(u) = outside_memory(updates.iter().copied(), &memory) {
        return Err(LaunchError::OutsideMemory {
            gpa: u.gpa,
            len: u.len,
            ram: config.ram_size,
        });
    }
    let mut snp_pages = 0u64;
    for u in updates {
        snp_pages += u.len.div_ceil(4096);
    }
    let digest = match mode {
        LaunchMode::Snp => snp_digest(updates.iter().copied(), NoObserver).0.to_vec(),
        LaunchMode::SevEs => sev_digest(updates.iter().copied(), NoObserver).0.to_vec(),
    };
    report.done.push(format!(
        "preflight: INIT2 vmsa_features {:#x}, policy {:#x} (sev_features agree, SNP bit, DR7); plan of {} updates ({} pages), all in guest memory, expected launch digest {}",
        pre.vmsa_features.bits(),
        pre.policy,
        updates.len(),
        snp_pages,
        hex(&digest)
    ));
    report.expected_digest = Some(digest);
    Ok(preflight)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Walks a plan: the pure checks, then the kernel.
fn run_plan(
    mode: LaunchMode,
    vmsas: &[Vmsa],
    config: &crate::vm::VmConfig,
    policy: u64,
    updates: &[LaunchUpdate<'_>],
    report: &mut LaunchReport,
    load: impl FnOnce(&crate::vm::Vm) -> Result<(), LaunchError>,
) -> Result<(), LaunchError> {
    let preflight = check_plan(mode, vmsas, config, policy, updates, report)?;
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
    // HARDWARE-ONLY from here: without SEV hardware no kernel gets this far (no /dev/sev, no
    // KVM_X86_SEV_VMSA_FEATURES, no SEV VM types). Reviewed against Linux 6.15
    // `arch/x86/kvm/svm/sev.c` and QEMU 10.1 `target/i386/sev.c`; not run.
    let mut l = Launch::new(sev, mode).with_snp_policy_extra(extra);
    l.init2(&vmfd, plan.vmsa_features)?;
    report.done.push(format!(
        "KVM_SEV_INIT2 vmsa_features {:#x}",
        plan.vmsa_features.bits()
    ));
    // Memory and vCPUs (KVM_CREATE_VCPU must follow INIT2).
    let mut vm = crate::vm::Vm::with_vm(kvm, vmfd, config).map_err(Box::new)?;
    load(&vm)?;
    match mode {
        LaunchMode::SevEs => {
            let handle = l.launch_start(&vm.fd, plan.policy as u32)?;
            report
                .done
                .push(format!("KVM_SEV_LAUNCH_START handle {handle}"));
            for u in updates.iter().filter(|u| !u.is_vmsa()) {
                // QEMU: the data is in guest memory and encrypted in place, in plan order.
                let (mem, offset) = host_range(&vm, u.gpa, u.len)?;
                if let UpdateSource::Bytes(b) = u.source {
                    mem.write(offset, b).ok_or(LaunchError::OutsideMemory {
                        gpa: u.gpa,
                        len: u.len,
                        ram: config.ram_size,
                    })?;
                }
                let len = usize::try_from(u.len).unwrap_or(usize::MAX);
                l.launch_update_data(&vm.fd, mem, offset, len)?;
            }
            report.done.push(format!(
                "KVM_SEV_LAUNCH_UPDATE_DATA of {} updates",
                updates.iter().filter(|u| !u.is_vmsa()).count()
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
            // QEMU's guest CPUID for SNP (sev_snp_adjust_cpuid_features) on every vCPU; the
            // CPUID page is vCPU 0's.
            let cpuid = snp_adjust_cpuid(&vm)?;
            report.done.push(format!(
                "guest CPUID masked for SNP on every vCPU; the CPUID page holds vCPU 0's {} entries ({} not as set: KVM forced them)",
                cpuid.entries.len(),
                cpuid.kvm_changed.len()
            ));
            // Guest memory as guest_memfd slots (RAM, and the firmware when there is one).
            let _gmem = snp_private_slots(&vm)?;
            report
                .done
                .push("guest memory in private guest_memfd slots".into());
            l.snp_launch_start(&vm.fd, plan.policy)?;
            report.done.push(format!(
                "KVM_SEV_SNP_LAUNCH_START policy {:#x}",
                plan.policy
            ));
            for u in updates.iter().filter(|u| !u.is_vmsa()) {
                let page_type = u.page_type.unwrap_or(PageType::NORMAL);
                let mut buf = PageBuf::new(u.len)?;
                match u.source {
                    UpdateSource::Bytes(b) => buf.fill(b),
                    UpdateSource::Cpuid => {
                        let info = SnpCpuidInfo::from_entries(cpuid.entries.iter().copied())?;
                        buf.fill(&info.page());
                    }
                    UpdateSource::Loaded => {
                        let (mem, offset) = host_range(&vm, u.gpa, u.len)?;
                        mem.read(offset, buf.bytes_mut())
                            .ok_or(LaunchError::OutsideMemory {
                                gpa: u.gpa,
                                len: u.len,
                                ram: config.ram_size,
                            })?;
                    }
                    UpdateSource::Zero | UpdateSource::Vmsa { .. } => {}
                }
                set_private(&vm.fd, u.gpa, u.len)?;
                l.snp_launch_update(&vm.fd, u.gpa, buf.bytes_mut(), page_type.0)?;
            }
            report.done.push(format!(
                "KVM_SEV_SNP_LAUNCH_UPDATE of {} updates",
                updates.iter().filter(|u| !u.is_vmsa()).count()
            ));
            program_for_launch(&mut vm, vmsas)?;
            l.snp_launch_finish(&vm.fd, [0; 32])?;
            report.done.push(format!(
                "KVM_SEV_SNP_LAUNCH_FINISH (KVM measured {} VMSAs)",
                vmsas.len()
            ));
        }
    }
    Ok(())
}

/// Page-aligned host memory for `SNP_LAUNCH_UPDATE`'s `uaddr` (KVM wants it page aligned).
#[repr(C, align(4096))]
#[derive(
    Clone, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
)]
struct Page([u8; 4096]);

struct PageBuf(Vec<Page>);

impl PageBuf {
    fn new(len: u64) -> Result<Self, LaunchError> {
        let pages = usize::try_from(len.div_ceil(4096)).map_err(|_| LaunchError::Unaligned {
            addr: 0,
            len: usize::MAX,
        })?;
        Ok(Self(vec![Page([0; 4096]); pages]))
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        use zerocopy::IntoBytes;
        self.0.as_mut_bytes()
    }
    fn fill(&mut self, src: &[u8]) {
        let dst = self.bytes_mut();
        let n = src.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
    }
}

/// The guest memory mapping holding `[gpa, gpa + len)` and the offset of `gpa` in it.
fn host_range(
    vm: &crate::vm::Vm,
    gpa: u64,
    len: u64,
) -> Result<(&crate::vm::GuestMemory, usize), LaunchError> {
    let fits = |base: u64, mem: &crate::vm::GuestMemory| {
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
    Err(LaunchError::OutsideMemory {
        gpa,
        len,
        ram: vm.ram.len() as u64,
    })
}

/// The guest CPUID of an SNP launch: what the VMM set, and what vCPU 0 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpCpuid {
    /// vCPU 0's CPUID as KVM reports it after `KVM_SET_CPUID2` (`KVM_GET_CPUID2`): what the
    /// CPUID page holds (QEMU `snp_launch_update_cpuid` reads `first_cpu`'s).
    pub entries: Vec<CpuidEntry>,
    /// The entries KVM did not take as set: (set, held). Some KVMs force some leaves (the
    /// PVM-based KVM of the development machine keeps leaf 7.0 as it supports it).
    pub kvm_changed: Vec<(CpuidEntry, CpuidEntry)>,
}

/// Applies QEMU's SNP CPUID masking ([`adjust_cpuid_features`]) to every vCPU's CPUID
/// (`KVM_GET_CPUID2`, mask, `KVM_SET_CPUID2`) and reads vCPU 0's back for the CPUID page.
pub fn snp_adjust_cpuid(vm: &crate::vm::Vm) -> Result<SnpCpuid, LaunchError> {
    let err = |ioctl| {
        move |e: errno::Error| {
            LaunchError::Vm(Box::new(crate::vm::VmError::Cpuid { ioctl, source: e }))
        }
    };
    let mut out = SnpCpuid {
        entries: Vec::new(),
        kvm_changed: Vec::new(),
    };
    for v in &vm.vcpus {
        let mut c =
            v.fd.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(err("KVM_GET_CPUID2"))?;
        for e in c.as_mut_slice() {
            let mut ours = cpuid_from_kvm(e);
            adjust_cpuid_features(&mut ours);
            (e.eax, e.ebx, e.ecx, e.edx) = (ours.eax, ours.ebx, ours.ecx, ours.edx);
        }
        v.fd.set_cpuid2(&c).map_err(err("KVM_SET_CPUID2"))?;
        if v.index == 0 {
            let held =
                v.fd.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                    .map_err(err("KVM_GET_CPUID2"))?;
            out.entries = held.as_slice().iter().map(cpuid_from_kvm).collect();
            let set = c.as_slice().iter().map(cpuid_from_kvm);
            out.kvm_changed = set
                .filter_map(|s| {
                    let h = out
                        .entries
                        .iter()
                        .find(|h| (h.function, h.index) == (s.function, s.index))?;
                    (*h != s).then_some((s, *h))
                })
                .collect();
        }
    }
    Ok(out)
}

/// The core's view of a `struct kvm_cpuid_entry2`.
pub fn cpuid_from_kvm(e: &kvm_bindings::kvm_cpuid_entry2) -> CpuidEntry {
    CpuidEntry {
        function: e.function,
        index: e.index,
        flags: e.flags,
        eax: e.eax,
        ebx: e.ebx,
        ecx: e.ecx,
        edx: e.edx,
    }
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

/// Re-registers guest RAM (slot 0) and the firmware (slot 1, if any) as guest_memfd slots
/// (`KVM_CREATE_GUEST_MEMFD`, `KVM_SET_USER_MEMORY_REGION2` with `KVM_MEM_GUEST_MEMFD`),
/// keeping the shared mappings as their userspace addresses. The guest_memfds are returned
/// and must live as long as the VM.
fn snp_private_slots(vm: &crate::vm::Vm) -> Result<Vec<File>, LaunchError> {
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
    vm: &crate::vm::Vm,
    slot: u32,
    gpa: u64,
    mem: &crate::vm::GuestMemory,
    gmem: &File,
) -> Result<(), LaunchError> {
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
    let err = |ioctl| {
        move |e: errno::Error| LaunchError::PrivateMemory {
            ioctl,
            errno: KvmErrno(e.errno()),
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: memory_size 0 deletes the slot; no memory is handed to KVM.
    unsafe { vm.fd.set_user_memory_region(delete) }.map_err(err("KVM_SET_USER_MEMORY_REGION"))?;
    #[allow(unsafe_code)]
    // SAFETY: the slot is backed by `mem` (vm.ram or vm.flash), a live mapping of exactly
    // `memory_size` bytes owned by `vm`, and by `gmem`, a guest_memfd of the same size that the
    // caller keeps open while the VM lives; `vm` drops its VM fd before its memory.
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
    fn a_corrected_cpuid_page_is_reported_as_qemu_reports_it() {
        use vmsa_core::snp_cpuid::{CpuidEntry, SnpCpuidInfo};
        let leaf7 = CpuidEntry {
            function: 7,
            flags: 1,
            ebx: 0x219c_03a9,
            ..Default::default()
        };
        let provided = SnpCpuidInfo::from_entries([CpuidEntry::default(), leaf7]).unwrap();
        let mut corrected = provided.clone();
        corrected.entries[1].ebx = 0x219c_03ab;
        let e = LaunchError::CpuidRejected {
            gfn: 0x80a,
            provided: Box::new(provided.page()),
            corrected: Box::new(corrected.page()),
        };
        assert_eq!(
            e.to_string(),
            "the SEV firmware rejected the CPUID page at GFN 0x80a (INVALID_PARAM):\n  \
             CPUID validation failed for function 0x7, index: 0x0, provided: eax:0x00000000, \
             ebx: 0x219c03a9, ecx: 0x00000000, edx: 0x00000000, expected: eax:0x00000000, \
             ebx: 0x219c03ab, ecx: 0x00000000, edx: 0x00000000"
        );
        corrected.count = 1;
        let e = LaunchError::CpuidRejected {
            gfn: 0x80a,
            provided: Box::new(provided.page()),
            corrected: Box::new(corrected.page()),
        };
        assert!(
            e.to_string()
                .ends_with("count mismatch, provided: 2, expected: 1"),
            "{e}"
        );
        let mut garbage = [0u8; 4096];
        garbage[0] = 0xff;
        let e = LaunchError::CpuidRejected {
            gfn: 0x80a,
            provided: Box::new(provided.page()),
            corrected: Box::new(garbage),
        };
        assert!(e.to_string().contains("cannot be compared"), "{e}");
    }

    #[test]
    fn firmware_codes_are_named_or_kept() {
        assert_eq!(FwError(0xb).to_string(), "BAD_MEASUREMENT (0xb)");
        assert_eq!(FwError(0x99).to_string(), "unknown firmware status 0x99");
        assert_eq!(FwError::NO_FW_CALL.name(), Some("NO_FW_CALL"));
    }
}
