//! The `vmsa reset`, `vmsa diff` and `vmsa inspect FIRMWARE.fd` commands, run as the real
//! binary and compared with snapshots in `tests/data/cli/` (our own output, reviewed; see
//! `common::snapshot` for `VMSA_REGEN`). Each snapshot has an anchored sibling named beside it.
mod common;

use common::TempDir;
use std::path::Path;
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sev-snp-measure");
const AMDSEV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sev-snp-measure/ovmf_AmdSev_suffix.bin"
);

fn vmsa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args)
        .output()
        .expect("vmsa runs")
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cli")
        .join(name);
    // Paths in the output depend on the checkout; make them stable.
    common::snapshot(&path, &actual.replace(FIXTURES, "FIXTURES"));
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn inspect_fixture() {
    let o = vmsa(&["inspect", AMDSEV]);
    assert!(o.status.success());
    golden("inspect_amdsev.txt", &stdout(&o));
    let o = vmsa(&["inspect", "--json", AMDSEV]);
    assert!(o.status.success());
    golden("inspect_amdsev.json", &stdout(&o));
}

#[test]
fn inspect_debian_4m_says_no_snp() {
    let path = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    if !common::require::file("ovmf", path) {
        return;
    }
    let o = vmsa(&["inspect", path]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("SEV metadata: none (this image cannot boot under SEV-SNP)"),
        "{out}"
    );
    assert!(out.contains("APs 0x808004"), "{out}");
}

#[test]
fn reset_writes_pages_and_json() {
    let dir = TempDir::new("reset");
    let o = vmsa(&[
        "reset",
        "--ovmf",
        AMDSEV,
        "--vcpus",
        "3",
        "--mode",
        "snp",
        "--vcpu-type",
        "EPYC-Milan",
        "--guest-features",
        "0x21",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    golden("reset_amdsev_snp_milan_3.json", &stdout(&o));
    let pages: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(dir.join(format!("vmsa{i}.bin"))).unwrap())
        .collect();
    assert!(pages.iter().all(|p| p.len() == 4096));
    assert_eq!(pages[1], pages[2]);
    assert!(!dir.join("vmsa3.bin").exists());
    // rdx = EPYC-Milan's signature, sev_features 0x21.
    assert_eq!(
        u64::from_le_bytes(pages[0][0x310..0x318].try_into().unwrap()),
        0xa00f11
    );
    assert_eq!(
        u64::from_le_bytes(pages[0][0x3b0..0x3b8].try_into().unwrap()),
        0x21
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reset_text_and_signature_forms() {
    let o = vmsa(&[
        "reset",
        "--ovmf",
        AMDSEV,
        "--vcpus",
        "2",
        "--mode",
        "sev-es",
        "--vcpu-family",
        "25",
        "--vcpu-model",
        "17",
        "--vcpu-stepping",
        "0",
    ]);
    assert!(o.status.success());
    golden("reset_amdsev_seves_genoa_2.txt", &stdout(&o));
    let by_sig = vmsa(&[
        "reset",
        "--ovmf",
        AMDSEV,
        "--vcpus",
        "2",
        "--mode",
        "sev-es",
        "--vcpu-sig",
        "0xa10f10",
    ]);
    assert_eq!(stdout(&by_sig), stdout(&o));
    let by_name = vmsa(&[
        "reset",
        "--ovmf",
        AMDSEV,
        "--vcpus",
        "2",
        "--mode",
        "seves",
        "--vcpu-type",
        "EPYC-Genoa",
    ]);
    assert_eq!(stdout(&by_name), stdout(&o));
}

#[test]
fn reset_errors_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--vcpus", "1", "--mode", "snp"],
            "QEMU puts the vCPU signature in RDX",
        ),
        (
            &["--vcpus", "0", "--vcpu-type", "EPYC"],
            "at least one vCPU",
        ),
        (&["--vcpus", "5000", "--vcpu-type", "EPYC"], "4096"),
        (
            &["--vcpus", "1", "--vcpu-type", "EPYC-v9"],
            "unknown vCPU type",
        ),
        (
            &[
                "--vcpus",
                "1",
                "--vcpu-family",
                "300",
                "--vcpu-model",
                "0",
                "--vcpu-stepping",
                "0",
            ],
            "family 0x12c",
        ),
        (
            &[
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--guest-features",
                "0x20",
            ],
            "lack SNP_ACTIVE",
        ),
        (
            &[
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--guest-features",
                "0x3",
            ],
            "not all supported",
        ),
        (
            &["--vcpus", "1", "--vcpu-type", "EPYC", "--legacy-init"],
            "KVM_SEV_INIT2",
        ),
    ];
    for (args, msg) in cases {
        let mut all = vec!["reset", "--ovmf", AMDSEV];
        all.extend_from_slice(args);
        let o = vmsa(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // A clap usage error (two signature forms at once) is exit 2 as well.
    let o = vmsa(&[
        "reset",
        "--ovmf",
        AMDSEV,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC",
        "--vcpu-sig",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn diff_names_fields_and_exits_1() {
    let dir = TempDir::new("diff");
    let (q, g) = (dir.join("qemu"), dir.join("gce"));
    for (vmm, d) in [("qemu", &q), ("gce", &g)] {
        let o = vmsa(&[
            "reset",
            "--ovmf",
            AMDSEV,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--vmm-type",
            vmm,
            "--out",
            d.to_str().unwrap(),
        ]);
        assert!(o.status.success());
    }
    let (a, b) = (q.join("vmsa0.bin"), g.join("vmsa0.bin"));
    let same = vmsa(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(stdout(&same), "identical\n");
    let o = vmsa(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o).replace(dir.to_str().unwrap(), "DIR");
    golden("diff_qemu_gce.txt", &text);
    let o = vmsa(&["diff", "--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g_pat", "rdx", "mxcsr", "x87_fcw"]);
    // A segment difference names the part.
    let mut page = std::fs::read(&a).unwrap();
    page[0x92] = 0x83; // tr.attrib
    let c = dir.join("c.bin");
    std::fs::write(&c, &page).unwrap();
    let o = vmsa(&["diff", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(
        stdout(&o)
            .contains("attrib 0x08b (tss-busy,present,dpl0) != 0x083 (tss16-busy,present,dpl0)"),
        "{}",
        stdout(&o)
    );
    // Not a page: exit 2 with the reason.
    let o = vmsa(&[
        "diff",
        a.to_str().unwrap(),
        AMDSEV
            .replace("ovmf_AmdSev_suffix.bin", "vectors.json")
            .as_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
