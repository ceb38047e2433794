//! The launch of an OVMF image through `launch::Launch`: the order and page types of its
//! updates (QEMU's, with the ec2 policy's CPUID page last), the updates inside guest memory, and
//! what it refuses (a SECRETS section longer than a page; plain SEV has nothing to launch).
mod common;

use common::fixture;
use vmsa_core::launch::{
    Firmware, Launch, LaunchConfig, LaunchError, UpdateSource, outside_memory,
};
use vmsa_core::measure::ItemKind;
use vmsa_core::ovmf::{self, OvmfImage, Section, SectionType, TableEntry};
use vmsa_core::page::{PageType, VMSA_GPA};
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

fn config(mode: SevMode, vcpus: u32, vmm: VmmType) -> LaunchConfig {
    LaunchConfig::new(mode, vcpus, CpuSignature(0x800f12), vmm)
}

#[test]
fn ovmf_snp_order_and_types() {
    let image = std::fs::read(fixture("ovmf_AmdSev_suffix.bin")).unwrap();
    let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
    let launch = Launch::new(&fw, &config(SevMode::Snp, 2, VmmType::Ec2)).unwrap();
    let u: Vec<_> = launch.updates().unwrap().collect();
    assert_eq!(u[0].kind, ItemKind::Firmware);
    assert_eq!(u[0].gpa + u[0].len, 1 << 32);
    assert_eq!(u[0].page_type, Some(PageType::NORMAL));
    let n = u.len();
    // ec2: the CPUID section right before the VMSAs.
    assert_eq!(u[n - 3].source, UpdateSource::Cpuid);
    assert_eq!(u[n - 3].page_type, Some(PageType::CPUID));
    assert_eq!(u[n - 2].source, UpdateSource::Vmsa { cpu: 0 });
    assert_eq!(u[n - 1].source, UpdateSource::Vmsa { cpu: 1 });
    assert!(u[n - 2].is_vmsa() && u[n - 1].is_vmsa());
    assert_eq!(u[n - 1].gpa, VMSA_GPA);
    assert_eq!(u[n - 1].page_type, Some(PageType::VMSA));
    // QEMU keeps the descriptor order: CPUID is not last.
    let qemu = Launch::new(&fw, &config(SevMode::Snp, 2, VmmType::Qemu)).unwrap();
    let q: Vec<_> = qemu.updates().unwrap().collect();
    assert_eq!(q.len(), n);
    assert_ne!(q[n - 3].source, UpdateSource::Cpuid);
    // What the digest measures is what the launch sends (OVMF has no second order).
    assert!(launch.measured_updates().eq(launch.updates().unwrap()));
    // Every update but the VMSAs lies in guest memory: 16 MiB of RAM and the image.
    let (image_gpa, image_len) = (u[0].gpa, u[0].len);
    assert!(outside_memory(u.iter().copied(), &[(0, 16 << 20), (image_gpa, image_len)]).is_none());
    let out = outside_memory(u.iter().copied(), &[(0, 1 << 20), (image_gpa, image_len)]).unwrap();
    assert!(matches!(out.kind, ItemKind::MetadataSection { .. }));
}

#[test]
fn multi_page_secrets_sections_are_refused() {
    let mut buf = vec![0u8; 64 * 1024];
    let sections = [
        Section::new(0x80_0000, 0x1000, SectionType::SNP_SEC_MEM),
        Section::new(0x80_1000, 0x2000, SectionType::SNP_SECRETS),
    ];
    ovmf::build(
        &mut buf,
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0xffff_f000,
        }],
        Some(&sections),
    )
    .unwrap();
    let fw = Firmware::Ovmf(OvmfImage::parse(&buf).unwrap());
    assert_eq!(
        Launch::new(&fw, &config(SevMode::Snp, 1, VmmType::Qemu)).unwrap_err(),
        LaunchError::SinglePageSectionSize {
            index: 1,
            section_type: SectionType::SNP_SECRETS,
            gpa: 0x80_1000,
            size: 0x2000
        }
    );
    // SEV-ES launches no sections.
    let es = Launch::new(&fw, &config(SevMode::SevEs, 1, VmmType::Qemu)).unwrap();
    assert_eq!(es.updates().unwrap().count(), 2);
    // Plain SEV is measured (the image alone) but not launched here.
    let sev = Launch::new(&fw, &config(SevMode::Sev, 1, VmmType::Qemu)).unwrap();
    assert_eq!(sev.vcpus(), 0);
    assert_eq!(sev.measured_updates().count(), 1);
    assert!(matches!(sev.updates().err(), Some(LaunchError::PlainSev)));
}

/// An `ASEV` block with no sections is launched by QEMU: `pc_system_parse_sev_metadata`
/// (hw/i386/pc_sysfw_ovmf.c) checks only the signature and that `len` covers `num_items`
/// descriptors, and `sev_snp_launch_finish` → `snp_populate_metadata_pages`
/// (target/i386/sev.c) loops over none; only a missing block is refused ("Failed to locate SEV
/// metadata header"). So it is measured: the image, then the VMSAs, nothing else. (Whether the
/// guest then boots without its secrets and CPUID pages is the firmware's business.)
#[test]
fn asev_without_sections_is_measured_as_qemu_launches_it() {
    let mut buf = vec![0u8; 64 * 1024];
    ovmf::build(
        &mut buf,
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0xffff_f000,
        }],
        Some(&[]),
    )
    .unwrap();
    let image = OvmfImage::parse(&buf).unwrap();
    assert_eq!(image.sev_metadata().map(|m| m.sections().count()), Some(0));
    let fw = Firmware::Ovmf(image);
    let launch = Launch::new(&fw, &config(SevMode::Snp, 2, VmmType::Qemu)).unwrap();
    let kinds: Vec<(u64, u64, Option<PageType>, bool)> = launch
        .updates()
        .unwrap()
        .map(|u| (u.gpa, u.len, u.page_type, u.is_vmsa()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                0x1_0000_0000 - 0x1_0000,
                0x1_0000,
                Some(PageType::NORMAL),
                false
            ),
            (VMSA_GPA, 0x1000, Some(PageType::VMSA), true),
            (VMSA_GPA, 0x1000, Some(PageType::VMSA), true),
        ]
    );
    // Without the block at all, refused.
    let mut none = vec![0u8; 64 * 1024];
    ovmf::build(
        &mut none,
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0xffff_f000,
        }],
        None,
    )
    .unwrap();
    let fw = Firmware::Ovmf(OvmfImage::parse(&none).unwrap());
    assert_eq!(
        Launch::new(&fw, &config(SevMode::Snp, 1, VmmType::Qemu)).unwrap_err(),
        LaunchError::NoSevMetadata
    );
}
