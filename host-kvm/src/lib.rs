//! `vmsa-kvm`: programs real KVM vCPUs from VMSAs, reads them back, runs them, and drives the
//! SEV-ES/SNP launch sequence. The only crate of the workspace that talks to the kernel.
#![cfg(target_os = "linux")]

pub mod fidelity;
pub mod state;

pub use fidelity::{Fidelity, FieldStatus};
pub use state::{VcpuCaps, VcpuState};
pub mod vcpu;
pub mod vm;

pub use vm::{Vm, VmConfig, VmError};
pub mod sev;
pub mod testfw;
