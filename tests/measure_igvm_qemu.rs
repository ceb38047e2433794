//! `vmsa measure --igvm-profile qemu`: what QEMU 10.1/10.2 + KVM measure when QEMU launches an
//! IGVM file (read from `backends/igvm.c` and `target/i386/sev.c`, see TESTING.md): `shared`
//! pages measured, a `PARAMETER_INSERT` ahead of the page run before it, a 2 MiB page as 512
//! pages, the VMSAs last. Known answers: the `igvm` crate's `generate_snp_measurement` of the
//! file rewritten into the order and pages QEMU sends; SEV-ES by hand.

mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::{TempDir, vmsa_bin};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader as D, IgvmRevision, IsolationType};
use igvm_common::*;
use igvm_defs::*;
use vmsa_core::arch::RESET_VECTOR as BSP_RESET_EIP;
use vmsa_core::launch::{LaunchConfig, vcpu_vmsa};
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use zerocopy::{FromBytes, IntoBytes};

const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// vCPU 0's reset VMSA as KVM builds it behind QEMU: a VP context QEMU and KVM reproduce.
fn bsp_vmsa(mode: SevMode) -> Box<SevVmsa> {
    let cfg = LaunchConfig::new(
        mode,
        1,
        CpuSignature::named("EPYC-v4").unwrap(),
        VmmType::Qemu,
    );
    let v = vcpu_vmsa(&cfg, 0, BSP_RESET_EIP).unwrap();
    Box::new(SevVmsa::read_from_bytes(v.as_bytes()).unwrap())
}

fn data(b: u8) -> Vec<u8> {
    vec![b; 4096]
}

fn normal() -> IgvmPageDataFlags {
    IgvmPageDataFlags::new()
}

fn area() -> D {
    D::ParameterArea {
        number_of_bytes: 0x2000,
        parameter_area_index: 0,
        initial_data: vec![],
    }
}

fn insert(mask: u32) -> D {
    D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
        gpa: 0x10_0000,
        compatibility_mask: mask,
        parameter_area_index: 0,
    })
}

fn context(mask: u32, vmsa: Box<SevVmsa>) -> D {
    D::SnpVpContext {
        gpa: VMSA_GPA,
        compatibility_mask: mask,
        vp_index: 0,
        vmsa,
    }
}

fn measure(path: &std::path::Path, mode: &str, profile: &str) -> (i32, String, String) {
    vmsa_bin(&[
        "measure",
        "--mode",
        mode,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--igvm-profile",
        profile,
        "--igvm",
        path.to_str().unwrap(),
    ])
}

fn crate_snp(bytes: &[u8]) -> String {
    let file = igvm::IgvmFile::new_from_binary(bytes, Some(IsolationType::Snp)).unwrap();
    igvm::measurement::generate_snp_measurement(file.initializations(), file.directives(), SNP)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run of two pages, a parameter insert after it, a page, a shared page, a 2 MiB page with
/// data, the BSP's context. QEMU sends: the insert (its run was still pending), the run, the
/// page, the shared page (measured), the 2 MiB page as 512 pages (data, then zeros), the VMSA.
#[test]
fn snp_order_shared_and_large_pages_equal_the_crate_on_what_qemu_sends() {
    let two_mib = normal().with_is_2mb_page(true);
    let file = snp_only(vec![
        page(0x1000, SNP, data(1), IgvmPageDataType::NORMAL, normal()),
        page(0x2000, SNP, data(2), IgvmPageDataType::NORMAL, normal()),
        area(),
        insert(SNP),
        page(0x3000, SNP, data(3), IgvmPageDataType::NORMAL, normal()),
        page(
            0x4000,
            SNP,
            data(4),
            IgvmPageDataType::NORMAL,
            normal().with_shared(true),
        ),
        page(0x20_0000, SNP, data(5), IgvmPageDataType::NORMAL, two_mib),
        context(SNP, bsp_vmsa(SevMode::Snp)),
    ]);
    let mut sent = vec![
        area(),
        insert(SNP),
        page(0x1000, SNP, data(1), IgvmPageDataType::NORMAL, normal()),
        page(0x2000, SNP, data(2), IgvmPageDataType::NORMAL, normal()),
        page(0x3000, SNP, data(3), IgvmPageDataType::NORMAL, normal()),
        page(0x4000, SNP, data(4), IgvmPageDataType::NORMAL, normal()),
        page(0x20_0000, SNP, data(5), IgvmPageDataType::NORMAL, normal()),
    ];
    sent.extend((1..512).map(|i| {
        page(
            0x20_0000 + i * 4096,
            SNP,
            vec![],
            IgvmPageDataType::NORMAL,
            normal(),
        )
    }));
    sent.push(context(SNP, bsp_vmsa(SevMode::Snp)));
    let want = crate_snp(&snp_only(sent.clone()));
    // The same pages in file order give another digest: the order is what is tested here.
    sent.swap(1, 2);
    sent.swap(2, 3);
    assert_eq!(
        (&sent[1], &sent[3]),
        (
            &page(0x1000, SNP, data(1), IgvmPageDataType::NORMAL, normal()),
            &insert(SNP)
        )
    );
    assert_ne!(crate_snp(&snp_only(sent)), want);

    let dir = TempDir::new("qemu-snp");
    let path = dir.write("f.igvm", &file);
    let (code, out, err) = measure(&path, "snp", "qemu");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), want);
    // The spec profile refuses the 2 MiB page; without it, it differs (shared page, order).
    let (code, _, err) = measure(&path, "snp", "spec");
    assert_eq!(code, 1);
    assert!(err.contains("2 MiB page"), "{err}");
}

