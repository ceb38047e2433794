//! `vmsa run` and the main job (`vmsa` with no arguments), through the real binary.
//!
//! The launch digests the main job prints are checked against sev-snp-measure 0.0.13 run on the
//! same built-in test firmware (when it is installed; `scripts/test.sh` installs it).
mod common;

use common::{TempDir, kvm_or_skip, vmsa_bin};
use std::path::PathBuf;
use std::process::Command;

/// The built-in test firmware in a scratch directory (removed when the directory drops).
fn testfw() -> (TempDir, PathBuf) {
    let dir = TempDir::new("testfw");
    let path = dir.write("testfw.bin", &vmsa_kvm::testfw::image());
    (dir, path)
}

fn digest_after<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
}

#[test]
fn main_job_shows_vmsas_digests_and_runs_four_vcpus() {
    let (code, out, err) = vmsa_bin(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0x178 rip              0xfff0"), "{out}");
    assert!(out.contains("0x310 rdx              0x800f12"), "{out}");
    let sev_es = digest_after(&out, "SEV-ES:");
    let snp = digest_after(&out, "SNP:");
    assert_eq!(sev_es.len(), 64);
    assert_eq!(snp.len(), 96);
    // The same digests from the reference peer, on the same image.
    let (_dir, fw) = testfw();
    let peer = common::peer_installed();
    for (mode, ours) in [("seves", sev_es), ("snp", snp)] {
        if !peer {
            break;
        }
        // Installed, the peer must run: a failure of it is a failure here, not a skip.
        let o = Command::new("sev-snp-measure")
            .args([
                "--mode",
                mode,
                "--vcpus",
                "4",
                "--vcpu-type",
                "EPYC-v4",
                "--ovmf",
            ])
            .arg(&fw)
            .output()
            .expect("sev-snp-measure runs");
        assert!(o.status.success(), "sev-snp-measure: {o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            ours,
            "{mode} digest vs sev-snp-measure"
        );
    }
    if kvm_or_skip("the run part of this test") {
        assert_eq!(out.matches("ended: halted (HLT)").count(), 4, "{out}");
        assert!(
            out.contains(
                "vCPU 0: programmed to start at 0xfffffff0 (CS base 0xffff0000 + RIP 0xfff0)"
            ),
            "{out}"
        );
        // Observed, not computed: the BSP's first exit is the test program's first OUT, 3 bytes
        // into its entry at 0xffffe000, reached from the reset vector's jump.
        assert!(
            out.contains("first exit at 0xffffe003 (CS 0xf000, base 0xffff0000, RIP 0xe003): OUT"),
            "{out}"
        );
        for i in 1..4 {
            assert!(
                out.contains(&format!(
                    "vCPU {i}: programmed to start at 0xfffef000 (CS base 0xfffe0000 + RIP 0xf000)"
                )),
                "{out}"
            );
        }
        assert_eq!(
            out.matches("first exit at 0xfffef003 (CS 0xf000, base 0xfffe0000, RIP 0xf003): OUT")
                .count(),
            3,
            "{out}"
        );
        // Every vCPU reports every register as it was programmed.
        assert_eq!(
            out.matches("registers reported on port 0xe0: 27 of 27 as programmed")
                .count(),
            4,
            "{out}"
        );
        // EDX reports the EPYC-v4 signature, CR0 0x10 and CR4 0x40 as KVM shapes them.
        assert!(
            out.contains("0x0 0x0 0x0 0x800f12 0x0 0x0 0x0 0x0 0x10 0x0 0x0 0x40"),
            "{out}"
        );
    } else {
        assert!(out.contains("no /dev/kvm"), "{out}");
    }
}

#[test]
fn run_ovmf_reports_where_each_vcpu_started_and_how_it_exited() {
    if !kvm_or_skip("the run part of this test") {
        return;
    }
    let (_dir, fw) = testfw();
    let (code, out, err) = vmsa_bin(&[
        "run",
        "--ovmf",
        fw.to_str().unwrap(),
        "--vcpus",
        "2",
        "--strict",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("vCPU 0: programmed to start at 0xfffffff0"),
        "{out}"
    );
    assert!(
        out.contains("vCPU 1: programmed to start at 0xfffef000"),
        "{out}"
    );
    assert!(out.contains("first exit at 0xffffe003"), "{out}");
    assert!(out.contains("first exit at 0xfffef003"), "{out}");
    assert_eq!(
        out.matches("ended: halted (HLT) after 29 exits; last exit: HLT")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("efer             forced by KVM to 0x0"),
        "{out}"
    );
}

#[test]
fn run_real_ovmf_starts_at_the_reset_vector() {
    let ovmf = "/usr/share/OVMF/OVMF_CODE.fd";
    if !common::require::file("ovmf", ovmf) {
        return;
    }
    if !kvm_or_skip("the run part of this test") {
        return;
    }
    let (_, out, err) = vmsa_bin(&["run", "--ovmf", ovmf, "--vcpus", "2", "--timeout-ms", "500"]);
    assert!(
        out.contains("vCPU 0: programmed to start at 0xfffffff0 (CS base 0xffff0000 + RIP 0xfff0)"),
        "{out}\n{err}"
    );
    // Observed: the BSP ran OVMF's code from the reset vector, so its first exit is inside the
    // image (the 2 MiB below 4 GiB), wherever OVMF first touches a port.
    let first = out
        .lines()
        .skip_while(|l| !l.starts_with("vCPU 0:"))
        .find_map(|l| l.trim().strip_prefix("first exit at 0x"))
        .and_then(|rest| u64::from_str_radix(rest.split_whitespace().next()?, 16).ok())
        .unwrap_or_else(|| panic!("no first exit for vCPU 0: {out}"));
    assert!(
        (0xffe0_0000..0x1_0000_0000).contains(&first),
        "{first:#x}: {out}"
    );
    // OvmfX64's SEV-ES reset block puts the APs at 0x80b004.
    assert!(
        out.contains("vCPU 1: programmed to start at 0x80b004 (CS base 0x800000 + RIP 0xb004)"),
        "{out}"
    );
    assert_eq!(out.matches("  ended: ").count(), 2, "{out}");
}

#[test]
fn launch_without_sev_hardware_names_what_is_missing() {
    if std::path::Path::new("/dev/sev").exists() {
        eprintln!("SKIPPED: /dev/sev exists; this test covers the failure path");
        return;
    }
    let (_dir, fw) = testfw();
    for mode in ["snp", "sev-es"] {
        let (code, out, err) = vmsa_bin(&[
            "run",
            "--ovmf",
            fw.to_str().unwrap(),
            "--vcpus",
            "4",
            "--launch",
            mode,
        ]);
        assert_eq!(code, 1, "{out}\n{err}");
        assert!(out.contains("ok: preflight"), "{out}");
        assert!(out.contains("FAILED: no /dev/sev"), "{out}");
        assert!(out.contains("were closed"), "{out}");
    }
    // A policy KVM would refuse is refused before anything is opened.
    let (code, out, _) = vmsa_bin(&[
        "run",
        "--ovmf",
        fw.to_str().unwrap(),
        "--launch",
        "snp",
        "--policy",
        "0x10000",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED: SNP policy 0x10000: bit 17"), "{out}");
}

/// `vmsa run --launch snp --id-block`: the pair `vmsa id-block` made for the same launch passes
/// the checks and the launch goes on to the missing hardware; one for another launch, or the
/// author key enabled without one, is refused before anything is opened.
#[test]
fn launch_with_an_id_block_checks_it_first() {
    if std::path::Path::new("/dev/sev").exists() {
        eprintln!("SKIPPED: /dev/sev exists; this test covers the failure path");
        return;
    }
    let (_dir, fw) = testfw();
    let fw = fw.to_str().unwrap();
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/id-sec1.pem");
    let pair = |vcpus: &str| {
        let (code, out, err) = vmsa_bin(&[
            "id-block",
            "--id-key",
            key,
            "--",
            "--mode",
            "snp",
            "--vcpus",
            vcpus,
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            fw,
        ]);
        assert_eq!(code, 0, "{err}");
        out.lines().next().unwrap().to_owned()
    };
    let run = |pair: &str, extra: &[&str]| {
        let mut a = vec![
            "run",
            "--ovmf",
            fw,
            "--vcpus",
            "2",
            "--launch",
            "snp",
            "--id-block",
            pair,
        ];
        a.extend_from_slice(extra);
        vmsa_bin(&a)
    };
    let (code, out, _) = run(&pair("2"), &["--host-data", &"ab".repeat(32)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ok: ID block: launch digest and policy 0x30000 match"),
        "{out}"
    );
    assert!(out.contains("FAILED: no /dev/sev"), "{out}");
    let (code, out, _) = run(&pair("3"), &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAILED: ID block: the ID block binds launch digest"),
        "{out}"
    );
    assert!(!out.contains("/dev/sev"), "{out}");
    let (code, out, _) = run(&pair("2"), &["--author-key-enabled"]);
    assert_eq!(code, 1);
    assert!(out.contains("AUTHOR_KEY_EN without an author key"), "{out}");
}
