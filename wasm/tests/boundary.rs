//! The boundary, run natively: what the page receives for the peer's fixtures and for Debian's
//! OVMF equals the peer's expected digests and the launch VMSAs sev-snp-measure dumps.
use serde_json::Value;
use std::path::PathBuf;
use vmsa_wasm::{Launch, detect, diff_vmsa, inspect_firmware, inspect_vmsa};

fn fixtures() -> PathBuf {
    // sev-snp-measure's fixtures, committed as test data (TESTING.md).
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sev-snp-measure")
}

fn read(path: impl AsRef<std::path::Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(l: &Launch) -> Value {
    serde_json::from_str(&l.report()).unwrap()
}

#[test]
fn peer_vectors_without_kernel() {
    let vectors: Value = serde_json::from_slice(&read(fixtures().join("vectors.json"))).unwrap();
    let mut checked = Vec::new();
    for v in vectors["vectors"].as_array().unwrap() {
        // The page measures firmware without a kernel and without a precomputed OVMF hash.
        if !v["kernel"].is_null() || v.get("snp_ovmf_hash").is_some() {
            continue;
        }
        let mode = match v["mode"].as_str().unwrap() {
            "snp" => "snp",
            "seves" => "sev-es",
            "sev" => "sev",
            other => panic!("mode {other}"),
        };
        let cpu = match v["vcpu_sig"].as_str() {
            Some("0x800f12") | None => "EPYC-v4",
            Some(other) => panic!("signature {other}: add its CPU type"),
        };
        let features = v["guest_features"]
            .as_str()
            .map_or(1, |f| u64::from_str_radix(&f[2..], 16).unwrap());
        let firmware = read(fixtures().join(v["firmware"].as_str().unwrap()));
        assert_eq!(detect(&firmware), "ovmf");
        let vcpus = v["vcpus"].as_u64().unwrap_or(1) as u32;
        let launch = Launch::new(
            &firmware,
            mode,
            vcpus,
            cpu,
            v["vmm"].as_str().unwrap(),
            features,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        let r = report(&launch);
        assert_eq!(r["digest"], v["digest"], "{}", v["name"]);
        let pages = if mode == "sev" { 0 } else { vcpus as usize };
        assert_eq!(r["vmsas"].as_array().unwrap().len(), pages, "{}", v["name"]);
        checked.push(v["name"].as_str().unwrap());
    }
    assert_eq!(
        checked,
        [
            "snp_without_kernel_default",
            "snp_without_kernel_snp_only",
            "snp_ovmfx64_without_kernel_default",
            "snp_ovmfx64_without_kernel_snp_only",
            "sev_ovmfx64_without_kernel",
        ]
    );
}

#[test]
fn debian_ovmf_vmsas_equal_the_peers_dump() {
    let ovmf = read("/usr/share/OVMF/OVMF_CODE.fd");
    let dir = std::env::temp_dir().join(format!("vmsa-wasm-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("sev-snp-measure")
        .args([
            "--mode",
            "snp",
            "--vcpus",
            "4",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            "/usr/share/OVMF/OVMF_CODE.fd",
            "--dump-vmsa",
        ])
        .current_dir(&dir)
        .output()
        .expect("sev-snp-measure 0.0.13 is installed (scripts/test.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let launch = Launch::new(&ovmf, "snp", 4, "EPYC-v4", "qemu", 1).unwrap();
    let r = report(&launch);
    assert_eq!(
        r["digest"].as_str().unwrap(),
        String::from_utf8(out.stdout).unwrap().trim()
    );
    assert_eq!(r["mode"], "SEV-SNP");
    // The QEMU profile launches exactly what KVM produces: no findings.
    assert_eq!(r["findings"], Value::Array(vec![]));
    for cpu in 0..4 {
        let peer = read(dir.join(format!("vmsa{cpu}.bin")));
        assert_eq!(launch.vmsa(cpu), peer, "vCPU {cpu}");
        assert_eq!(diff_vmsa(&launch.vmsa(cpu), &peer).unwrap(), "[]");
    }
    assert!(launch.vmsa(4).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();

    let fw: Value = serde_json::from_str(&inspect_firmware(&ovmf).unwrap()).unwrap();
    assert_eq!(fw["kind"], "ovmf");
    let reset = fw["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["guid"] == "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
        .unwrap();
    assert_eq!(reset["data"], "04b08000");
    // Debian's 2 MiB image: five ASEV sections (research note measure.md §2).
    assert_eq!(fw["sections"].as_array().unwrap().len(), 5);
    assert_eq!(fw["sections"][0]["gpa"], 0x80_0000);
}

#[test]
fn vmsa_views_and_diffs() {
    let launch = Launch::new(
        &read(fixtures().join("ovmf_AmdSev_suffix.bin")),
        "snp",
        2,
        "EPYC-v4",
        "qemu",
        1,
    )
    .unwrap();
    let bsp = launch.vmsa(0);
    let view: Value = serde_json::from_str(&inspect_vmsa(&bsp).unwrap()).unwrap();
    let field = |name: &str| {
        view["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(field("rip")["decoded"], "0xfff0");
    assert_eq!(field("rip")["offset"], 0x178);
    assert_eq!(field("rdx")["decoded"], "0x800f12");
    assert_eq!(field("efer")["decoded"], "0x1000 (SVME)");
    assert_eq!(field("cs")["kind"], "segment");

    let mut other = bsp.clone();
    other[0x178] = 0x34; // rip
    other[0x1000 - 1] = 1; // the reserved tail
    let d: Value = serde_json::from_str(&diff_vmsa(&bsp, &other).unwrap()).unwrap();
    let names: Vec<_> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["offset"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, [("rip", 0x178), ("reserved_670", 0x670)]);
    assert_eq!(d[0]["left"], "0xfff0");
    assert_eq!(d[0]["right"], "0xff34");
}

#[test]
fn bad_input_is_a_message() {
    let ovmf = read(fixtures().join("ovmf_AmdSev_suffix.bin"));
    let err = |r: Result<Launch, String>| r.err().expect("refused");
    assert_eq!(
        diff_vmsa(&[0; 4096], &[0; 10]).unwrap_err(),
        "second VMSA: a VMSA is a 4096-byte page (or QEMU's 1648-byte save area), but the input has 10 bytes"
    );
    assert_eq!(detect(&ovmf[..2000]), "vmsa");
    assert!(inspect_firmware(&ovmf[..40]).unwrap_err().contains("40"));
    assert_eq!(
        err(Launch::new(&ovmf, "tdx", 1, "EPYC-v4", "qemu", 1)),
        "unknown mode 'tdx' (sev, sev-es, snp)"
    );
    assert_eq!(
        err(Launch::new(&ovmf, "snp", 1, "Pentium", "qemu", 1)),
        "unknown CPU type 'Pentium'"
    );
    assert_eq!(
        err(Launch::new(&ovmf, "snp", 1, "EPYC-v4", "xen", 1)),
        "unknown VMM profile 'xen'"
    );
    assert_eq!(
        err(Launch::new(&ovmf, "snp", 0, "EPYC-v4", "qemu", 1)),
        "a guest needs at least one vCPU"
    );
    assert!(err(Launch::new(&ovmf, "snp", 1, "EPYC-v4", "qemu", 0)).contains("SNP_ACTIVE"));
    // Not an IGVM file past its magic.
    assert!(
        !err(Launch::new(
            b"IGVM\x01\0\0\0",
            "snp",
            1,
            "EPYC-v4",
            "qemu",
            1
        ))
        .is_empty()
    );
}

#[test]
fn findings_name_the_fields_kvm_would_not_reproduce() {
    // OVMF launches are computed through the KVM model: nothing to report.
    let ovmf = read(fixtures().join("ovmf_AmdSev_suffix.bin"));
    for vmm in ["qemu", "ec2", "gce", "kvm"] {
        let r = report(&Launch::new(&ovmf, "snp", 2, "EPYC-v4", vmm, 1).unwrap());
        assert_eq!(r["findings"], Value::Array(vec![]), "{vmm}");
    }
    // The IGVM seed's vCPU 1 context is a page of patterned bytes: refused three ways, and most
    // fields not reproducible; vCPU 0's is clean. Its ID block expects another digest.
    let igvm =
        read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/igvm/snp-small.igvm"));
    let r = report(&Launch::new(&igvm, "snp", 2, "EPYC-v4", "qemu", 1).unwrap());
    let findings = r["findings"].as_array().unwrap();
    let messages = |cpu: u64, severity: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["cpu"] == cpu && f["severity"] == severity)
            .map(|f| f["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let refusals = messages(1, "error");
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    assert!(refusals[0].starts_with("vCPU 1: KVM/QEMU refuse it: VMSA GPA 0xfffff000000"));
    assert!(refusals[1].contains("DR7 0x6a69686766656463"));
    assert!(refusals[2].contains("sev_features 0xbab9b8b7b6b5b4b3"));
    let fields = messages(1, "warning");
    assert_eq!(fields.len(), 74);
    assert!(fields.iter().any(|m| m.starts_with(
        "vCPU 1: not reproduced: 0x418 x87_rip: wanted 0x2221201f1e1d1c1b, KVM gives 0x0"
    )));
    assert!(messages(0, "warning").is_empty());
    assert_eq!(
        messages(0, "error"),
        [
            "the file's SNP_ID_BLOCK expects launch digest 090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909, not the computed one"
        ]
    );
}
