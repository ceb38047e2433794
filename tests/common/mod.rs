//! Shared by the integration tests (`mod common;`): the fixtures, checks for what a test needs
//! (`require`: SKIPPED on stderr when one is missing, a failure under `VMSA_REQUIRE`) and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod require;

/// A file of sev-snp-measure's fixtures (`tests/data/sev-snp-measure`, see TESTING.md).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sev-snp-measure")
        .join(name)
}

/// Runs the `vmsa` binary with `args`: exit code (-1 if killed), stdout and stderr.
pub fn vmsa_bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args)
        .output()
        .expect("run vmsa");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether the reference peer sev-snp-measure runs (dependency `peer`, see [`require`]).
pub fn peer_installed() -> bool {
    let ok = Command::new("sev-snp-measure")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    require::available(
        "peer",
        ok,
        "sev-snp-measure not installed (pip install sev-snp-measure==0.0.13): peer part",
    )
}

/// Whether `/dev/kvm` exists (dependency `kvm`, see [`require`]).
pub fn kvm_or_skip(what: &str) -> bool {
    require::kvm(what)
}

/// A new empty scratch directory (unique per test binary, process and call), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/vmsa-<test binary>-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "vmsa-{}-{tag}-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    /// Writes `bytes` to the file `name` in this directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every vCPU's launch VMSA of an OVMF image, from the core's one entry point
/// ([`vmsa_core::launch::Launch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmsas(pub Vec<vmsa_core::launch::LaunchVmsa>);

impl Vmsas {
    /// vCPU 0's page.
    pub fn bsp(&self) -> &vmsa_core::Vmsa {
        &self.0[0].vmsa
    }
    /// vCPU 1's page (every AP's), if there is one.
    pub fn ap(&self) -> Option<&vmsa_core::Vmsa> {
        self.0.get(1).map(|v| &v.vmsa)
    }
    /// Every vCPU's page with its index.
    pub fn pages(&self) -> impl Iterator<Item = (u32, &vmsa_core::Vmsa)> {
        self.0.iter().map(|v| (v.cpu_index, &v.vmsa))
    }
}

/// The launch VMSAs of `fw` under `cfg`, or why it cannot launch.
pub fn launch_vmsas(
    fw: &vmsa_core::ovmf::OvmfImage<'_>,
    cfg: &vmsa_core::launch::LaunchConfig,
) -> Result<Vmsas, vmsa_core::launch::LaunchError> {
    let fw = vmsa_core::launch::Firmware::Ovmf(*fw);
    let launch = vmsa_core::launch::Launch::new(&fw, cfg)?;
    Ok(Vmsas(launch.vmsas().collect::<Result<_, _>>()?))
}

/// Compares `actual` with the snapshot file `path` (a golden output made by our own code).
///
/// A snapshot cannot bless itself: with `VMSA_REGEN=1` a difference writes `path` + `.new`
/// beside it and the test still fails, so a person reviews and renames it; under `CI` the
/// switch is refused. A missing snapshot is written as `.new` too, and fails.
pub fn snapshot(path: &Path, actual: &str) {
    let regen = std::env::var_os("VMSA_REGEN").is_some();
    assert!(
        !(regen && std::env::var_os("CI").is_some()),
        "VMSA_REGEN is refused under CI: snapshots are reviewed by a person"
    );
    let want = std::fs::read_to_string(path).ok();
    if want.as_deref() == Some(actual) {
        return;
    }
    let new = path.with_extension(format!(
        "{}.new",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    if regen || want.is_none() {
        std::fs::write(&new, actual).unwrap();
        panic!(
            "{} {}: wrote {}; review it (diff -u) and rename it over the snapshot",
            path.display(),
            if want.is_none() {
                "is missing"
            } else {
                "differs"
            },
            new.display()
        );
    }
    assert_eq!(
        actual,
        want.unwrap_or_default(),
        "{} differs (VMSA_REGEN=1 writes the new output beside it as .new)",
        path.display()
    );
}

/// The seed of a test that draws its inputs at random: `$var` when set (to replay a run), else
/// the clock; printed, so that a failure can be replayed.
pub fn random_seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{var}={seed}");
    seed
}

/// The next number of a xorshift64 sequence.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// sev-snp-measure 0.0.13's digest of the launch of `ovmf` with its pages patched: `fpu_zero` "aps" or "all" zeroes MXCSR
/// (0x408) and FCW (0x410), `sev_features` replaces 0x3b0.
pub fn peer_patched(
    ovmf: &str,
    mode: &str,
    vcpus: u32,
    sig: u32,
    fpu_zero: &str,
    sev_features: u64,
) -> String {
    let script = r#"
import sys
from sevsnpmeasure import guest, vmsa
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType
mode, vcpus, sig, ovmf, fpu_zero, feats = sys.argv[1:7]
orig = vmsa.VMSA.pages
def pages(self, n):
    for i, p in enumerate(orig(self, n)):
        p = bytearray(p)
        if fpu_zero == "all" or (fpu_zero == "aps" and i > 0):
            p[0x408:0x40c] = bytes(4)
            p[0x410:0x412] = bytes(2)
        p[0x3b0:0x3b8] = int(feats, 0).to_bytes(8, "little")
        yield bytes(p)
vmsa.VMSA.pages = pages
m = SevMode.SEV_SNP if mode == "snp" else SevMode.SEV_ES
print(guest.calc_launch_digest(m, int(vcpus), int(sig, 0), ovmf, None, None, None, int(feats, 0)).hex())
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            mode,
            &vcpus.to_string(),
            &format!("{sig:#x}"),
            ovmf,
            fpu_zero,
            &format!("{sev_features:#x}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
