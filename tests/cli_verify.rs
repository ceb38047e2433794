//! `vmsa verify`: real reports (`tests/data/reports`) with their VCEK, with AMD's chain as a
//! file or built in; every check listed; a distinct exit code per class of failure; the
//! caller's expectations (measurement, REPORT_DATA, policy).
mod common;

use common::{TempDir, vmsa_bin};
use std::path::{Path, PathBuf};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/reports")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_genuine_report_passes_every_check() {
    let report = data("genoa-v5-oak.report.bin");
    let raw = std::fs::read(&report).unwrap();
    let measurement = hex(&raw[0x90..0xc0]);
    let nonce = hex(&raw[0x50..0x90]);
    let (code, out, err) = vmsa_bin(&[
        "verify",
        "--report",
        &report,
        "--vcek",
        &data("genoa-v5-oak.vcek.der"),
        "--chain",
        &data("cert_chain_genoa.pem"),
        "--measurement",
        &measurement,
        "--report-data",
        &nonce,
        "--vmpl",
        "0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for check in [
        "ok    report signature         ECDSA P-384/SHA-384 with the VCEK's key",
        "ok    ARK is AMD's             ARK-Genoa (built in)",
        "ok    ASK signs key            SEV-VCEK signed by SEV-Genoa",
        "ok    TCB                      boot loader 10, tee 0, snp 25, microcode 84",
        "ok    chip ID                  64 bytes equal",
        "ok    measurement              ",
        "ok    REPORT_DATA              as expected",
        "ok    VMPL                     0",
        "verdict: pass",
    ] {
        assert!(out.contains(check), "{check}\n{out}");
    }
}

