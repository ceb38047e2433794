//! Shared by the core's integration tests (`mod common;`): the fixtures and the OVMF launch
//! VMSAs through the core's one entry point.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

#[path = "../../../tests/common/require.rs"]
pub mod require;
use vmsa_core::launch::{Firmware, Launch, LaunchConfig, LaunchError, LaunchVmsa};
use vmsa_core::ovmf::OvmfImage;

/// A file of sev-snp-measure's fixtures (`tests/data/sev-snp-measure`, see TESTING.md).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/sev-snp-measure")
        .join(name)
}

/// Every vCPU's launch VMSA of `fw` under `cfg` ([`Launch::new`], then [`Launch::vmsas`]).
pub fn launch_vmsas(
    fw: &OvmfImage<'_>,
    cfg: &LaunchConfig,
) -> Result<Vec<LaunchVmsa>, LaunchError> {
    let fw = Firmware::Ovmf(*fw);
    let launch = Launch::new(&fw, cfg)?;
    launch.vmsas().collect()
}

/// Whether `/dev/kvm` exists (dependency `kvm`, see [`require`]).
pub fn kvm_or_skip(what: &str) -> bool {
    require::kvm(what)
}
