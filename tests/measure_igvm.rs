//! IGVM launch digests: equal to the `igvm` crate's own `measurement::generate_snp_measurement`
//! (0.5, feature `corim`) on files built with that crate — hand-made files with every measured
//! directive kind, random valid files (proptest) — and checked against the file's SNP ID block
//! through the real `vmsa measure --igvm` binary. SEV/SEV-ES digests recomputed by hand, as
//! QEMU's `LAUNCH_UPDATE_DATA` sequence makes them (the default) and as igvmmeasure does (its
//! profile); igvmmeasure's SNP reading checked against the `igvm` crate on the equivalent file.

mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::{TempDir, vmsa_bin};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader as D, IgvmInitializationHeader as I, IgvmRevision, IsolationType};
use igvm_common::*;
use igvm_defs::*;
use proptest::prelude::*;
use std::process::Command;
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::launch::{
    self, Firmware, IgvmOptions, IgvmProfile, Launch, LaunchConfig, LaunchError,
};
use vmsa_core::measure::{MeasuredItem, NoObserver, Observer, Sha2Pages};
use vmsa_core::page::PageType;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use zerocopy::FromZeros;

fn ours(bytes: &[u8], platform: IgvmPlatformType, native_zero: bool) -> Vec<u8> {
    let options = IgvmOptions {
        native_zero,
        ..IgvmOptions::default()
    };
    try_ours(bytes, platform, options).unwrap()
}

fn try_ours(
    bytes: &[u8],
    platform: IgvmPlatformType,
    options: IgvmOptions,
) -> Result<Vec<u8>, LaunchError> {
    Ok(measured(bytes, platform, options, NoObserver)?.0)
}

/// The launch digest of `bytes` on `platform` read with `options` (as many vCPUs as the file
/// has VP contexts), each step reported to `observer`.
fn measured<O: Observer>(
    bytes: &[u8],
    platform: IgvmPlatformType,
    options: IgvmOptions,
    observer: O,
) -> Result<(Vec<u8>, O), LaunchError> {
    let file = IgvmFile::parse(bytes).expect("our reader accepts the file");
    let p = file.select(PlatformChoice::Only(platform)).unwrap();
    let vcpus = launch::igvm_vcpus(&file, &p);
    let fw = Firmware::Igvm { file, platform: p };
    let mut cfg = LaunchConfig::new(SevMode::Snp, vcpus, CpuSignature(0x800f12), VmmType::Qemu);
    cfg.igvm = options;
    let l = Launch::new(&fw, &cfg)?;
    let (d, o) = l.digest(&Sha2Pages, observer)?;
    Ok((d.bytes().to_vec(), o))
}

const IGVMMEASURE: IgvmOptions = IgvmOptions {
    native_zero: false,
    profile: IgvmProfile::Igvmmeasure,
};

fn theirs(bytes: &[u8], mask: u32) -> [u8; 48] {
    let file = igvm::IgvmFile::new_from_binary(bytes, Some(IsolationType::Snp)).unwrap();
    igvm::measurement::generate_snp_measurement(file.initializations(), file.directives(), mask)
        .unwrap()
}

fn vmsa(rip: u64) -> Box<SevVmsa> {
    let mut v = SevVmsa::new_zeroed();
    v.rip = rip;
    v.cr0 = 0x31;
    v.efer = 0x1000;
    v.xcr0 = 1;
    Box::new(v)
}

/// SNP and SEV-ES platforms, a policy, and every directive kind the SNP digest measures: a
/// three-page parameter area, 100 bytes in the unmeasured page, CPUID_XF, one VMSA each.
fn every_kind() -> Vec<u8> {
    every_kind_as(0x3000, false, [SNP, SEV_ES])
}

/// [`every_kind`] with an area of `area_bytes`, the shared page made private if `unshare`, and
/// the two VP contexts (vCPUs 0 and 1) masked `masks`.
fn every_kind_as(area_bytes: u64, unshare: bool, masks: [u32; 2]) -> Vec<u8> {
    let mut directives = every_kind_pages(area_bytes, 100, true);
    if unshare {
        for d in &mut directives {
            if let D::PageData { flags, .. } = d {
                *flags = flags.with_shared(false);
            }
        }
    }
    for (vp_index, (mask, rip)) in masks.into_iter().zip([0xfff0, 0x1234]).enumerate() {
        directives.push(D::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: mask,
            vp_index: vp_index as u16,
            vmsa: vmsa(rip),
        });
    }
    build(
        IgvmRevision::V1,
        snp_and_sev_es(),
        vec![I::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: SNP,
        }],
        directives,
    )
}

