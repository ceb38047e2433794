//! The SEV-ES and SEV-SNP launch through `KVM_MEMORY_ENCRYPT_OP`.
//!
//! [`launch`] launches one core [`vmsa_core::launch::Launch`]: the core computed, once, the
//! VMSAs, the ordered updates, every refusal and the digest; this module only sends them, in
//! the firmware's order, through an explicit state machine ([`LaunchSession`]):
//!
//! ```text
//! SEV-ES: New ─INIT2→ Initialized ─LAUNCH_START→ Started ─LAUNCH_UPDATE_DATA*→ Started
//!             ─LAUNCH_UPDATE_VMSA→ VmsasEncrypted ─LAUNCH_MEASURE→ Measured ─LAUNCH_FINISH→ Finished
//! SNP:    New ─INIT2→ Initialized ─SNP_LAUNCH_START→ Started ─SNP_LAUNCH_UPDATE*→ Started
//!             ─SNP_LAUNCH_FINISH (measures every VMSA)→ Finished
//! ```
//!
//! A failed command moves the session to [`LaunchState::Failed`]; nothing more is sent, and
//! dropping it closes the VM (the kernel tears the SEV context down with it).
//!
//! | module | concern | uses |
//! |---|---|---|
//! | `error` | [`SevError`], [`FwError`], [`KvmErrno`] | — |
//! | `session` | the state machine, `/dev/sev`, the VM type, what KVM supports | `error` |
//! | `memory` | guest_memfd slots, private ranges, page buffers | `error` |
//! | `cpuid` | the SNP guest CPUID and the CPUID page's entries | `error` |
//! | `walk` | [`launch`]: the pure checks, then the commands | all of the above |
//!
//! This module holds the vocabulary they share ([`Command`], [`LaunchState`]).
//!
//! # Who refuses what
//!
//! Every refusal that needs no kernel happens before the first ioctl, and in this order:
//!
//! 1. [`vmsa_core::launch::Launch::new`], in the caller: the firmware, the configuration, and
//!    what KVM or QEMU refuse of the VMSAs ([`vmsa_core::launch::LaunchError`]; here
//!    [`SevError::Launch`] when [`launch`] finds a launch it cannot send, plain SEV say).
//! 2. The core preflight with the guest policy ([`vmsa_core::kvm::Preflight`]):
//!    [`SevError::Refused`] with the core's [`vmsa_core::kvm::Refusal`].
//! 3. The VM: [`SevError::VcpuCount`], [`SevError::OutsideMemory`].
//!
//! Then the host: [`SevError::NoSevDevice`], [`SevError::VmsaFeatures`] (and the preflight
//! again, with what KVM supports), [`SevError::CreateVm`], the VM's own
//! [`crate::vm::VmError`] ([`SevError::Vm`]). A command refused by the state machine sends
//! nothing ([`SevError::WrongState`]); a command KVM or the firmware fails is
//! [`SevError::MemoryEncryptOp`] — the command, the firmware status, the errno as its source —
//! except a CPUID page the firmware corrects ([`SevError::CpuidRejected`]).
//!
//! **Hardware-only code.** Without SEV hardware (as on the machine this crate is developed on)
//! every command fails; the tests cover that path, and the uapi structures' sizes and offsets
//! are asserted against upstream. The success paths — the handle written back by
//! LAUNCH_START, the SNP_LAUNCH_UPDATE partial-progress loop, the measurement blob — were
//! reviewed against `sev.c` but have not run on hardware.

mod cpuid;
mod error;
mod memory;
mod session;
mod walk;

pub use cpuid::{SnpCpuid, cpuid_from_kvm, snp_adjust_cpuid};
pub use error::{FwError, KvmErrno, SevError};
pub use memory::{create_guest_memfd, set_private};
pub use session::{
    KVM_X86_SNP_POLICY_BITS, LaunchSession, Measurement, SNP_POLICY_DEFAULT, SnpFinish, SnpIdBlock,
    create_vm, open_sev, snp_policy_extra, supported_vmsa_features, vm_type,
};
pub use walk::{LaunchReport, launch, launch_with};

