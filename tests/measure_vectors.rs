//! Known-answer tests: every vector and must-fail case of sev-snp-measure 0.0.13's public test
//! suite (`../shared/fixtures/sev-snp-measure/vectors.json`), run through the real `vmsa measure`
//! binary with sev-snp-measure's own options.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/sev-snp-measure")
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(fixtures().join("vectors.json")).expect(
        "../shared/fixtures/sev-snp-measure/vectors.json (the shared fixtures beside the repo)",
    );
    serde_json::from_str(&text).unwrap()
}

fn empty_file() -> PathBuf {
    let p = std::env::temp_dir().join(format!("vmsa-empty-{}", std::process::id()));
    std::fs::write(&p, b"").unwrap();
    p
}

/// sev-snp-measure arguments for a vector.
fn args_for(v: &Value, empty: &Path) -> Vec<String> {
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    let mut a = vec![
        "measure".to_owned(),
        "--mode".into(),
        s("mode").unwrap(),
        "--ovmf".into(),
        fixtures()
            .join(s("firmware").unwrap())
            .display()
            .to_string(),
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
    let empty = empty_file();
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
        let fw = fixtures().join(h["firmware"].as_str().unwrap());
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
    let empty = empty_file();
    for case in v["must_fail"].as_array().unwrap() {
        let mode = case["mode"].as_str().unwrap();
        let mut args = vec![
            "measure".to_owned(),
            "--mode".into(),
            mode.into(),
            "--ovmf".into(),
            fixtures()
                .join(case["firmware"].as_str().unwrap())
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
    let fw = fixtures().join("ovmf_AmdSev_suffix.bin");
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