#[test]
fn every_directive_kind_equals_the_igvm_crate() {
    let bytes = every_kind();
    assert_eq!(
        ours(&bytes, IgvmPlatformType::SEV_SNP, false),
        theirs(&bytes, SNP).to_vec()
    );
}

/// The measured items, in order, as `--explain` lists them.
#[test]
fn items_in_order() {
    let bytes = every_kind();
    let mut items: Vec<MeasuredItem> = Vec::new();
    struct Collect<'a>(&'a mut Vec<MeasuredItem>);
    impl Observer for Collect<'_> {
        fn measured(&mut self, item: &MeasuredItem) {
            self.0.push(*item);
        }
    }
    measured(
        &bytes,
        IgvmPlatformType::SEV_SNP,
        IgvmOptions::default(),
        Collect(&mut items),
    )
    .unwrap();
    let got: Vec<(u64, u8)> = items
        .iter()
        .map(|i| (i.gpa, i.page_type.unwrap().0))
        .collect();
    let (n, u, s, c, v) = (
        PageType::NORMAL.0,
        PageType::UNMEASURED.0,
        PageType::SECRETS.0,
        PageType::CPUID.0,
        PageType::VMSA.0,
    );
    assert_eq!(
        got,
        vec![
            // The three-page parameter area, every page (igvmmeasure measures only the first).
            (0x10_0000, u),
            (0x10_1000, u),
            (0x10_2000, u),
            (0x20_0000, n),
            (0x20_1000, n),
            (0x20_2000, u),
            (0x20_3000, s),
            (0x20_4000, c),
            (0x20_5000, c),
            // The shared page and the SEV-ES-only page are not measured.
            (0xFFFF_FFFF_F000, v),
        ]
    );
    // The empty NORMAL page is measured as a page of zeros.
    assert_eq!(items[4].contents, vmsa_core::measure::sha384_zero_page());
}

#[test]
fn native_zero_measures_empty_pages_as_zero_pages() {
    let bytes = every_kind();
    let plain = ours(&bytes, IgvmPlatformType::SEV_SNP, false);
    let native = ours(&bytes, IgvmPlatformType::SEV_SNP, true);
    assert_ne!(plain, native);
}

fn vmsa_page(rip: u64) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    page.copy_from_slice(zerocopy::IntoBytes::as_bytes(&*vmsa(rip)));
    page
}

