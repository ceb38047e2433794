//! `VMSA_REQUIRE`: one switch that turns a missing dependency from a skip into a failure.
//!
//! A comma list of `kvm` (`/dev/kvm`), `qemu` (`qemu-system-x86_64`), `peer` (sev-snp-measure
//! 0.0.13), `ovmf` (Debian's `ovmf` images) and `avx2` (the multi-buffer hashers' fast path), or
//! `all`. `scripts/test.sh` sets all of them, so CI on a machine that lacks one fails loudly;
//! elsewhere a test whose dependency is missing says SKIPPED on stderr and passes the part it
//! can run. Shared by the workspace's and the core's integration tests (`#[path]`).

/// Whether `VMSA_REQUIRE` names `dep` (or `all`).
pub fn required(dep: &str) -> bool {
    std::env::var("VMSA_REQUIRE")
        .is_ok_and(|v| v.split(',').any(|d| d.trim() == dep || d.trim() == "all"))
}

/// `present`, after saying SKIPPED for `what` when it is not; a failure instead when
/// `VMSA_REQUIRE` names `dep`.
#[track_caller]
pub fn available(dep: &str, present: bool, what: &str) -> bool {
    if !present {
        assert!(
            !required(dep),
            "VMSA_REQUIRE names {dep}, which is missing: {what}"
        );
        eprintln!("SKIPPED: {what} (VMSA_REQUIRE={dep} makes this a failure)");
    }
    present
}

/// Whether the file `path` exists (dependency `dep`), as [`available`].
#[track_caller]
pub fn file(dep: &str, path: &str) -> bool {
    let hint = match dep {
        "ovmf" => " (apt-get install ovmf)",
        _ => "",
    };
    available(
        dep,
        std::path::Path::new(path).exists(),
        &format!("{path} not installed{hint}"),
    )
}

/// Whether `/dev/kvm` exists, as [`available`] (`what`: the part that needs it).
#[track_caller]
pub fn kvm(what: &str) -> bool {
    available(
        "kvm",
        std::path::Path::new("/dev/kvm").exists(),
        &format!("no /dev/kvm ({what})"),
    )
}

/// Whether `qemu-system-x86_64` runs, as [`available`].
#[track_caller]
pub fn qemu() -> bool {
    let ok = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    available(
        "qemu",
        ok,
        "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)",
    )
}
