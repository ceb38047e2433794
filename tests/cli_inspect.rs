//! `vmsa inspect` on VMSA pages dumped by sev-snp-measure 0.0.13
//! (`--mode snp --vcpus 2 --vcpu-type EPYC-v4 --guest-features 0x21 --dump-vmsa` on Debian's
//! OVMF_CODE.fd; see TESTING.md): exactly the fields that tool sets, decoded, as text and JSON,
//! and clear one-line errors for files that are not a page.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inspect")
        .join(name)
}

fn vmsa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args)
        .output()
        .unwrap()
}

/// The snapshot `name` (see `common::snapshot`).
fn golden(name: &str, got: &str) {
    common::snapshot(&data(name), got);
}

#[test]
fn bsp_page_shows_exactly_the_fields_sev_snp_measure_sets() {
    let page = data("ssm-snp-epyc-v4-0x21-vmsa0.bin");
    let out = vmsa(&["inspect", page.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "es",
            "cs",
            "ss",
            "ds",
            "fs",
            "gs",
            "gdtr",
            "ldtr",
            "idtr",
            "tr",
            "efer",
            "cr4",
            "cr0",
            "dr7",
            "dr6",
            "rflags",
            "rip",
            "g_pat",
            "rdx",
            "sev_features",
            "xcr0",
            "mxcsr",
            "x87_fcw"
        ]
    );
    for line in [
        "0x010 cs               sel=f000 base=ffff0000 limit=ffff attr=09b code,read,accessed,present,dpl0,16-bit",
        "0x0d0 efer             0x1000 (SVME)",
        "0x148 cr4              0x40 (MCE)",
        "0x158 cr0              0x10 (ET)",
        "0x178 rip              0xfff0",
        "0x268 g_pat            0x7040600070406",
        "0x310 rdx              0x800f12",
        "0x3b0 sev_features     0x21 (SNP_ACTIVE|DEBUG_SWAP)",
        "0x3e8 xcr0             0x1",
        "0x408 mxcsr            0x1f80",
        "0x410 x87_fcw          0x37f",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in\n{text}"
        );
    }
    golden("ssm-snp-epyc-v4-0x21-vmsa0.txt", &text);
}

#[test]
fn ap_page_and_json() {
    let page = data("ssm-snp-epyc-v4-0x21-vmsa1.bin");
    let out = vmsa(&["inspect", "--json", page.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = v.as_array().unwrap();
    assert_eq!(fields.len(), 23);
    let cs = fields.iter().find(|f| f["name"] == "cs").unwrap();
    assert_eq!(cs["offset"], 0x10);
    assert_eq!(cs["segment"]["selector"], 0xf000);
    assert_eq!(cs["segment"]["base"], 0x80_0000);
    assert_eq!(cs["segment"]["attrib"], 0x9b);
    let rip = fields.iter().find(|f| f["name"] == "rip").unwrap();
    assert_eq!(rip["value"], 0xb004);
    golden("ssm-snp-epyc-v4-0x21-vmsa1.json", &text);
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("vmsa-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let short = dir.join("short.bin");
    std::fs::write(&short, [0u8; 100]).unwrap();
    for (path, msg) in [
        (
            short.to_str().unwrap().to_owned(),
            "a VMSA is a 4096-byte page (or QEMU's 1648-byte save area), but the input has 100 bytes",
        ),
        (
            "/nonexistent/vmsa.bin".to_owned(),
            "cannot read /nonexistent/vmsa.bin",
        ),
    ] {
        let out = vmsa(&["inspect", &path]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("vmsa: error: ") && err.contains(msg),
            "{err}"
        );
        assert!(!err.contains("panicked"));
    }
}
