//! `vmsa measure` beyond the known answers: `--dump-vmsa` pages byte-identical to
//! sev-snp-measure's, refusals of firmware that cannot launch (where the peer measures it),
//! `--explain` and `--json`.
mod common;

use common::{TempDir, fixture, peer_installed};
use std::path::Path;
use std::process::{Command, Output};
use vmsa_core::ovmf::{Section, SectionType, build};

fn vmsa_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .current_dir(dir)
        .arg("measure")
        .args(args)
        .output()
        .unwrap()
}

/// `--dump-vmsa` writes the same pages as sev-snp-measure 0.0.13, for both modes and every VMM.
#[test]
fn dump_vmsa_equals_the_peer() {
    if !peer_installed() {
        return;
    }
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    for (mode, vmm) in [
        ("snp", "QEMU"),
        ("seves", "QEMU"),
        ("snp", "ec2"),
        ("snp", "gce"),
    ] {
        let args = [
            "--mode",
            mode,
            "--vcpus",
            "3",
            "--vcpu-type",
            "EPYC-Milan",
            "--vmm-type",
            vmm,
            "--ovmf",
            fw,
            "--dump-vmsa",
            "--guest-features",
            "0x21",
        ];
        let ours = TempDir::new(&format!("ours-{mode}-{vmm}"));
        let peer = TempDir::new(&format!("peer-{mode}-{vmm}"));
        let o = vmsa_in(&ours, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let p = Command::new("sev-snp-measure")
            .current_dir(&peer)
            .args(args)
            .output()
            .unwrap();
        assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
        assert_eq!(o.stdout, p.stdout, "{mode} {vmm}: digest");
        for i in 0..3 {
            let name = format!("vmsa{i}.bin");
            let a = std::fs::read(ours.join(&name)).unwrap();
            let b = std::fs::read(peer.join(&name)).unwrap();
            assert_eq!(a.len(), 4096);
            assert!(
                a == b,
                "{mode} {vmm}: {name} differs from sev-snp-measure's"
            );
        }
    }
}

/// SNP on firmware without `ASEV` metadata (Debian's OVMF_CODE_4M.fd): sev-snp-measure prints a
/// digest for a guest that cannot launch; we refuse, exit 1, and say why.
#[test]
fn snp_without_metadata_is_refused() {
    let fw = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    if !common::require::file("ovmf", fw) {
        return;
    }
    let o = vmsa_in(
        &TempDir::new("4m"),
        &[
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            fw,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("Error: ") && err.contains("ASEV"), "{err}");
    assert!(o.stdout.is_empty());
}

/// SEV-ES and SNP without an SEV-ES reset block are refused even with one vCPU (QEMU's
/// `sev_es_save_reset_vector` exits), while plain SEV measures the image.
#[test]
fn no_reset_block_is_refused_for_sev_es_and_snp() {
    let dir = TempDir::new("noreset");
    let mut image = vec![0u8; 0x2000];
    let sections = [
        Section::new(0x80_0000, 0x1000, SectionType::SNP_SEC_MEM),
        Section::new(0x80_1000, 0x1000, SectionType::SNP_SECRETS),
        Section::new(0x80_2000, 0x1000, SectionType::CPUID),
    ];
    build(&mut image, &[], Some(&sections)).unwrap();
    // Keep the metadata-offset entry the builder wrote, but no reset block.
    let path = dir.join("noreset.fd");
    std::fs::write(&path, &image).unwrap();
    let p = path.to_str().unwrap();
    for mode in ["seves", "snp"] {
        let o = vmsa_in(
            &dir,
            &[
                "--mode",
                mode,
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--ovmf",
                p,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{mode}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no SEV-ES reset block"),
            "{mode}"
        );
    }
    let o = vmsa_in(&dir, &["--mode", "sev", "--ovmf", p]);
    assert!(o.status.success());
    let sha: String = sha256_hex(&image);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), sha);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `--explain` lists every step, and its last digest is the measurement; `--json` carries the
/// same items.
#[test]
fn explain_and_json() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let base = [
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw,
    ];
    let dir = TempDir::new("explain");
    let plain = vmsa_in(&dir, &base);
    let digest = String::from_utf8_lossy(&plain.stdout).trim().to_owned();
    let mut args = base.to_vec();
    args.push("--explain");
    let o = vmsa_in(&dir, &args);
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // Header, 1 firmware page, 31 metadata pages (9+3 SEC_MEM, SECRETS, CPUID, SVSM_CAA,
    // KERNEL_HASHES, 15 SEC_MEM), 2 VMSAs, then the digest.
    assert_eq!(lines.len(), 1 + 1 + 31 + 2 + 1, "{text}");
    assert!(
        lines[1].contains("firmware")
            && lines[1].contains("0xfffff000")
            && lines[1].contains("NORMAL")
    );
    assert!(
        lines[34].contains("vmsa cpu1")
            && lines[34].contains("0xfffffffff000")
            && lines[34].ends_with(&digest)
    );
    assert_eq!(*lines.last().unwrap(), digest);

    args.push("--json");
    let o = vmsa_in(&dir, &args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["measurement"], digest);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 34);
    assert_eq!(items[0]["page_type"], "NORMAL");
    assert_eq!(items[33]["digest_after"], digest);
    assert_eq!(items[13]["item"], "section SNP_SECRETS");
}

/// A two-page SECRETS section: QEMU would launch both pages while sev-snp-measure measures one,
/// so no launch could give the digest; refused, as the launch plan refuses it.
#[test]
fn multi_page_secrets_section_is_refused() {
    let dir = TempDir::new("secrets2");
    let mut image = vec![0u8; 0x2000];
    let sections = [
        Section::new(0x80_0000, 0x1000, SectionType::SNP_SEC_MEM),
        Section::new(0x80_1000, 0x2000, SectionType::SNP_SECRETS),
    ];
    build(
        &mut image,
        &[vmsa_core::ovmf::TableEntry::SevEsResetBlock {
            reset_addr: 0x80_b004,
        }],
        Some(&sections),
    )
    .unwrap();
    let path = dir.join("secrets2.fd");
    std::fs::write(&path, &image).unwrap();
    let o = vmsa_in(
        &dir,
        &[
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("SNP_SECRETS") && err.contains("0x2000"),
        "{err}"
    );
}

/// A pipe cannot be mapped or read twice: the image arrives through it whole, and the digest is
/// the file's, for every mode.
#[test]
fn pipe_input_equals_the_file() {
    use std::io::Write;
    use std::process::Stdio;
    let path = fixture("ovmf_AmdSev_suffix.bin");
    let image = std::fs::read(&path).unwrap();
    for mode in ["snp", "seves", "sev", "snp:ovmf-hash"] {
        let args = [
            "measure",
            "--mode",
            mode,
            "--vcpus",
            "2",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
        ];
        let from_file = Command::new(env!("CARGO_BIN_EXE_vmsa"))
            .args(args)
            .arg(&path)
            .output()
            .unwrap();
        assert!(from_file.status.success(), "{mode}: {from_file:?}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmsa"))
            .args(args)
            .arg("/dev/stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&image).unwrap();
        let from_pipe = child.wait_with_output().unwrap();
        assert!(from_pipe.status.success(), "{mode}: {from_pipe:?}");
        assert_eq!(from_pipe.stdout, from_file.stdout, "{mode}");
    }
}
