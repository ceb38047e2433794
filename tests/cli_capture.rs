//! `vmsa capture`: logs written in the kernel's exact format (`arch/x86/kvm/svm/sev.c`
//! `sev_es_sync_vmsa`: the `pr_debug` header, then `print_hex_dump_debug("", DUMP_PREFIX_NONE,
//! 16, 1, save, sizeof(*save), false)`: rows of 16 space-separated bytes of the 0x670-byte save
//! area), from pages `vmsa reset` wrote, with dmesg's and journalctl's prefixes: equal to the
//! prediction for the same launch; the field and its meaning named for another CPU type and for
//! a host that set debug_swap.
mod common;

use common::{TempDir, fixture, vmsa_bin};

/// The kernel's dump of `page` (its first 0x670 bytes), each line behind `prefix`.
fn dump(page: &[u8], prefix: &str) -> String {
    let mut s = format!("{prefix}kvm_amd: Virtual Machine Save Area (VMSA):\n");
    for row in page[..0x670].chunks(16) {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        s += &format!("{prefix}{}\n", hex.join(" "));
    }
    s
}

fn launch(cpu: &str) -> Vec<String> {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    [
        "--mode",
        "snp",
        "--vcpus",
        "3",
        "--vcpu-type",
        cpu,
        "--ovmf",
        fw.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_kernel_log_against_the_prediction() {
    let dir = TempDir::new("capture");
    let out = dir.join("pages");
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let (code, _, err) = vmsa_bin(&[
        "reset",
        "--mode",
        "snp",
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        fw.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pages: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(out.join(format!("vmsa{i}.bin"))).unwrap())
        .collect();
    let mut log = String::from("[   99.000001] kvm: SEV-SNP guest launched\n");
    for (i, p) in pages.iter().enumerate() {
        log += &dump(p, &format!("[  100.{i:06}] "));
    }
    log += "[  100.100000] kvm_amd: SEV-SNP launch finished\n";
    let path = dir.write("dmesg.txt", log.as_bytes());
    let capture = |cpu: &str, extra: &[&str], log: &std::path::Path| {
        let mut a = vec!["capture".to_string(), log.to_str().unwrap().to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--".into());
        a.extend(launch(cpu));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        vmsa_bin(&a)
    };
    let (code, text, err) = capture("EPYC-Milan", &[], &path);
    assert_eq!(code, 0, "{text}{err}");
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with("equal (1648 bytes captured)"))
            .count(),
        3,
        "{text}"
    );
    // Measured with another CPU type: RDX, and what it means.
    let (code, text, _) = capture("EPYC-v4", &[], &path);
    assert_eq!(code, 1);
    assert!(
        text.contains("vCPU 2: 0x310 rdx differs: host 0xa00f11, predicted 0x800f12: the host used vCPU signature 0xa00f11, you measured with 0x800f12"),
        "{text}"
    );
    // A host whose KVM added debug_swap (0x20), in journalctl's form.
    let mut swapped = pages[0].clone();
    swapped[0x3b0] |= 0x20;
    let journal = dump(&swapped, "Dec 03 07:00:01 host kernel: ");
    let path2 = dir.write("journal.txt", journal.as_bytes());
    let (code, json, _) = capture("EPYC-Milan", &["--json"], &path2);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["vcpus"][0]["fields"][0]["field"], "sev_features");
    assert!(
        v["vcpus"][0]["fields"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("debug_swap")
    );
    // The log holds one VMSA, the launch three.
    assert!(
        v["vcpus"][1]["note"]
            .as_str()
            .unwrap()
            .contains("holds 1 VMSAs; the launch has 3")
    );
    // No dump in the log.
    let empty = dir.write("none.txt", b"[ 1.0] nothing here\n");
    let (code, _, err) = capture("EPYC-Milan", &[], &empty);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dynamic_debug"), "{err}");
}
