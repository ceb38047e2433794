//! `vmsa measure --tik`: the SEV/SEV-ES `LAUNCH_MEASURE` blob, checked against an independent
//! implementation — Python's `hmac`/`hashlib` computing the SEV API's formula over the digest
//! sev-snp-measure's known answers give (`vectors.json`).
mod common;

use common::{TempDir, fixture, vmsa_bin};
use std::process::Command;

#[test]
fn launch_measure_is_the_sev_apis_hmac() {
    let fw = fixture("ovmf_OvmfX64_suffix.bin");
    let fw = fw.to_str().unwrap();
    let dir = TempDir::new("tik");
    let tik = dir.write("tik.bin", &(0u8..16).collect::<Vec<_>>());
    let nonce = "00112233445566778899aabbccddeeff";
    for (mode, extra) in [
        ("sev", &[][..]),
        ("seves", &["--vcpus", "2", "--vcpu-type", "EPYC-v4"][..]),
    ] {
        let mut args = vec!["measure", "--mode", mode, "--ovmf", fw];
        args.extend_from_slice(extra);
        let (code, ld, err) = vmsa_bin(&args);
        assert_eq!(code, 0, "{err}");
        let ld = ld.trim().to_owned();
        args.extend_from_slice(&[
            "--tik",
            tik.to_str().unwrap(),
            "--nonce",
            nonce,
            "--api-major",
            "1",
            "--api-minor",
            "55",
            "--build",
            "21",
            "--policy",
            "0x5",
        ]);
        let (code, blob, err) = vmsa_bin(&args);
        assert_eq!(code, 0, "{err}");
        // 0x04 ‖ API_MAJOR ‖ API_MINOR ‖ BUILD ‖ POLICY (4 bytes LE) ‖ LD ‖ MNONCE, under the TIK.
        let py = format!(
            "import hmac, hashlib\n\
             msg = bytes([4, 1, 55, 21]) + (5).to_bytes(4, 'little') + bytes.fromhex('{ld}') + bytes.fromhex('{nonce}')\n\
             print((hmac.new(bytes(range(16)), msg, hashlib.sha256).digest() + bytes.fromhex('{nonce}')).hex())"
        );
        let out = Command::new("python3")
            .args(["-c", &py])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            blob.trim(),
            String::from_utf8(out.stdout).unwrap().trim(),
            "{mode}"
        );
    }
    // The SNP digest has no LAUNCH_MEASURE.
    let (code, _, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fixture("ovmf_AmdSev_suffix.bin").to_str().unwrap(),
        "--tik",
        tik.to_str().unwrap(),
        "--nonce",
        nonce,
        "--api-major",
        "1",
        "--api-minor",
        "55",
        "--build",
        "21",
        "--policy",
        "5",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tik is for --mode sev and seves"), "{err}");
}
