//! Versioned host profiles: `vmsa profiles`, and `--host-kernel` / `--qemu` on `measure` and
//! `reset`. The digests are checked against sev-snp-measure 0.0.13's own digest machinery with
//! the VMSA bytes the profile changes patched into its pages (its `VMSA.pages`), so the peer's
//! page walk, not ours, says what the changed pages measure to.
mod common;

use common::{TempDir, fixture, peer_installed, vmsa_bin};

fn ovmf() -> String {
    fixture("ovmf_AmdSev_suffix.bin")
        .to_str()
        .unwrap()
        .to_owned()
}

fn measure(extra: &[&str]) -> (i32, String, String) {
    let fw = ovmf();
    let mut args = vec!["measure", "--ovmf", &fw];
    args.extend_from_slice(extra);
    vmsa_bin(&args)
}

#[test]
fn profiles_lists_every_row_with_its_commits() {
    let (code, out, err) = vmsa_bin(&["profiles", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let from = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r["from"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        from("kernels"),
        [
            "5.19", "6.0", "6.1", "6.6", "6.8", "6.10", "6.11", "6.18", "7.0"
        ]
    );
    assert_eq!(from("qemus"), ["7.2", "8.0", "9.1", "10.1"]);
    assert_eq!(v["vmm_types"].as_array().unwrap().len(), 5);
    let q101 = &v["qemus"][3];
    assert_eq!(q101["changes"][0]["commit"], "4c7f0976b0d2");
    assert!(
        q101["ap_fpu"]
            .as_str()
            .unwrap()
            .starts_with("FCW 0, MXCSR 0")
    );
    let (code, text, _) = vmsa_bin(&["profiles"]);
    assert_eq!(code, 0);
    assert!(text.contains("d1f85fbe836e KVM: SEV: Enable data breakpoints in SEV-ES"));
}

/// QEMU 9.1–10.0 measure as sev-snp-measure does; from 10.1 the APs' FCW and MXCSR are 0
/// under KVM_SEV_INIT2, which the peer's walk over patched pages confirms.
#[test]
fn qemu_10_1_aps_measure_without_fpu_control_words() {
    let base = ["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-v4"];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        let (code, out, err) = measure(&a);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    let plain = run(&[]);
    assert_eq!(run(&["--qemu", "9.1", "--host-kernel", "6.11"]), plain);
    assert_eq!(
        run(&["--qemu", "10.0.3", "--host-kernel", "6.12.0-45"]),
        plain
    );
    let q101 = run(&["--qemu", "10.1", "--host-kernel", "6.18"]);
    assert_ne!(q101, plain);
    assert_eq!(run(&["--qemu", "10.2.2"]), q101);
    // One vCPU has no AP: the same digest.
    let one = |q: &str| {
        let (code, out, err) = measure(&[
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--qemu",
            q,
        ]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(one("10.1"), one("9.1"));
    if !peer_installed() {
        return;
    }
    assert_eq!(
        common::peer_patched(&ovmf(), "snp", 4, 0x800f12, "none", 1),
        plain
    );
    assert_eq!(
        common::peer_patched(&ovmf(), "snp", 4, 0x800f12, "aps", 1),
        q101
    );
}

/// The legacy SEV-ES init: no FPU state, and Linux 6.6–6.7's DebugSwap on Zen 4 hosts.
#[test]
fn legacy_sev_es_follows_the_kernel_debug_swap_history() {
    let run = |kernel: &str, cpu: &str, extra: &[&str]| {
        let mut a = vec![
            "--mode",
            "seves",
            "--vcpus",
            "2",
            "--vcpu-type",
            cpu,
            "--host-kernel",
            kernel,
            "--qemu",
            "9.0",
        ];
        a.extend_from_slice(extra);
        let (code, out, err) = measure(&a);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    let genoa_66 = run("6.6", "EPYC-Genoa", &[]);
    let genoa_68 = run("6.8", "EPYC-Genoa", &[]);
    let milan_66 = run("6.6", "EPYC-Milan", &[]);
    assert_ne!(genoa_66, genoa_68);
    // A Milan vCPU type on a Genoa host: the host's DebugSwap said explicitly.
    assert_eq!(
        run("6.6", "EPYC-Genoa", &["--guest-features", "0x20"]),
        genoa_66
    );
    assert_eq!(run("6.8", "EPYC-Genoa", &["--guest-features", "0x20"]), {
        // 6.8 with kvm_amd.debug_swap=1 is 6.6's default.
        genoa_66.clone()
    });
    let (code, _, err) = measure(&[
        "--mode",
        "seves",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Genoa",
        "--host-kernel",
        "6.10",
        "--qemu",
        "9.0",
        "--guest-features",
        "0x20",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("legacy KVM_SEV_ES_INIT gives sev_features 0x0"),
        "{err}"
    );
    if !peer_installed() {
        return;
    }
    let genoa = 0xa10f10; // EPYC-Genoa: family 0x19, model 0x11, stepping 0
    assert_eq!(
        common::peer_patched(&ovmf(), "seves", 2, genoa, "all", 0x20),
        genoa_66
    );
    assert_eq!(
        common::peer_patched(&ovmf(), "seves", 2, genoa, "all", 0),
        genoa_68
    );
    assert_eq!(
        common::peer_patched(&ovmf(), "seves", 2, 0xa00f11, "all", 0),
        milan_66
    );
}

#[test]
fn hosts_that_cannot_launch_are_refused_with_the_commit_that_would() {
    for (extra, words) in [
        (
            &["--qemu", "9.0"][..],
            "QEMU 9.0 has no sev-snp-guest object (9.1, 7b34df44260b)",
        ),
        (
            &["--host-kernel", "6.10"],
            "Linux 6.10 has no SEV-SNP host support",
        ),
        (
            &["--host-kernel", "5.15"],
            "the host profiles start at 5.19",
        ),
        (&["--qemu", "7.1"], "the host profiles start at 7.2"),
        (
            &["--qemu", "9.1", "--guest-features", "0x21"],
            "QEMU 9.1 asks KVM for no VMSA features",
        ),
        (
            &["--qemu", "9.1", "--vmm-type", "ec2"],
            "--qemu describes the qemu VMM type",
        ),
        (&["--qemu", "nine"], "is not a release version"),
    ] {
        let mut a = vec!["--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4"];
        a.extend_from_slice(extra);
        let (code, out, err) = measure(&a);
        assert_eq!(code, 2, "{extra:?}: {out}");
        assert!(err.contains(words), "{extra:?}: {err}");
        assert!(out.is_empty());
    }
}

/// `reset` writes the pages the profile gives: QEMU 10.1's APs, and the JSON names the host.
#[test]
fn reset_and_json_carry_the_profile() {
    let dir = TempDir::new("profiles");
    let out = dir.join("p");
    let fw = ovmf();
    let (code, _, err) = vmsa_bin(&[
        "reset",
        "--ovmf",
        &fw,
        "--mode",
        "snp",
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-v4",
        "--qemu",
        "10.1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = |i: u32| std::fs::read(out.join(format!("vmsa{i}.bin"))).unwrap();
    let (bsp, ap) = (page(0), page(2));
    assert_eq!(bsp[0x408..0x40c], 0x1f80u32.to_le_bytes());
    assert_eq!(bsp[0x410..0x412], 0x37fu16.to_le_bytes());
    assert_eq!(ap[0x408..0x40c], [0; 4]);
    assert_eq!(ap[0x410..0x412], [0; 2]);
    let (code, json, err) = measure(&[
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--qemu",
        "10.2.2",
        "--host-kernel",
        "6.12.0-45-generic",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["qemu"].as_str(), v["host_kernel"].as_str()),
        (Some("10.2"), Some("6.12"))
    );
}

/// The solver's QEMU axis: a QEMU 10.1 launch is found as one, with the command that
/// reproduces it, and not among QEMU 9.1's.
#[test]
fn the_solver_searches_qemu_releases() {
    let (code, digest, err) = measure(&[
        "--mode",
        "snp",
        "--vcpus",
        "5",
        "--vcpu-type",
        "EPYC-v4",
        "--qemu",
        "10.1",
    ]);
    assert_eq!(code, 0, "{err}");
    let fw = ovmf();
    let solve = |extra: &[&str]| {
        let mut a = vec![
            "solve",
            "--measurement",
            digest.trim(),
            "--ovmf",
            &fw,
            "--vcpus",
            "1-8",
            "--vcpu-type",
            "EPYC-v4",
            "EPYC-Milan",
            "--vmm-type",
            "qemu",
            "kvm",
            "--json",
        ];
        a.extend_from_slice(extra);
        let (code, out, err) = vmsa_bin(&a);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            err,
        )
    };
    let (code, v, err) = solve(&[]);
    assert_eq!(code, 0, "{err}");
    let m = v["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1, "{v}");
    assert_eq!(m[0]["vcpus"], 5);
    assert_eq!(m[0]["qemu"], "QEMU 10.1 and later");
    let cmd = m[0]["command"].as_str().unwrap();
    assert!(cmd.contains("--qemu 10.1"), "{cmd}");
    // Two AP states for qemu, one for kvm: 2 sigs × 8 counts × 2 features × (2 + 1).
    assert_eq!(v["searched"], 2 * 8 * 2 * 3);
    // The command it prints gives the digest back.
    let words: Vec<&str> = cmd.split(' ').skip(2).collect();
    let (code, again, err) = vmsa_bin(&[&["measure"][..], &words].concat());
    assert_eq!((code, again.trim()), (0, digest.trim()), "{err}");
    let (code, v, _) = solve(&["--qemu", "9.1", "10.0"]);
    assert_eq!(code, 1);
    assert_eq!(v["matches"].as_array().unwrap().len(), 0);
    let (code, _, err) = vmsa_bin(&[
        "solve",
        "--measurement",
        digest.trim(),
        "--ovmf",
        &fw,
        "--host-kernel",
        "6.10",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no SEV-SNP host support before Linux 6.11"),
        "{err}"
    );
}
