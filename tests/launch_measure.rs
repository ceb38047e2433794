//! `vmsa measure --tik`: the SEV/SEV-ES `LAUNCH_MEASURE` blob, checked against an independent
//! implementation — Python's `hmac`/`hashlib` computing the SEV API's formula over the digest
//! sev-snp-measure's known answers give (`vectors.json`); then `sevctl measurement build`'s forms
//! of the same inputs (`--tik` base64, `--build-id`, `--nonce` as a path, `--launch-measure-blob`,
//! whose measure is checked).
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
             import base64\n\
             print(base64.b64encode(hmac.new(bytes(range(16)), msg, hashlib.sha256).digest() + bytes.fromhex('{nonce}')).decode())"
        );
        let out = Command::new("python3")
            .args(["-c", &py])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{out:?}");
        let want = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(blob.trim(), want, "{mode}");
        // sevctl's forms: the TIK in base64, --build-id, the nonce from a file, or from the
        // platform's blob, whose measure must then be this launch's.
        let nonce_file = dir.write(
            "nonce.bin",
            &[
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff,
            ],
        );
        let base = &args[..args.len() - 12];
        let sevctl = |nonce: [&str; 2]| {
            let mut a = base.to_vec();
            a.extend_from_slice(&[
                "--tik",
                "AAECAwQFBgcICQoLDA0ODw==",
                nonce[0],
                nonce[1],
                "--api-major",
                "1",
                "--api-minor",
                "0x37",
                "--build-id",
                "21",
                "--policy",
                "5",
            ]);
            vmsa_bin(&a)
        };
        let (code, out, err) = sevctl(["--nonce", nonce_file.to_str().unwrap()]);
        assert_eq!(
            (code, out.trim(), err.as_str()),
            (0, want.as_str(), ""),
            "{mode}"
        );
        let (code, out, err) = sevctl(["--launch-measure-blob", &want]);
        assert_eq!(
            (code, out.trim(), err.as_str()),
            (0, want.as_str(), ""),
            "{mode}"
        );
        // Another launch's blob (its first byte changed): refused, exit 1, the two named.
        let mut other = want.clone().into_bytes();
        other[0] = if other[0] == b'A' { b'B' } else { b'A' };
        let (code, _, err) = sevctl([
            "--launch-measure-blob",
            std::str::from_utf8(&other).unwrap(),
        ]);
        assert_eq!(code, 1, "{mode}");
        assert!(err.contains("is not the one this launch gives"), "{err}");
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
