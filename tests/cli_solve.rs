//! `vmsa solve` against the peer: configurations picked at random (the seed is printed, and
//! `VMSA_SOLVE_SEED` replays one), measured by sev-snp-measure 0.0.13, must be found — the
//! exact configuration among the matches; a measurement nothing produces is reported as such
//! with the search space; a real report's measurement goes in through `--report`.
mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

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
    let seed = common::random_seed("VMSA_SOLVE_SEED");
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

/// A direct-boot launch (sev-snp-measure measures it with --kernel, --initrd and --append): found
/// with the kernel hashes, and the same launch without a kernel found without them.
#[test]
fn kernel_hashes_are_an_axis() {
    if !peer_installed() {
        return;
    }
    let dir = common::TempDir::new("kernel");
    let kernel = dir.write("vmlinuz", b"a kernel, as far as the hashes care");
    let initrd = dir.write("initrd", b"an initrd");
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let peer = |extra: &[&str]| {
        let out = Command::new("sev-snp-measure")
            .args([
                "--mode",
                "snp",
                "--vcpus",
                "3",
                "--vcpu-type",
                "EPYC-Milan",
                "--ovmf",
                fw,
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let solve = |m: &str| {
        vmsa_bin(&[
            "solve",
            "--measurement",
            m,
            "--ovmf",
            fw,
            "--vcpus",
            "1-4",
            "--vmm-type",
            "qemu",
            "--kernel",
            k,
            "--initrd",
            i,
            "--append",
            "console=ttyS0 quiet",
            "--json",
        ])
    };
    let with = peer(&[
        "--kernel",
        k,
        "--initrd",
        i,
        "--append",
        "console=ttyS0 quiet",
    ]);
    let (code, out, err) = solve(&with);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v["matches"][0];
    assert_eq!(
        (m["vcpus"].as_u64(), m["kernel_hashes"].as_bool()),
        (Some(3), Some(true)),
        "{v}"
    );
    // The command it prints reproduces the digest (the command line quoted for a shell).
    let cmd = m["command"].as_str().unwrap();
    assert!(cmd.ends_with("--append 'console=ttyS0 quiet'"), "{cmd}");
    let without = peer(&[]);
    let (code, out, _) = solve(&without);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["matches"][0]["kernel_hashes"].as_bool(),
        Some(false),
        "{v}"
    );
    // Legacy KVM init: SNP has none, so those configurations are refused, not searched.
    let (code, out, _) = vmsa_bin(&[
        "solve",
        "--measurement",
        &without,
        "--ovmf",
        fw,
        "--vcpus",
        "1-4",
        "--vmm-type",
        "qemu",
        "--kvm-init",
        "legacy",
        "--json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["searched"].as_u64(), Some(0), "{v}");
    assert!(v["refused"].as_u64().unwrap() > 0, "{v}");
}

/// IGVM files: the `igvm` crate's own measurement of the file (the spec profile), and what a
/// QEMU launch of a random vCPU count and CPU type measures (the qemu profile), are found with
/// the profile, count and signature that give them.
#[test]
fn igvm_digests_are_found_with_their_profile() {
    let igvm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/igvm/snp-small.igvm"
    );
    let bytes = std::fs::read(igvm).unwrap();
    let file = igvm::IgvmFile::new_from_binary(&bytes, Some(igvm::IsolationType::Snp)).unwrap();
    let mask = file
        .platforms()
        .iter()
        .find_map(|p| match p {
            igvm::IgvmPlatformHeader::SupportedPlatform(sp)
                if sp.platform_type == igvm_defs::IgvmPlatformType::SEV_SNP =>
            {
                Some(sp.compatibility_mask)
            }
            _ => None,
        })
        .unwrap();
    let theirs = igvm::measurement::generate_snp_measurement(
        file.initializations(),
        file.directives(),
        mask,
    )
    .unwrap();
    let hex: String = theirs.iter().map(|b| format!("{b:02x}")).collect();
    let (code, out, err) = vmsa_bin(&[
        "solve",
        "--measurement",
        &hex,
        "--igvm",
        igvm,
        "--vcpus",
        "1-8",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.ends_with("--igvm-profile spec")),
        "{out}"
    );
    // qemu: a file QEMU launches (vCPU 0's context is the reset state KVM reproduces), at a
    // random count and type.
    let cfg = vmsa_core::launch::LaunchConfig::new(
        vmsa_core::SevMode::Snp,
        1,
        CpuSignature::named("EPYC-v4").unwrap(),
        vmsa_core::reset::VmmType::Qemu,
    );
    let bsp = vmsa_core::launch::vcpu_vmsa(&cfg, 0, vmsa_core::arch::RESET_VECTOR).unwrap();
    let bsp: igvm::snp_defs::SevVmsa =
        zerocopy::FromBytes::read_from_bytes(zerocopy::IntoBytes::as_bytes(&bsp)).unwrap();
    let flags = igvm_defs::IgvmPageDataFlags::new();
    let bytes = igvm_common::snp_only(vec![
        igvm_common::page(
            0x1000,
            igvm_common::SNP,
            vec![1; 4096],
            igvm_defs::IgvmPageDataType::NORMAL,
            flags,
        ),
        igvm_common::page(
            0x2000,
            igvm_common::SNP,
            vec![],
            igvm_defs::IgvmPageDataType::NORMAL,
            flags,
        ),
        igvm::IgvmDirectiveHeader::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: igvm_common::SNP,
            vp_index: 0,
            vmsa: Box::new(bsp),
        },
    ]);
    let dir = common::TempDir::new("igvm");
    let launchable = dir.write("launchable.igvm", &bytes);
    let launchable = launchable.to_str().unwrap();
    let mut s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let vcpus = (2 + next(&mut s) % 7).to_string();
    let cpu = ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"][(next(&mut s) % 3) as usize];
    eprintln!("qemu profile: {vcpus} vCPUs, {cpu}");
    let (code, m, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp",
        "--igvm",
        launchable,
        "--igvm-profile",
        "qemu",
        "--vcpus",
        &vcpus,
        "--vcpu-type",
        cpu,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = vmsa_bin(&[
        "solve",
        "--measurement",
        m.trim(),
        "--igvm",
        launchable,
        "--vcpus",
        "1-8",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let sig = CpuSignature::named(cpu).unwrap().0;
    let want = format!(
        "vmsa measure --mode snp --vcpus {vcpus} --vcpu-sig {sig:#x} --igvm {launchable} --igvm-profile qemu"
    );
    assert!(out.lines().any(|l| l == want), "{want}\n{out}");
    // Every match reproduces the measurement.
    for line in out.lines().filter(|l| l.starts_with("vmsa measure")) {
        let args: Vec<&str> = line.split(' ').skip(1).collect();
        let (code, digest, err) = vmsa_bin(&args);
        assert_eq!((code, digest.trim()), (0, m.trim()), "{line}: {err}");
    }
}
