//! `vmsa measure --mode snp:svsm`: COCONUT-SVSM + OVMF without IGVM, on sev-snp-measure's own
//! SVSM fixtures (`tests/data/svsm`, see TESTING.md).
//!
//! - the `launch` profile (the default) gives the digests sev-snp-measure first recorded from a
//!   real launch (its commit 0a1396f; QEMU 0e64fb84 on host kernel e1335c6f0);
//! - the `sev-snp-measure` profile equals sev-snp-measure 0.0.13 run live, digest and every
//!   `--dump-vmsa` file byte for byte, on configurations this test picks at random;
//! - the two profiles' pages differ in MXCSR alone;
//! - what QEMU's pflash (or the mode) cannot launch is refused, with the limit named.
mod common;

use common::{TempDir, peer_installed, vmsa_bin};
use std::path::PathBuf;
use std::process::Command;

fn data(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/data/svsm", name]
        .iter()
        .collect();
    p.to_str().unwrap().to_owned()
}

/// The OVMF_VARS size of sev-snp-measure's SVSM test (`test_snp_svsm_*`).
const VARS: &str = "540672";

fn svsm_args<'a>(vcpus: &'a str, ovmf: &'a str, svsm: &'a str) -> Vec<&'a str> {
    vec![
        "measure", "--mode", "snp:svsm", "--vcpus", vcpus, "--ovmf", ovmf, "--svsm", svsm,
    ]
}

fn ours(extra: &[&str], vcpus: &str) -> (i32, String, String) {
    let (ovmf, svsm) = (data("svsm_ovmf.fd"), data("svsm.bin"));
    let mut a = svsm_args(vcpus, &ovmf, &svsm);
    a.extend_from_slice(extra);
    vmsa_bin(&a)
}

#[test]
fn launch_profile_gives_the_digests_measured_on_a_real_launch() {
    // sev-snp-measure commit 0a1396f ("Add SNP:SVSM mode"), tests/test_guest.py, both recorded
    // from the launch its fixtures README names.
    for (vcpus, want) in [
        (
            "2",
            "4ae03ca013690e956bc1eb16bc1c6465788dba64ad88a650db09216fa9cdddf06167bfce810eba8988108e71458dd68b",
        ),
        (
            "4",
            "265aed64f2454253f6b19e49e17041ef052dedf964dd8d2740794a06aee3a720c475e3643a1b7e26b9efce7a107bf77f",
        ),
    ] {
        let (code, out, err) = ours(&["--vcpu-type", "EPYC-v4", "--vars-size", VARS], vcpus);
        assert_eq!(
            (code, out.trim(), err.as_str()),
            (0, want, ""),
            "{vcpus} vCPUs"
        );
    }
}

#[test]
fn sev_snp_measure_profile_gives_its_0_0_13_test_digests() {
    // sev-snp-measure 0.0.13, tests/test_guest.py `test_snp_svsm_4_vcpus`.
    let (code, out, _) = ours(
        &[
            "--vcpu-type",
            "EPYC-v4",
            "--vars-size",
            VARS,
            "--svsm-profile",
            "sev-snp-measure",
            "-v",
        ],
        "4",
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "Calculated SEV_SNP_SVSM guest measurement: 27d154c27b7b359c935e250ec6fee72aa0ae8c1225e3b0e1cf46a9567e938066d7d6f94bbdc4a857818bdb79277a44b2"
    );
}