use std::fmt;

/// A `KVM_MEMORY_ENCRYPT_OP` command (`enum sev_cmd_id`, uapi `kvm.h`), with what it was sent
/// for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Command {
    /// `KVM_SEV_INIT2`.
    Init2,
    /// SEV-ES `KVM_SEV_LAUNCH_START`.
    LaunchStart,
    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_DATA`.
    LaunchUpdateData {
        /// Bytes encrypted in place.
        len: usize,
    },
    /// SEV-ES `KVM_SEV_LAUNCH_UPDATE_VMSA`.
    LaunchUpdateVmsa,
    /// SEV-ES `KVM_SEV_LAUNCH_MEASURE`.
    LaunchMeasure,
    /// SEV-ES `KVM_SEV_LAUNCH_FINISH`.
    LaunchFinish,
    /// `KVM_SEV_SNP_LAUNCH_START`.
    SnpLaunchStart,
    /// `KVM_SEV_SNP_LAUNCH_UPDATE`.
    SnpLaunchUpdate {
        /// The first GFN not done.
        gfn: u64,
        /// The page type (`KVM_SEV_SNP_PAGE_TYPE_*`).
        page_type: u8,
    },
    /// `KVM_SEV_SNP_LAUNCH_FINISH`.
    SnpLaunchFinish,
}

impl Command {
    /// The command id (`enum sev_cmd_id`).
    pub const fn id(self) -> u32 {
        use kvm_bindings as b;
        match self {
            Self::Init2 => b::sev_cmd_id_KVM_SEV_INIT2,
            Self::LaunchStart => b::sev_cmd_id_KVM_SEV_LAUNCH_START,
            Self::LaunchUpdateData { .. } => b::sev_cmd_id_KVM_SEV_LAUNCH_UPDATE_DATA,
            Self::LaunchUpdateVmsa => b::sev_cmd_id_KVM_SEV_LAUNCH_UPDATE_VMSA,
            Self::LaunchMeasure => b::sev_cmd_id_KVM_SEV_LAUNCH_MEASURE,
            Self::LaunchFinish => b::sev_cmd_id_KVM_SEV_LAUNCH_FINISH,
            Self::SnpLaunchStart => b::sev_cmd_id_KVM_SEV_SNP_LAUNCH_START,
            Self::SnpLaunchUpdate { .. } => b::sev_cmd_id_KVM_SEV_SNP_LAUNCH_UPDATE,
            Self::SnpLaunchFinish => b::sev_cmd_id_KVM_SEV_SNP_LAUNCH_FINISH,
        }
    }

    /// The uapi name: `KVM_SEV_INIT2`, `KVM_SEV_SNP_LAUNCH_UPDATE`…
    pub const fn name(self) -> &'static str {
        match self {
            Self::Init2 => "KVM_SEV_INIT2",
            Self::LaunchStart => "KVM_SEV_LAUNCH_START",
            Self::LaunchUpdateData { .. } => "KVM_SEV_LAUNCH_UPDATE_DATA",
            Self::LaunchUpdateVmsa => "KVM_SEV_LAUNCH_UPDATE_VMSA",
            Self::LaunchMeasure => "KVM_SEV_LAUNCH_MEASURE",
            Self::LaunchFinish => "KVM_SEV_LAUNCH_FINISH",
            Self::SnpLaunchStart => "KVM_SEV_SNP_LAUNCH_START",
            Self::SnpLaunchUpdate { .. } => "KVM_SEV_SNP_LAUNCH_UPDATE",
            Self::SnpLaunchFinish => "KVM_SEV_SNP_LAUNCH_FINISH",
        }
    }
}

impl fmt::Display for Command {
    /// The name, and what it was sent for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match *self {
            Self::LaunchUpdateData { len } => write!(f, " of {len:#x} bytes"),
            Self::SnpLaunchUpdate { gfn, page_type } => {
                write!(f, " at GFN {gfn:#x} (page type {page_type})")
            }
            _ => Ok(()),
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