/// SEV-ES: one SHA-256 over what QEMU encrypts with `LAUNCH_UPDATE_DATA`, in directive order,
/// then the VMSA: the page with data, **the empty page as 4 KiB of zeros**, the SEV-ES-only
/// page, the SEV-ES VP context (the SNP-only pages and context are filtered out by mask; the
/// parameter insert is not measured on SEV-ES).
#[test]
fn sev_es_digest_by_hand() {
    use sha2::{Digest, Sha256};
    let bytes = every_kind();
    let mut h = Sha256::new();
    h.update((0..4096).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    h.update([0u8; 4096]);
    h.update([5u8; 4096]);
    h.update(vmsa_page(0x1234));
    assert_eq!(
        ours(&bytes, IgvmPlatformType::SEV_ES, false),
        h.finalize().to_vec()
    );
}

/// The igvmmeasure profile on SEV-ES: the data of the pages that have some (the empty page adds
/// nothing), and the VMSA of every VP context whatever its mask, so the SNP context too.
#[test]
fn sev_es_igvmmeasure_profile_by_hand() {
    use sha2::{Digest, Sha256};
    let bytes = every_kind();
    let mut h = Sha256::new();
    h.update((0..4096).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    h.update([5u8; 4096]);
    h.update(vmsa_page(0xfff0));
    h.update(vmsa_page(0x1234));
    let want = h.finalize().to_vec();
    assert_eq!(
        try_ours(&bytes, IgvmPlatformType::SEV_ES, IGVMMEASURE).unwrap(),
        want
    );
    // The command line's --igvm-profile.
    let dir = TempDir::new("profile");
    let path = dir.write("every.igvm", &bytes);
    let (code, out, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "seves",
        "--igvm-profile",
        "igvmmeasure",
        "--igvm",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out.trim(), hex);
}

/// igvmmeasure's SNP reading is the `igvm` crate's on the file as igvmmeasure sees it: a one-page
/// parameter area, the shared page private, the SEV-ES VP context as an SNP one.
#[test]
fn snp_igvmmeasure_profile_equals_the_igvm_crate_on_the_equivalent_file() {
    let bytes = every_kind();
    let seen_as = every_kind_as(0x1000, true, [SNP, SNP]);
    let got = try_ours(&bytes, IgvmPlatformType::SEV_SNP, IGVMMEASURE).unwrap();
    assert_eq!(got, theirs(&seen_as, SNP).to_vec());
    // ... which is not the spec digest.
    assert_ne!(got, ours(&bytes, IgvmPlatformType::SEV_SNP, false));
}

/// SEV/SEV-ES: SECRETS and CPUID pages are refused (QEMU refuses them), unmeasured pages are
/// left out; igvmmeasure hashes the data of both.
#[test]
fn sev_es_snp_only_and_unmeasured_pages() {
    use sha2::{Digest, Sha256};
    let normal = IgvmPageDataFlags::new();
    let file = |extra: Vec<D>| {
        let mut d = vec![page(
            0x1000,
            SEV_ES,
            vec![1; 4096],
            IgvmPageDataType::NORMAL,
            normal,
        )];
        d.extend(extra);
        build(IgvmRevision::V1, snp_and_sev_es(), vec![], d)
    };
    let unmeasured = file(vec![page(
        0x2000,
        SEV_ES,
        vec![2; 4096],
        IgvmPageDataType::NORMAL,
        normal.with_unmeasured(true),
    )]);
    let sha = |parts: &[&[u8]]| {
        let mut h = Sha256::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize().to_vec()
    };
    assert_eq!(
        ours(&unmeasured, IgvmPlatformType::SEV_ES, false),
        sha(&[&[1; 4096]])
    );
    assert_eq!(
        try_ours(&unmeasured, IgvmPlatformType::SEV_ES, IGVMMEASURE).unwrap(),
        sha(&[&[1; 4096], &[2; 4096]])
    );
    for (t, what) in [
        (IgvmPageDataType::SECRETS, "secrets"),
        (IgvmPageDataType::CPUID_DATA, "CPUID"),
        (IgvmPageDataType::CPUID_XF, "CPUID"),
    ] {
        let bytes = file(vec![page(0x3000, SEV_ES, vec![3; 4096], t, normal)]);
        let err = try_ours(&bytes, IgvmPlatformType::SEV_ES, IgvmOptions::default()).unwrap_err();
        assert_eq!(
            err,
            LaunchError::SnpOnlyPage {
                header_index: 3,
                gpa: 0x3000,
                what
            }
        );
        assert_eq!(
            try_ours(&bytes, IgvmPlatformType::SEV_ES, IGVMMEASURE).unwrap(),
            sha(&[&[1; 4096], &[3; 4096]])
        );
    }
}

/// 2 MiB pages: refused by the spec profile; igvmmeasure measures an empty one as 512 NORMAL
/// zero pages and cannot measure one with data.
#[test]
fn large_pages() {
    let normal = IgvmPageDataFlags::new().with_is_2mb_page(true);
    let file = |data: Vec<u8>| {
        snp_only(vec![
            page(
                0x1000,
                SNP,
                vec![1; 4096],
                IgvmPageDataType::NORMAL,
                IgvmPageDataFlags::new(),
            ),
            page(0x20_0000, SNP, data, IgvmPageDataType::NORMAL, normal),
        ])
    };
    let empty = file(vec![]);
    assert!(matches!(
        try_ours(&empty, IgvmPlatformType::SEV_SNP, IgvmOptions::default()),
        Err(LaunchError::LargePage { gpa: 0x20_0000, .. })
    ));
    // The same 512 pages, one directive each, as the `igvm` crate measures them.
    let mut pages = vec![page(
        0x1000,
        SNP,
        vec![1; 4096],
        IgvmPageDataType::NORMAL,
        IgvmPageDataFlags::new(),
    )];
    pages.extend((0..512).map(|i| {
        page(
            0x20_0000 + i * 4096,
            SNP,
            vec![],
            IgvmPageDataType::NORMAL,
            IgvmPageDataFlags::new(),
        )
    }));
    let small = snp_only(pages);
    assert_eq!(
        try_ours(&empty, IgvmPlatformType::SEV_SNP, IGVMMEASURE).unwrap(),
        theirs(&small, SNP).to_vec()
    );
    assert!(matches!(
        try_ours(&file(vec![2; 4096]), IgvmPlatformType::SEV_SNP, IGVMMEASURE),
        Err(LaunchError::LargePageWithData { gpa: 0x20_0000, .. })
    ));
}

#[derive(Debug, Clone)]
enum Kind {
    Normal(u8),
    Empty,
    Unmeasured,
    Secrets,
    Cpuid,
    Shared,
    Area(u64),
    Vmsa(u64),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u8>().prop_map(Kind::Normal),
        Just(Kind::Empty),
        Just(Kind::Unmeasured),
        Just(Kind::Secrets),
        Just(Kind::Cpuid),
        Just(Kind::Shared),
        (1u64..4).prop_map(Kind::Area),
        any::<u64>().prop_map(Kind::Vmsa),
    ]
}

proptest! {
    #![proptest_config(vmsa_core::strategy::config("measure_igvm", 64))]

    /// Random valid files: our digest equals the `igvm` crate's, on every platform mask.
    #[test]
    fn random_files_equal_the_igvm_crate(kinds in proptest::collection::vec(kind(), 1..24)) {
        let normal = IgvmPageDataFlags::new();
        // One page with data first: igvm 0.5 refuses files with an empty data section (which it
        // writes itself), so every file carries some data.
        let mut directives = vec![page(0xf0_0000, SNP, vec![0x5a; 4096], IgvmPageDataType::NORMAL, normal)];
        let mut gpa = 0x100_0000u64;
        let mut area = 0u32;
        let mut vp = 0u16;
        for k in kinds {
            match k {
                Kind::Normal(b) => directives.push(page(gpa, SNP, vec![b; 4096], IgvmPageDataType::NORMAL, normal)),
                Kind::Empty => directives.push(page(gpa, SNP, vec![], IgvmPageDataType::NORMAL, normal)),
                Kind::Unmeasured => directives.push(page(gpa, SNP, vec![], IgvmPageDataType::NORMAL, normal.with_unmeasured(true))),
                Kind::Secrets => directives.push(page(gpa, SNP, vec![], IgvmPageDataType::SECRETS, normal)),
                Kind::Cpuid => directives.push(page(gpa, SNP, vec![], IgvmPageDataType::CPUID_DATA, normal)),
                Kind::Shared => directives.push(page(gpa, SNP, vec![3; 4096], IgvmPageDataType::NORMAL, normal.with_shared(true))),
                Kind::Area(pages) => {
                    directives.push(D::ParameterArea { number_of_bytes: pages * 4096, parameter_area_index: area, initial_data: vec![] });
                    directives.push(D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT { gpa, compatibility_mask: SNP, parameter_area_index: area }));
                    area += 1;
                    gpa += (pages - 1) * 4096;
                }
                Kind::Vmsa(rip) => {
                    directives.push(D::SnpVpContext { gpa: 0xFFFF_FFFF_F000, compatibility_mask: SNP, vp_index: vp, vmsa: vmsa(rip) });
                    vp += 1;
                }
            }
            gpa += 4096;
        }
        let bytes = build(
            IgvmRevision::V1,
            vec![platform(SNP, IgvmPlatformType::SEV_SNP, 0)],
            vec![I::GuestPolicy { policy: 0x30000, compatibility_mask: SNP }],
            directives,
        );
        prop_assert_eq!(ours(&bytes, IgvmPlatformType::SEV_SNP, false), theirs(&bytes, SNP).to_vec());
    }
}

