//! What Linux KVM does to a VMSA, and what it refuses: the model every consumer of a launch
//! shares.
//!
//! - [`refusal`]: the one source of "KVM (or QEMU in front of it) would refuse this" — vCPU
//!   counts, VMSA GPA, SNP_ACTIVE, features equal on every vCPU, what `KVM_SEV_INIT2` takes,
//!   DR7, the guest policy.
//! - [`sync`]: `sev_es_sync_vmsa` — the page KVM builds from the registers a VMM programmed.
//! - [`fidelity`]: whether KVM would reproduce a given VMSA, field by field.
//! - [`readback`]: what `KVM_GET_SREGS` reports for segments KVM holds (`svm_get_segment`).
//! - [`preflight`]: every rule above checked over all vCPUs before the first ioctl, and the
//!   `KVM_SEV_INIT2` parameters they give.

pub mod fidelity;
pub mod preflight;
pub mod readback;
pub mod refusal;
pub mod sync;

pub use fidelity::{Fidelity, FidelityParams, FieldCheck, Origin, VmmPath, check_vmsa};
pub use preflight::{InitParams, Preflight, SnpPolicy};
pub use readback::{SegmentRegister, SregsReadBack, read_back};
pub use refusal::Refusal;
pub use sync::{KvmParams, SyncInputs, VmInit, sync_vmsa, sync_with};
