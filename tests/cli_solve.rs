//! `vmsa solve` against the peer: configurations picked at random (the seed is printed, and
//! `VMSA_SOLVE_SEED` replays one), measured by sev-snp-measure 0.0.13, must be found — the
//! exact configuration among the matches; a measurement nothing produces is reported as such
//! with the search space; a real report's measurement goes in through `--report`.
mod common;

use common::{fixture, peer_installed, vmsa_bin};
use std::process::Command;
use vmsa_core::CpuSignature;

const OVMF: &str = "/usr/share/OVMF/OVMF_CODE.fd";

fn next(state: &mut u64) -> u64 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_configurations_measured_by_the_peer_are_found() {
    if !peer_installed() || !common::require::file("ovmf", OVMF) {
        return;
    }
    let seed = std::env::var("VMSA_SOLVE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("VMSA_SOLVE_SEED={seed}");
    let mut s = seed;
    let amdsev = fixture("ovmf_AmdSev_suffix.bin");
    let images = [OVMF, amdsev.to_str().unwrap()];
    let types = [
        "EPYC",
        "EPYC-v4",
        "EPYC-Rome",
        "EPYC-Milan",
        "EPYC-Genoa",
        "EPYC-Turin",
    ];
    let vmms = ["QEMU", "ec2", "gce"];
    for _ in 0..3 {
        let image = images[(next(&mut s) % 2) as usize];
        let cpu = types[(next(&mut s) % types.len() as u64) as usize];
        let vmm = vmms[(next(&mut s) % 3) as usize];
        let features = if next(&mut s).is_multiple_of(2) {
            "0x1"
        } else {
            "0x21"
        };
        let vcpus = 1 + next(&mut s) % 64;
        let out = Command::new("sev-snp-measure")
            .args([
                "--mode",
                "snp",
                "--vcpus",
                &vcpus.to_string(),
                "--vcpu-type",
                cpu,
            ])
            .args([
                "--vmm-type",
                vmm,
                "--guest-features",
                features,
                "--ovmf",
                image,
            ])
            .output()
            .expect("sev-snp-measure runs");
        assert!(out.status.success(), "{out:?}");
        let m = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let (code, found, err) = vmsa_bin(&[
            "solve",
            "--measurement",
            &m,
            "--ovmf",
            OVMF,
            amdsev.to_str().unwrap(),
            "--vcpus",
            "1-64",
        ]);
        assert_eq!(
            code, 0,
            "{cpu} {vmm} {features} {vcpus} {image}: {found}{err}"
        );
        let sig = CpuSignature::named(cpu).unwrap().0;
        let want = format!(
            "vmsa measure --mode snp --vcpus {vcpus} --vcpu-sig {sig:#x} --vmm-type {} --guest-features {features} --ovmf {image}",
            vmsa_core::reset::VmmType::from_name(vmm).unwrap().name()
        );
        assert!(found.lines().any(|l| l == want), "{want}\n{found}");
        // Each match reproduces the measurement.
        for line in found.lines().filter(|l| l.starts_with("vmsa measure")) {
            let args: Vec<&str> = line.split(' ').skip(1).collect();
            let (code, digest, err) = vmsa_bin(&args);
            assert_eq!((code, digest.trim()), (0, m.as_str()), "{line}: {err}");
        }
    }
}

#[test]
fn nothing_found_is_said_with_the_search_space() {
    let amdsev = fixture("ovmf_AmdSev_suffix.bin");
    let m = "ab".repeat(48);
    let (code, out, _) = vmsa_bin(&[
        "solve",
        "--measurement",
        &m,
        "--ovmf",
        amdsev.to_str().unwrap(),
        "--vcpus",
        "1-8",
        "--vmm-type",
        "qemu",
        "ec2",
        "--guest-features",
        "0x1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("no launch in the search space gives {m}")),
        "{out}"
    );
    assert!(out.contains("  vCPU counts      8"), "{out}");
    assert!(out.contains("  VMM profiles     2"), "{out}");
    // A real report: its firmware is not this one.
    let report = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reports/genoa-v5-oak.report.bin"
    );
    let (code, out, err) = vmsa_bin(&[
        "solve",
        "--report",
        report,
        "--ovmf",
        amdsev.to_str().unwrap(),
        "--vcpus",
        "1-4",
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["matches"].as_array().unwrap().len(), 0);
    assert!(v["measurement"].as_str().unwrap().starts_with("c5772901"));
    // The report's own CPUID is one of the signatures tried: Genoa 0xa10f11.
    assert!(v["searched"].as_u64().unwrap() > 0);
    // Bad input.
    let (code, _, err) = vmsa_bin(&[
        "solve",
        "--measurement",
        "abcd",
        "--ovmf",
        amdsev.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("an SNP measurement has 48"), "{err}");
}
