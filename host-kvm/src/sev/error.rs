//! Why an SEV launch stopped: [`SevError`], the firmware status codes ([`FwError`]) and the
//! errno of `KVM_MEMORY_ENCRYPT_OP` with what it means there ([`KvmErrno`]). The bottom of
//! [`super`]: every other module of the launch uses it, it uses none of them.

use super::{Command, LaunchState};
use std::fmt;
use vmm_sys_util::errno;
use vmsa_core::SevMode;
use vmsa_core::kvm::Refusal;
use vmsa_core::snp_cpuid::{CpuidPageError, SnpCpuidInfo, mismatches};

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

/// An errno from KVM in the SEV code paths, displayed with what it means there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmErrno(pub i32);

impl From<errno::Error> for KvmErrno {
    fn from(e: errno::Error) -> Self {
        Self(e.errno())
    }
}

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

impl std::error::Error for KvmErrno {}

/// An SEV launch stopped; nothing after the failed step was sent. See [`super`] for which
/// layer refuses what.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SevError {
    /// The core refused the launch itself (firmware, configuration, or something KVM or QEMU
    /// would refuse): it cannot happen anywhere.
    #[error(transparent)]
    Launch(#[from] vmsa_core::launch::LaunchError),
    /// The core preflight refused the launch with this policy, or with the VMSA features this
    /// KVM supports: KVM would refuse it, so nothing was sent.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The VM is configured for another number of vCPUs than the launch has.
    #[error("the launch has {launch} vCPUs, the VM {vm}")]
    VcpuCount {
        /// vCPUs of the launch.
        launch: u32,
        /// vCPUs of the VM configuration.
        vm: usize,
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
    /// The ID block cannot go with this launch (checked before anything is sent).
    #[error("ID block: {0}")]
    IdBlock(String),
    /// `/dev/sev` could not be opened.
    #[error(
        "no /dev/sev: {0} (the SEV firmware device is missing: no SEV hardware, or the ccp/psp driver is not loaded)"
    )]
    NoSevDevice(#[source] std::io::Error),
    /// `KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES)` on `/dev/kvm` failed.
    #[error(
        "KVM does not report its supported VMSA features (KVM_GET_DEVICE_ATTR KVM_X86_SEV_VMSA_FEATURES on /dev/kvm: {0}); the kernel predates KVM_SEV_INIT2 or has no SEV support"
    )]
    VmsaFeatures(#[source] KvmErrno),
    /// `KVM_CREATE_VM` with the SEV-ES/SNP type failed.
    #[error(
        "KVM_CREATE_VM with type {vm_type} ({mode}) failed: {source} (this KVM does not offer {mode} VMs)"
    )]
    CreateVm {
        /// The type.
        vm_type: u64,
        /// The mode.
        mode: SevMode,
        /// errno.
        #[source]
        source: KvmErrno,
    },
    /// A command was asked for in the wrong state; nothing was sent.
    #[error("{} is not allowed in state {state:?} (the SEV firmware's order)", command.name())]
    WrongState {
        /// The command.
        command: Command,
        /// The state.
        state: LaunchState,
    },
    /// A `KVM_MEMORY_ENCRYPT_OP` command failed (openvmm's `MemoryEncryptOp`): the command,
    /// the SEV firmware's status, and the errno.
    #[error("{command} failed: {source}; firmware status {firmware_error}")]
    MemoryEncryptOp {
        /// The command, and what it was sent for.
        command: Command,
        /// The firmware status KVM copied back (`NO_FW_CALL` if KVM failed before the firmware).
        firmware_error: FwError,
        /// errno.
        #[source]
        source: KvmErrno,
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
    /// guest_memfd memory could not be set up (`KVM_CREATE_GUEST_MEMFD`,
    /// `KVM_SET_USER_MEMORY_REGION2`, `KVM_SET_MEMORY_ATTRIBUTES`).
    #[error("{ioctl} failed: {source}")]
    PrivateMemory {
        /// The ioctl.
        ioctl: &'static str,
        /// errno.
        #[source]
        source: KvmErrno,
    },
    /// Data for LAUNCH_UPDATE/SNP_LAUNCH_UPDATE is not page-sized or page-aligned.
    #[error("launch data at {addr:#x} of {len:#x} bytes must be 4 KiB aligned and sized")]
    Unaligned {
        /// Address.
        addr: u64,
        /// Length.
        len: usize,
    },
    /// Setting up the VM's memory or vCPUs, or programming them, failed.
    #[error(transparent)]
    Vm(#[from] Box<crate::vm::VmError>),
}

impl From<crate::vm::VmError> for SevError {
    fn from(e: crate::vm::VmError) -> Self {
        Self::Vm(Box::new(e))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;
    use vmsa_core::kvm::SnpPolicy;

    #[test]
    fn preflight_refusals_keep_the_cores_words() {
        let e = SevError::from(SnpPolicy(0x1_0000).check(0).unwrap_err());
        assert!(
            e.to_string().starts_with("SNP policy 0x10000: bit 17"),
            "{e}"
        );
    }

    #[test]
    fn every_command_fails_with_one_shape() {
        let e = SevError::MemoryEncryptOp {
            command: Command::SnpLaunchUpdate {
                gfn: 0x80a,
                page_type: 6,
            },
            firmware_error: FwError::INVALID_PARAM,
            source: KvmErrno(libc::EIO),
        };
        assert_eq!(
            e.to_string(),
            "KVM_SEV_SNP_LAUNCH_UPDATE at GFN 0x80a (page type 6) failed: Input/output error \
             (os error 5) — EIO: the SEV firmware failed the command (see the firmware status); \
             firmware status INVALID_PARAM (0x16)"
        );
        // The errno stays in the chain.
        let source = e.source().and_then(|s| s.downcast_ref::<KvmErrno>());
        assert_eq!(source, Some(&KvmErrno(libc::EIO)));
        let data = Command::LaunchUpdateData { len: 0x1000 };
        assert_eq!(
            data.to_string(),
            "KVM_SEV_LAUNCH_UPDATE_DATA of 0x1000 bytes"
        );
        assert_eq!(data.id(), 3);
        assert_eq!(Command::Init2.id(), 22);
        assert_eq!(Command::SnpLaunchFinish.id(), 102);
    }

    #[test]
    fn a_corrected_cpuid_page_is_reported_as_qemu_reports_it() {
        use vmsa_core::snp_cpuid::CpuidEntry;
        let leaf7 = CpuidEntry {
            function: 7,
            flags: 1,
            ebx: 0x219c_03a9,
            ..Default::default()
        };
        let provided = SnpCpuidInfo::from_entries([CpuidEntry::default(), leaf7]).unwrap();
        let mut corrected = provided.clone();
        corrected.entries[1].ebx = 0x219c_03ab;
        let e = SevError::CpuidRejected {
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
        let e = SevError::CpuidRejected {
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
        let e = SevError::CpuidRejected {
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
