//! Known-answer tests: every vector and must-fail case of sev-snp-measure 0.0.13's public test
//! suite (`tests/data/sev-snp-measure/vectors.json`, see TESTING.md), run through the real `vmsa measure`
//! binary with sev-snp-measure's own options.
mod common;

use common::{TempDir, fixture};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn vectors() -> Value {
    let text = std::fs::read_to_string(fixture("vectors.json"))
        .expect("tests/data/sev-snp-measure/vectors.json");
    serde_json::from_str(&text).unwrap()
}

/// sev-snp-measure arguments for a vector.
fn args_for(v: &Value, empty: &Path) -> Vec<String> {
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    let mut a = vec![
        "measure".to_owned(),
        "--mode".into(),
        s("mode").unwrap(),
        "--ovmf".into(),
        fixture(&s("firmware").unwrap()).display().to_string(),
    ];
    if v["mode"] != "sev" {
        a.extend(["--vcpus".into(), v["vcpus"].to_string()]);
    }
    if let Some(sig) = s("vcpu_sig") {
        a.extend(["--vcpu-sig".into(), sig]);
    }
    if let Some(vmm) = s("vmm") {
        a.extend(["--vmm-type".into(), vmm]);
    }
    for (key, flag) in [("kernel", "--kernel"), ("initrd", "--initrd")] {
        match s(key).as_deref() {
            Some("") => a.extend([flag.into(), empty.display().to_string()]),
            Some(other) => a.extend([flag.into(), other.into()]),
            None => {}
        }
    }
    if let Some(append) = s("append") {
        a.extend(["--append".into(), append]);
    }
    if let Some(gf) = s("guest_features") {
        a.extend(["--guest-features".into(), gf]);
    }
    if let Some(seed) = s("snp_ovmf_hash") {
        a.extend(["--snp-ovmf-hash".into(), seed]);
    }
    a
}

fn vmsa(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn all_19_vectors() {
    let v = vectors();
    let dir = TempDir::new("empty");
    let empty = dir.write("empty", b"");
    let list = v["vectors"].as_array().unwrap();
    assert_eq!(list.len(), 19);
    let mut failures = Vec::new();
    for vec in list {
        let args = args_for(vec, &empty);
        let out = vmsa(&args);
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let want = vec["digest"].as_str().unwrap();
        if !out.status.success() || got != want {
            failures.push(format!(
                "{}: vmsa {}\n  want {want}\n  got  {got}\n  stderr {}",
                vec["name"],
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn snp_ovmf_hash_vector() {
    let v = vectors();
    for h in v["snp_ovmf_hash"].as_array().unwrap() {
        let fw = fixture(h["firmware"].as_str().unwrap());
        let out = vmsa(&[
            "measure".into(),
            "--mode".into(),
            "snp:ovmf-hash".into(),
            "--ovmf".into(),
            fw.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            h["digest"].as_str().unwrap()
        );
    }
}

/// The must-fail cases fail with sev-snp-measure's exact message and exit code 1.
#[test]
fn must_fail_cases() {
    let v = vectors();
    let dir = TempDir::new("empty");
    let empty = dir.write("empty", b"");
    for case in v["must_fail"].as_array().unwrap() {
        let mode = case["mode"].as_str().unwrap();
        let mut args = vec![
            "measure".to_owned(),
            "--mode".into(),
            mode.into(),
            "--ovmf".into(),
            fixture(case["firmware"].as_str().unwrap())
                .display()
                .to_string(),
            "--kernel".into(),
            empty.display().to_string(),
        ];
        if mode != "sev" {
            args.extend([
                "--vcpus".into(),
                "1".into(),
                "--vcpu-type".into(),
                "EPYC-v4".into(),
            ]);
        }
        let out = vmsa(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {stderr}");
        let want = if mode == "snp" {
            "Error: Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section"
        } else {
            "Error: Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement"
        };
        assert_eq!(stderr.trim(), want, "{mode}: {}", case["why"]);
    }
}

#[test]
fn verbose_and_base64_output() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let base = [
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
    ];
    let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    args.push(fw.display().to_string());
    let mut verbose = args.clone();
    verbose.push("-v".into());
    let out = vmsa(&verbose);
    // snp_without_kernel_snp_only with the default guest features 0x1.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Calculated SEV_SNP guest measurement: 19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"
    );
    let mut b64 = args.clone();
    b64.extend(["--output-format".into(), "base64".into()]);
    let out = vmsa(&b64);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        b64_of_hex(
            "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"
        )
    );
}

/// Reference base64 of a hex string, by Python's base64 module (the peer's encoder).
fn b64_of_hex(hex: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import base64;print(base64.b64encode(bytes.fromhex('{hex}')).decode())"),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The core's digest with its own one-page-at-a-time hasher (what the browser page and the main
/// job use) gives the same known answers as the command line, which hashes on every core.
#[test]
fn core_launch_digest_equals_the_vectors() {
    use vmsa_core::hash_table::SevHashes;
    use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
    use vmsa_core::measure::{NoObserver, Sha2Pages};
    use vmsa_core::ovmf::OvmfImage;
    use vmsa_core::reset::VmmType;
    use vmsa_core::{CpuSignature, SevMode};
    let image = std::fs::read(fixture("ovmf_AmdSev_suffix.bin")).unwrap();
    let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
    let digest = |mode, vcpus, vmm, kernel| {
        let mut cfg = LaunchConfig::new(mode, vcpus, sig_of(), vmm);
        cfg.kernel = kernel;
        let launch = Launch::new(&fw, &cfg).unwrap();
        let (d, NoObserver) = launch.digest(&Sha2Pages, NoObserver).unwrap();
        d.bytes().to_vec()
    };
    fn sig_of() -> CpuSignature {
        CpuSignature(0x800f12)
    }
    let empty = SevHashes {
        kernel: SevHashes::sha256(b""),
        initrd: SevHashes::sha256(b""),
        cmdline: SevHashes::cmdline_hash(Some("")),
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let cases = [
        (
            SevMode::Snp,
            4,
            VmmType::Qemu,
            Some(empty),
            "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5",
        ),
        (
            SevMode::Snp,
            1,
            VmmType::Qemu,
            None,
            "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
        ),
        (
            SevMode::Snp,
            4,
            VmmType::Gce,
            Some(empty),
            "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d",
        ),
        (
            SevMode::Snp,
            1,
            VmmType::Ec2,
            Some(empty),
            "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056",
        ),
        (
            SevMode::SevEs,
            4,
            VmmType::Qemu,
            Some(empty),
            "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91",
        ),
    ];
    for (mode, vcpus, vmm, hashes, want) in cases {
        let d = digest(mode, vcpus, vmm, hashes);
        assert_eq!(hex(&d), want, "{mode:?} {vcpus} {vmm:?}");
    }
    // SEV with the command line of the `sev` vector.
    let hashes = SevHashes {
        cmdline: SevHashes::cmdline_hash(Some("console=ttyS0 loglevel=7")),
        ..empty
    };
    let d = digest(SevMode::Sev, 1, VmmType::Qemu, Some(hashes));
    assert_eq!(
        hex(&d),
        "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff"
    );
}