#[test]
fn each_class_of_failure_has_its_exit_code() {
    let dir = TempDir::new("verify");
    let report = data("turin-v5-oak.report.bin");
    let vcek = data("turin-v5-oak.vcek.der");
    let mut raw = std::fs::read(&report).unwrap();
    let measurement = hex(&raw[0x90..0xc0]);
    // 1: not authentic (one bit of the measurement changed after signing).
    raw[0x90] ^= 1;
    let tampered: PathBuf = dir.write("tampered.bin", &raw);
    let (code, out, _) = vmsa_bin(&[
        "verify",
        "--report",
        tampered.to_str().unwrap(),
        "--vcek",
        &vcek,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  report signature"), "{out}");
    assert!(out.contains("verdict: FAIL (1 of"), "{out}");
    // 3: the platform (another chip's VCEK, which also breaks the signature: class 1 wins).
    let (code, out, _) = vmsa_bin(&[
        "verify",
        "--report",
        &data("milan-v2-go-sev-guest.report.bin"),
        "--product",
        "milan",
        "--vcek",
        &data("milan-v2-virtee.vcek.der"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  TCB") && out.contains("FAIL  chip ID"),
        "{out}"
    );
    // 3: the expired VLEK, unless time is not checked.
    let vlek = [
        "verify",
        "--report",
        &data("milan-v3-trustee-vlek.report.bin"),
        "--vlek",
        &data("milan-v3-trustee-vlek.vlek.der"),
    ];
    let (code, out, _) = vmsa_bin(&vlek);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "FAIL  validity                 SEV-VLEK is valid from 2024-12-10 to 2025-12-10"
        ),
        "{out}"
    );
    let mut no_time = vlek.to_vec();
    no_time.push("--no-check-time");
    assert_eq!(vmsa_bin(&no_time).0, 0);
    // 4: the measurement.
    let mut other = measurement.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).unwrap();
    let (code, out, _) = vmsa_bin(&[
        "verify",
        "--report",
        &report,
        "--vcek",
        &vcek,
        "--measurement",
        &other,
    ]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("FAIL  measurement"), "{out}");
    // The same measurement in base64 passes.
    let b64 = {
        use base64::Engine;
        let bytes: Vec<u8> = (0..48)
            .map(|i| u8::from_str_radix(&measurement[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    assert_eq!(
        vmsa_bin(&[
            "verify",
            "--report",
            &report,
            "--vcek",
            &vcek,
            "--measurement",
            &b64
        ])
        .0,
        0
    );
    // The measurement from a reference file `vmsa measure --json` wrote.
    let reference = dir.write(
        "reference.json",
        format!("{{\"mode\": \"snp\", \"measurement\": \"{measurement}\"}}").as_bytes(),
    );
    let (code, out, _) = vmsa_bin(&[
        "verify",
        "--report",
        &report,
        "--vcek",
        &vcek,
        "--reference",
        reference.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("ok    measurement              {measurement}")),
        "{out}"
    );
    // 5: the caller's other expectations.
    let (code, out, _) = vmsa_bin(&[
        "verify", "--report", &report, "--vcek", &vcek, "--vmpl", "2", "--json",
    ]);
    assert_eq!(code, 5, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exit_code"], 5);
    let failed: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["VMPL"]);
    // 2: bad input.
    let (code, _, err) = vmsa_bin(&["verify", "--report", &report, "--vcek", &report]);
    assert_eq!(code, 2);
    assert!(err.contains("not an X.509 certificate"), "{err}");
}

#[test]
fn policy_and_key_digest_expectations() {
    let report = data("genoa-v5-oak.report.bin");
    let vcek = data("genoa-v5-oak.vcek.der");
    let base = ["verify", "--report", &report, "--vcek", &vcek];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        vmsa_bin(&a)
    };
    // Policy 0x30000: ABI 0.0, SMT allowed, no single socket, no migration agent.
    for (extra, failing) in [
        (&["--no-smt"][..], "FAIL  policy: SMT"),
        (&["--single-socket"][..], "FAIL  policy: single socket"),
        (
            &["--min-abi", "1.51"][..],
            "FAIL  policy: ABI              the policy accepts ABI 0.0, below 1.51",
        ),
    ] {
        let (code, out, _) = run(extra);
        assert_eq!(code, 5, "{extra:?}: {out}");
        assert!(out.contains(failing), "{out}");
    }
    let zero = "0".repeat(96);
    let (code, out, _) = run(&[
        "--min-abi",
        "0.0",
        "--id-key-digest",
        &zero,
        "--author-key-digest",
        &zero,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok    ID key digest") && out.contains("ok    policy: migration agent"),
        "{out}"
    );
    // go-sev-guest's report allows debugging: refused unless accepted.
    let debug = [
        "verify",
        "--report",
        &data("milan-v2-go-sev-guest.report.bin"),
        "--product",
        "milan",
        "--vcek",
        &data("milan-v2-go-sev-guest.vcek.der"),
    ];
    let (code, out, _) = vmsa_bin(&debug);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("FAIL  policy: debug"), "{out}");
    let mut allowed = debug.to_vec();
    allowed.push("--allow-debug");
    let (code, out, _) = vmsa_bin(&allowed);
    assert_eq!(code, 0, "{out}");
}

/// `vmsa verify … -- LAUNCH`: the measurement is the launch's; when it is not, the launches
/// near the one given are searched and the input that explains the report named. The report is
/// a real Genoa report with its MEASUREMENT replaced by a 6-vCPU launch's, so its signature
/// fails (exit 1) and the measurement check is still made and explained.
#[test]
fn a_launch_that_differs_is_explained_by_its_neighbours() {
    let fw = common::fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let launch = |vcpus: &str| {
        [
            "--mode",
            "snp",
            "--vcpus",
            vcpus,
            "--vcpu-type",
            "EPYC-Genoa",
            "--ovmf",
            fw,
        ]
        .map(String::from)
        .to_vec()
    };
    let (code, m, err) = common::vmsa_bin(
        &[
            &["measure"][..],
            &launch("6").iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let m: Vec<u8> = (0..48)
        .map(|i| u8::from_str_radix(&m.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports/");
    let mut report = std::fs::read(format!("{data}genoa-v5-oak.report.bin")).unwrap();
    report[0x90..0xc0].copy_from_slice(&m);
    let dir = common::TempDir::new("explain");
    let path = dir.write("report.bin", &report);
    let vcek = format!("{data}genoa-v5-oak.vcek.der");
    let verify = |vcpus: &str, json: bool| {
        let mut a = vec![
            "verify",
            "--report",
            path.to_str().unwrap(),
            "--vcek",
            &vcek,
        ];
        if json {
            a.push("--json");
        }
        a.push("--");
        let l = launch(vcpus);
        a.extend(l.iter().map(String::as_str));
        common::vmsa_bin(&a)
    };
    let (code, out, err) = verify("4", false);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL  report signature"), "{out}");
    assert!(out.contains("FAIL  measurement"), "{out}");
    assert!(
        out.contains("the report matches 6 vCPUs, not 4: vmsa measure --mode snp --vcpus 6 --vcpu-sig 0xa10f10 --vmm-type qemu --guest-features 0x1 --ovmf"),
        "{out}"
    );
    let (_, out, _) = verify("4", true);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["explanations"][0]
            .as_str()
            .unwrap()
            .starts_with("the report matches 6 vCPUs, not 4"),
        "{v}"
    );
    // The launch as given: the measurement check passes (the signature still fails).
    let (code, out, _) = verify("6", false);
    assert_eq!(code, 1);
    assert!(out.contains("ok    measurement"), "{out}");
    assert!(out.contains("the launch given"), "{out}");
    // A launch that cannot be given.
    let (code, _, err) = common::vmsa_bin(&[
        "verify",
        "--report",
        path.to_str().unwrap(),
        "--vcek",
        &vcek,
        "--",
        "--mode",
        "seves",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("an SNP launch"), "{err}");
}
