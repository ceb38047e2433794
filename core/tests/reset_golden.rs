//! The launch VMSAs against sev-snp-measure 0.0.13's `--dump-vmsa` pages, through the golden
//! hash table `tests/data/sev-snp-measure-vmsa.tsv` (made by `scripts/diff-sev-snp-measure.py
//! --goldens`, see TESTING.md): every Debian `ovmf` image and both fixtures, modes SEV-ES and
//! SNP, VMM types QEMU/ec2/gce, every CPU type the tool knows, guest features 0x1 and 0x21, and
//! vCPU counts 1 to 64.
mod common;

use common::launch_vmsas;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use vmsa_core::flags::SevFeatures;
use vmsa_core::launch::LaunchConfig;
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

const GOLDEN: &str = include_str!("../../tests/data/sev-snp-measure-vmsa.tsv");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sev-snp-measure");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn image_path(name: &str) -> String {
    match name.strip_prefix("fixture:") {
        Some(f) => format!("{FIXTURES}/{f}"),
        None if name == "OVMF.fd" => "/usr/share/ovmf/OVMF.fd".into(),
        None => format!("/usr/share/OVMF/{name}"),
    }
}

struct Row<'a> {
    image: &'a str,
    image_sha256: &'a str,
    mode: SevMode,
    vmm: VmmType,
    cpu: &'a str,
    features: Option<u64>,
    bsp: &'a str,
    ap: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    GOLDEN
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 8, "bad golden row {l:?}");
            Row {
                image: c[0],
                image_sha256: c[1],
                mode: if c[2] == "snp" {
                    SevMode::Snp
                } else {
                    SevMode::SevEs
                },
                vmm: VmmType::from_name(c[3]).unwrap(),
                cpu: c[4],
                features: (c[5] != "-")
                    .then(|| u64::from_str_radix(c[5].trim_start_matches("0x"), 16).unwrap()),
                bsp: c[6],
                ap: c[7],
            }
        })
        .collect()
}

fn config(r: &Row<'_>, vcpus: u32) -> LaunchConfig {
    let mut cfg = LaunchConfig::new(r.mode, vcpus, CpuSignature::named(r.cpu).unwrap(), r.vmm);
    if let Some(f) = r.features {
        cfg.guest_features = SevFeatures::from_bits_retain(f);
    }
    cfg
}

#[test]
fn golden_table_covers_the_matrix() {
    let rows = rows();
    let images: BTreeSet<_> = rows.iter().map(|r| r.image).collect();
    assert_eq!(images.len(), 7, "{images:?}");
    let cpus: BTreeSet<_> = rows.iter().map(|r| r.cpu).collect();
    assert_eq!(cpus.len(), 16);
    // Per image: SEV-ES × 3 VMMs × 16 types, SNP × 3 × 16 × 2 features.
    assert_eq!(rows.len(), 7 * (48 + 96));
}

#[test]
fn byte_identical_to_sev_snp_measure() {
    let mut checked = 0;
    let mut peer_wrong = 0;
    let mut skipped = BTreeSet::new();
    // Each image is read and hashed once (debug-build SHA-256 of 4 MiB is slow).
    let mut images: std::collections::BTreeMap<String, Option<Vec<u8>>> = Default::default();
    for r in rows() {
        let path = image_path(r.image);
        let bytes = images.entry(path.clone()).or_insert_with(|| {
            let b = std::fs::read(&path).ok()?;
            assert_eq!(
                hex(&Sha256::digest(&b)),
                r.image_sha256,
                "{path} is not the image the goldens were made from; re-run scripts/diff-sev-snp-measure.py --goldens"
            );
            Some(b)
        });
        let Some(bytes) = bytes.as_deref() else {
            skipped.insert(path);
            continue;
        };
        let fw = OvmfImage::parse(bytes).unwrap();
        let result = launch_vmsas(&fw, &config(&r, 2));
        if r.mode == SevMode::Snp && fw.sev_metadata().is_none() {
            // sev-snp-measure dumps pages for firmware that cannot boot under SNP; we refuse.
            assert!(result.is_err(), "{path}: SNP without ASEV must be refused");
            peer_wrong += 1;
            continue;
        }
        let launch =
            result.unwrap_or_else(|e| panic!("{path} {:?} {:?} {}: {e}", r.mode, r.vmm, r.cpu));
        let ctx = format!(
            "{} {:?} {:?} {} {:?}",
            r.image, r.mode, r.vmm, r.cpu, r.features
        );
        assert_eq!(
            hex(&Sha256::digest(launch[0].vmsa.as_page())),
            r.bsp,
            "BSP page, {ctx}"
        );
        assert_eq!(
            hex(&Sha256::digest(launch[1].vmsa.as_page())),
            r.ap,
            "AP page, {ctx}"
        );
        checked += 1;
    }
    for s in &skipped {
        common::require::file("ovmf", s);
    }
    eprintln!(
        "{checked} configurations byte-identical; {peer_wrong} refused where sev-snp-measure is wrong"
    );
    assert!(
        checked >= 2 * 144,
        "at least the two fixtures are always checked"
    );
}

/// vCPU counts 1 to 64: the BSP page, then the AP page for every other vCPU, as the tool dumps.
#[test]
fn every_vcpu_count_from_1_to_64() {
    let rows = rows();
    for r in rows
        .iter()
        .filter(|r| r.image.starts_with("fixture:") && r.cpu == "EPYC-v4")
    {
        let bytes = std::fs::read(image_path(r.image)).unwrap();
        let fw = OvmfImage::parse(&bytes).unwrap();
        for n in 1..=64 {
            let launch = launch_vmsas(&fw, &config(r, n)).unwrap();
            assert_eq!(launch.len(), n as usize);
            for (i, l) in launch.iter().enumerate() {
                let want = if i == 0 { r.bsp } else { r.ap };
                assert_eq!(
                    hex(&Sha256::digest(l.vmsa.as_page())),
                    want,
                    "vCPU {i} of {n}"
                );
            }
            assert_eq!(
                launch.iter().map(|l| l.cpu_index).collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            assert!(launch.iter().all(|l| l.gpa == 0xffff_ffff_f000));
        }
    }
}