fn with_id_block(ld: [u8; 48]) -> Vec<u8> {
    snp_only(vec![
        page(
            0x20_0000,
            SNP,
            vec![7; 4096],
            IgvmPageDataType::NORMAL,
            IgvmPageDataFlags::new(),
        ),
        D::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: SNP,
            vp_index: 0,
            vmsa: vmsa(0xfff0),
        },
        id_block(ld),
    ])
}

fn vmsa_measure(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(["measure", "--mode", "snp", "--igvm"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

/// The CLI prints the digest the file's ID block signs, and refuses a file whose ID block
/// expects another one unless told to ignore it.
#[test]
fn cli_and_id_block() {
    let dir = TempDir::new("id");
    // The ID block does not take part in the digest, so measure once with a dummy ld...
    let probe = with_id_block([0; 48]);
    let ld = theirs(&probe, SNP);
    let good = dir.write("good.igvm", &with_id_block(ld));
    let out = vmsa_measure(&good, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex: String = ld.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex);

    let bad = dir.write("bad.igvm", &with_id_block([0xee; 48]));
    let out = vmsa_measure(&bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the SNP_ID_BLOCK"));
    let out = vmsa_measure(&bad, &["--ignore-idblock"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex);
}

/// The IGVM file the browser test drops (`fuzz/seeds/igvm/snp-small.igvm`): the digest the real
/// `vmsa measure --igvm` prints is the `igvm` crate's, so the page, checked against the CLI, is
/// anchored through it.
#[test]
fn the_browser_tests_igvm_file_measures_as_the_igvm_crate_does() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/igvm/snp-small.igvm"
    );
    let bytes = std::fs::read(path).unwrap();
    // The file's SNP platform is mask 0x4.
    let digest = theirs(&bytes, 0x4);
    let want: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let (code, out, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp",
        "--igvm",
        path,
        "--ignore-idblock",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), want);
}
