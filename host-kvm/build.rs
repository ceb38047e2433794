//! Sets the cfgs that gate the hardware tests: `has_kvm` when `/dev/kvm` exists, `has_sev` when
//! `/dev/sev` exists, or either when `VMSA_REQUIRE` (a comma list such as `kvm,qemu,peer`)
//! names it — then a test that needs the device runs, and fails loudly where it is missing,
//! instead of showing as ignored (as kvm-ioctls' `build.rs` does for `has_sev`).

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_kvm)");
    println!("cargo::rustc-check-cfg=cfg(has_sev)");
    println!("cargo::rerun-if-env-changed=VMSA_REQUIRE");
    println!("cargo::rerun-if-changed=build.rs");
    let required = std::env::var("VMSA_REQUIRE").unwrap_or_default();
    let requires = |what: &str| {
        required
            .split(',')
            .any(|r| r.trim().eq_ignore_ascii_case(what) || (what == "kvm" && r.trim() == "all"))
    };
    for (cfg, device, name) in [
        ("has_kvm", "/dev/kvm", "kvm"),
        ("has_sev", "/dev/sev", "sev"),
    ] {
        let present = Path::new(device).exists();
        // Cargo treats a missing watched path as changed on every build (and would rebuild the
        // crate each time), so only a device that exists is watched; one that appears later is
        // seen after `touch host-kvm/build.rs`, or named in VMSA_REQUIRE.
        if present {
            println!("cargo::rerun-if-changed={device}");
        }
        if present || requires(name) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