/// SEV-ES: the pages in file order as `LAUNCH_UPDATE_DATA` encrypts them (the shared page too,
/// a 2 MiB page as its 4 KiB of data and 2 MiB − 4 KiB of zeros), then the VMSA, even when the
/// file puts the context first.
#[test]
fn sev_es_pages_then_vmsa_by_hand() {
    use sha2::{Digest, Sha256};
    let two_mib = normal().with_is_2mb_page(true);
    let vmsa = bsp_vmsa(SevMode::SevEs);
    let file = build(
        IgvmRevision::V1,
        vec![platform(SEV_ES, IgvmPlatformType::SEV_ES, 0)],
        vec![],
        vec![
            context(SEV_ES, vmsa.clone()),
            page(0x1000, SEV_ES, data(1), IgvmPageDataType::NORMAL, normal()),
            page(0x2000, SEV_ES, vec![], IgvmPageDataType::NORMAL, normal()),
            page(
                0x3000,
                SEV_ES,
                data(3),
                IgvmPageDataType::NORMAL,
                normal().with_unmeasured(true),
            ),
            page(
                0x4000,
                SEV_ES,
                data(4),
                IgvmPageDataType::NORMAL,
                normal().with_shared(true),
            ),
            page(
                0x20_0000,
                SEV_ES,
                data(5),
                IgvmPageDataType::NORMAL,
                two_mib,
            ),
        ],
    );
    let mut h = Sha256::new();
    h.update(data(1));
    h.update([0u8; 4096]);
    h.update(data(4));
    h.update(data(5));
    h.update(vec![0u8; 0x20_0000 - 4096]);
    h.update(vmsa.as_bytes());
    let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let dir = TempDir::new("qemu-es");
    let path = dir.write("f.igvm", &file);
    let (code, out, err) = measure(&path, "seves", "qemu");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), want);
}

/// What QEMU refuses, the qemu profile refuses: a header type QEMU has no handler for (even for
/// another platform), a VP context away from 0xFFFFFFFFF000, `--native-zero`, two ID blocks.
#[test]
fn qemu_refusals() {
    let dir = TempDir::new("qemu-refuse");
    let page1 = || page(0x1000, SNP, data(1), IgvmPageDataType::NORMAL, normal());
    let cases: Vec<(Vec<u8>, &[&str], &str)> = vec![
        (
            snp_only(vec![
                page1(),
                D::ErrorRange {
                    gpa: 0x5000,
                    compatibility_mask: SNP,
                    size_bytes: 0x1000,
                },
            ]),
            &[],
            "QEMU's IGVM loader refuses header type",
        ),
        (
            snp_only(vec![
                page1(),
                D::SnpVpContext {
                    gpa: 0x8000_0000,
                    compatibility_mask: SNP,
                    vp_index: 0,
                    vmsa: bsp_vmsa(SevMode::Snp),
                },
            ]),
            &[],
            "QEMU would refuse the VMSA of vCPU 0",
        ),
        (
            snp_only(vec![page1(), context(SNP, bsp_vmsa(SevMode::Snp))]),
            &["--native-zero"],
            "never as ZERO pages",
        ),
        (
            snp_only(vec![
                page1(),
                context(SNP, bsp_vmsa(SevMode::Snp)),
                id_block([1; 48]),
                id_block([2; 48]),
            ]),
            &["--ignore-idblock"],
            "a second SNP_ID_BLOCK",
        ),
    ];
    for (i, (file, extra, message)) in cases.into_iter().enumerate() {
        let path = dir.write(&format!("{i}.igvm"), &file);
        let mut args = vec![
            "measure",
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--igvm-profile",
            "qemu",
            "--igvm",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = vmsa_bin(&args);
        assert_eq!(code, 1, "case {i}: {err}");
        assert!(err.contains(message), "case {i}: {err}");
    }
}
