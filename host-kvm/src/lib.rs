//! `vmsa-kvm`: programs real KVM vCPUs from VMSAs, reads them back, runs them, and drives the
//! SEV-ES/SNP launch sequence. The only crate of the workspace that talks to the kernel, and
//! the only one that opts into `unsafe` (module by module, each with its reason).
//!
//! ```
//! use vmsa_kvm::{VcpuCaps, VcpuState};
//!
//! // KVM's own reset state, split into what the vCPU ioctls take, then back.
//! let vmsa = vmsa_core::reset::kvm_reset();
//! let (state, report) = VcpuState::from_vmsa(&vmsa, &VcpuCaps::minimal());
//! assert!(report.is_exact(), "{report}");
//! assert_eq!(&state.to_vmsa().unwrap(), report.expected());
//! ```
//!
//! The modules, bottom up (imports point down):
//!
//! | module | what |
//! |---|---|
//! | [`program`] | what became of each VMSA field on its way into a vCPU ([`ProgramReport`]) |
//! | [`state`] | a VMSA as the vCPU ioctl structures, and back; pure |
//! | [`vcpu`] | the vCPU ioctls that apply and read a [`VcpuState`] |
//! | [`vm`] | a VM: guest memory, the firmware at 4 GiB, IGVM loading, vCPUs, the run loop |
//! | [`sev`] | the SEV-ES/SNP launch of a core [`vmsa_core::launch::Launch`] |
//! | [`testfw`] | the built-in test firmware the tests and `vmsa run` boot |
//!
//! An SEV launch is computed by the core, once, and sent here:
//!
//! ```no_run
//! use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
//! use vmsa_core::ovmf::OvmfImage;
//! use vmsa_core::reset::VmmType;
//! use vmsa_core::{CpuSignature, SevMode};
//! use vmsa_kvm::{sev, testfw, VmConfig};
//!
//! let image = testfw::image();
//! let firmware = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
//! let cfg = LaunchConfig::new(SevMode::Snp, 2, CpuSignature(0x00a0_0f11), VmmType::Qemu);
//! let launch = Launch::new(&firmware, &cfg).unwrap();
//! let vm = VmConfig { ram_size: testfw::RAM_SIZE, firmware: image.clone(), vcpus: 2 };
//! let (report, result) = sev::launch(&launch, &vm, sev::SNP_POLICY_DEFAULT);
//! for step in &report.done {
//!     println!("ok: {step}");
//! }
//! result.unwrap();
//! ```
#![cfg(target_os = "linux")]
#![deny(missing_docs, missing_debug_implementations)]
// Every lint opt-out is an `#[expect]`, so that a stale one is caught.
#![warn(clippy::allow_attributes)]

pub mod program;
pub mod sev;
pub mod state;
pub mod testfw;
pub mod vcpu;
pub mod vm;

pub use program::{FieldStatus, ProgramReport};
pub use sev::{LaunchReport, SevError};
pub use state::{VcpuCaps, VcpuState};
pub use vm::{Vm, VmConfig, VmError};