#[test]
fn sev_snp_measure_profile_equals_the_peer_on_random_configurations() {
    if !peer_installed() {
        return;
    }
    let mut seed = common::random_seed("VMSA_SVSM_SEED");
    let types = ["EPYC", "EPYC-v4", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa"];
    let (ovmf, svsm) = (data("svsm_ovmf.fd"), data("svsm.bin"));
    for _ in 0..4 {
        let vcpus = (1 + common::xorshift(&mut seed) % 9).to_string();
        let vtype = types[(common::xorshift(&mut seed) % types.len() as u64) as usize];
        let vars = (4096 * (1 + common::xorshift(&mut seed) % 512)).to_string();
        let (ours_dir, peer_dir) = (TempDir::new("ours"), TempDir::new("peer"));
        let mut args = svsm_args(&vcpus, &ovmf, &svsm);
        args.remove(0);
        let common = [
            "--vcpu-type",
            vtype,
            "--vars-size",
            &vars,
            "--dump-vmsa",
            "-v",
        ];
        let peer = Command::new("sev-snp-measure")
            .args(&args)
            .args(common)
            .current_dir(&*peer_dir)
            .output()
            .unwrap();
        let mine = Command::new(env!("CARGO_BIN_EXE_vmsa"))
            .arg("measure")
            .args(&args)
            .args(common)
            .args(["--svsm-profile", "sev-snp-measure"])
            .current_dir(&*ours_dir)
            .output()
            .unwrap();
        let what = format!("{vcpus} vCPUs, {vtype}, vars {vars}");
        assert!(peer.status.success(), "{what}: peer failed");
        assert_eq!(
            String::from_utf8_lossy(&mine.stdout),
            String::from_utf8_lossy(&peer.stdout),
            "{what}"
        );
        for i in 0..vcpus.parse::<u32>().unwrap() {
            let name = format!("vmsa{i}.bin");
            let (a, b) = (
                std::fs::read(ours_dir.join(&name)).unwrap(),
                std::fs::read(peer_dir.join(&name)).unwrap(),
            );
            assert!(a == b, "{what}: {name} differs");
        }
    }
}

#[test]
fn the_profiles_differ_in_mxcsr_alone() {
    let pages: Vec<Vec<u8>> = ["launch", "sev-snp-measure"]
        .iter()
        .map(|profile| {
            let dir = TempDir::new(profile);
            let (ovmf, svsm) = (data("svsm_ovmf.fd"), data("svsm.bin"));
            let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
                .args(svsm_args("1", &ovmf, &svsm))
                .args(["--vcpu-sig", "0xa00f11", "--vars-size", VARS])
                .args(["--dump-vmsa", "--svsm-profile", profile])
                .current_dir(&*dir)
                .output()
                .unwrap();
            assert!(out.status.success());
            std::fs::read(dir.join("vmsa0.bin")).unwrap()
        })
        .collect();
    let differ: Vec<usize> = (0..4096).filter(|&i| pages[0][i] != pages[1][i]).collect();
    // MXCSR at 0x408: 0x1f80 against 0; FCW (0x410) is 0 in both.
    assert_eq!(differ, [0x408, 0x409]);
    assert_eq!(&pages[1][0x408..0x40c], &0x1f80u32.to_le_bytes());
    // The SVSM entry (launch offset 0 at the SVSM's GPA: 4 GiB - OVMF - vars - SVSM), flat
    // 32-bit CS, the signature in RDX.
    let gpa = (1u64 << 32) - 3_653_632 - 540_672 - 1_138_688;
    assert_eq!(&pages[0][0x178..0x180], &gpa.to_le_bytes());
    assert_eq!(
        &pages[0][0x10..0x20],
        &[
            8, 0, 0x9b, 0xc, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0
        ]
    );
    assert_eq!(&pages[0][0x310..0x318], &0xa00f11u64.to_le_bytes());
}

#[test]
fn refuses_what_cannot_launch() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--vars-size", "4097"], 1, "non-zero multiple of 0x1000"),
        (&["--vars-size", "0"], 1, "non-zero multiple of 0x1000"),
        (
            &["--vars-size", "0xc00000"],
            1,
            "combined size of system firmware exceeds",
        ),
        (
            &["--vars-size", VARS, "--guest-features", "0x21"],
            1,
            "guest features 0x21 cannot apply",
        ),
        (
            &["--vars-size", VARS, "--vmm-type", "ec2"],
            1,
            "only implemented for QEMU",
        ),
        (
            &["--vars-size", VARS, "--snp-ovmf-hash", &"0".repeat(96)],
            1,
            "only works with snp",
        ),
        (
            &["--vars-size", VARS, "--kernel", "/dev/null"],
            1,
            "measures no kernel",
        ),
        (&[], 2, "requires --vars-size or --vars-file"),
    ];
    for (extra, want_code, want) in cases {
        let mut a = vec!["--vcpu-type", "EPYC-v4"];
        a.extend_from_slice(extra);
        let (code, out, err) = ours(&a, "2");
        assert_eq!(code, *want_code, "{extra:?}: {err}");
        assert!(out.is_empty(), "{extra:?}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // --vars-file: its size.
    let dir = TempDir::new("vars");
    let vars = dir.write("OVMF_VARS.fd", &vec![0; 540_672]);
    let (code, out, _) = ours(
        &[
            "--vcpu-type",
            "EPYC-v4",
            "--vars-file",
            vars.to_str().unwrap(),
        ],
        "2",
    );
    assert_eq!((code, &out[..16]), (0, "4ae03ca013690e95"));
    // An SVSM image without the SVSM_INFO entry (the OVMF image in its place).
    let ovmf = data("svsm_ovmf.fd");
    let (code, _, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp:svsm",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        &ovmf,
        "--svsm",
        &ovmf,
        "--vars-size",
        VARS,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("Can't find SVSM_INFO_GUID entry"), "{err}");
    // The SVSM flags outside snp:svsm.
    let (code, _, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        &ovmf,
        "--svsm",
        &ovmf,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("are for --mode snp:svsm"), "{err}");
}
