//! Where the peers are wrong, we refuse or are right:
//! - sev-snp-measure 0.0.13 measures SNP for firmware without `ASEV` metadata (Debian's
//!   `OVMF_CODE_4M.fd`); we refuse it, as QEMU does ("Failed to locate SEV metadata header").
//! - sev-snp-measure crashes (`AttributeError`) for several vCPUs and reset address 0; we refuse
//!   with a reason (QEMU: "SEV-ES reset address is zero").
//! - sev-snp-measure 0.0.13 silently ignores `--vcpu-sig 0`; 0 is a valid signature here.
//! - QEMU loads the TR base from the LDTR base (`sev_apply_cpu_context`); the fidelity check
//!   flags it and the KVM model of a direct VMM does not have it.
//! - The kvm profile and the model of what KVM makes of QEMU's state agree with the tool where
//!   the tool has values, and the legacy init (QEMU's `sev-guest` default) differs from what the
//!   tool assumes (FCW/MXCSR 0).
mod common;

use common::{TempDir, fixture, launch_vmsas, peer_installed};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm::{FidelityParams, KvmParams, Origin, Refusal, VmInit, VmmPath, check_vmsa};
use vmsa_core::launch::{LaunchConfig, LaunchError};
use vmsa_core::ovmf::{self, OvmfImage, Section, SectionType, TableEntry};
use vmsa_core::page::VMSA_GPA as INITIAL_VMSA_GPA;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

/// SNP with two EPYC-v4 vCPUs, as both sev-snp-measure and `vmsa reset` spell it.
const SNP_2_EPYC: [&str; 6] = ["--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4"];

/// A 4 KiB firmware image with these table entries and metadata, in a scratch directory.
fn write_image(entries: &[TableEntry<'_>], md: Option<&[Section]>) -> (TempDir, PathBuf) {
    let mut img = vec![0u8; 4096];
    ovmf::build(&mut img, entries, md).unwrap();
    let dir = TempDir::new("fw");
    let path = dir.write("fw.fd", &img);
    (dir, path)
}

/// `sev-snp-measure SNP_2_EPYC --dump-vmsa --ovmf FW`, run in `dir` (where it writes the pages).
fn peer_dump_vmsa(dir: &Path, fw: &Path) -> Output {
    Command::new("sev-snp-measure")
        .args(SNP_2_EPYC)
        .args(["--dump-vmsa", "--ovmf"])
        .arg(fw)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The bytes of sev-snp-measure's AmdSev OVMF fixture.
fn amd_sev() -> Vec<u8> {
    std::fs::read(fixture("ovmf_AmdSev_suffix.bin")).unwrap()
}

fn epyc() -> CpuSignature {
    CpuSignature::named("EPYC-v4").unwrap()
}

#[test]
fn snp_without_metadata_is_refused_where_sev_snp_measure_measures_it() {
    let (dir, path) = write_image(
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0x808004,
        }],
        None,
    );
    let bytes = std::fs::read(&path).unwrap();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let cfg = LaunchConfig::new(SevMode::Snp, 2, epyc(), VmmType::Qemu);
    assert_eq!(launch_vmsas(&fw, &cfg), Err(LaunchError::NoSevMetadata));
    // SEV-ES needs no metadata.
    let es = LaunchConfig::new(SevMode::SevEs, 2, epyc(), VmmType::Qemu);
    assert!(launch_vmsas(&fw, &es).is_ok());
    if peer_installed() {
        let out = peer_dump_vmsa(&dir, &path);
        assert!(
            out.status.success(),
            "sev-snp-measure 0.0.13 measures it (the peer defect)"
        );
        assert!(dir.join("vmsa1.bin").exists());
    }
    let cli = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .arg("reset")
        .args(SNP_2_EPYC)
        .arg("--ovmf")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("ASEV"));
}

#[test]
fn debian_4m_image_is_refused_for_snp() {
    let path = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    if !common::require::file("ovmf", path) {
        return;
    }
    let bytes = std::fs::read(path).unwrap();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let cfg = LaunchConfig::new(SevMode::Snp, 1, epyc(), VmmType::Qemu);
    assert_eq!(launch_vmsas(&fw, &cfg), Err(LaunchError::NoSevMetadata));
}

#[test]
fn zero_reset_address_is_refused_where_sev_snp_measure_crashes() {
    let secs = [Section::new(0x800000, 0x1000, SectionType::SNP_SECRETS)];
    let (dir, path) = write_image(
        &[TableEntry::SevEsResetBlock { reset_addr: 0 }],
        Some(&secs),
    );
    let bytes = std::fs::read(&path).unwrap();
    let fw = OvmfImage::parse(&bytes).unwrap();
    // QEMU refuses reset address 0 even for one vCPU (`sev_es_parse_reset_block`).
    let one = LaunchConfig::new(SevMode::Snp, 1, epyc(), VmmType::Qemu);
    assert!(matches!(
        launch_vmsas(&fw, &one),
        Err(LaunchError::ZeroResetAddress { vcpus: 1, .. })
    ));
    let two = LaunchConfig::new(SevMode::Snp, 2, epyc(), VmmType::Qemu);
    let e = launch_vmsas(&fw, &two).unwrap_err();
    assert!(
        matches!(e, LaunchError::ZeroResetAddress { vcpus: 2, .. }),
        "{e}"
    );
    if peer_installed() {
        let out = peer_dump_vmsa(&dir, &path);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("AttributeError"),
            "the peer crashes instead of explaining"
        );
    }
}

#[test]
fn launch_refusals() {
    let secs = [Section::new(0x800000, 0x1000, SectionType::SNP_SECRETS)];
    let mut img = vec![0u8; 4096];
    ovmf::build(&mut img, &[], Some(&secs)).unwrap();
    let fw = OvmfImage::parse(&img).unwrap();
    let mut cfg = LaunchConfig::new(SevMode::Snp, 0, epyc(), VmmType::Qemu);
    assert_eq!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::Refused(Refusal::NoVcpus))
    );
    cfg.vcpus = 4097;
    assert_eq!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::Refused(Refusal::TooManyVcpus {
            vcpus: 4097,
            max: 4096
        }))
    );
    cfg.vcpus = 2;
    assert_eq!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::NoResetBlock { vcpus: 2 })
    );
    // QEMU needs the reset block for one vCPU too (`sev_es_find_reset_vector` fails).
    cfg.vcpus = 1;
    assert_eq!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::NoResetBlock { vcpus: 1 })
    );
    cfg.guest_features = SevFeatures::DEBUG_SWAP;
    assert_eq!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::Refused(Refusal::SnpActiveMissing(0x20)))
    );
    let mut es = LaunchConfig::new(SevMode::SevEs, 1, epyc(), VmmType::Qemu);
    es.guest_features = SevFeatures::SNP_ACTIVE;
    assert_eq!(
        launch_vmsas(&fw, &es),
        Err(LaunchError::Refused(Refusal::SnpActiveWithoutSnp(1)))
    );
    // Unknown section types are refused for SNP.
    let odd = [Section::new(0x800000, 0x1000, SectionType(0x42))];
    let mut img = vec![0u8; 4096];
    ovmf::build(&mut img, &[], Some(&odd)).unwrap();
    let fw = OvmfImage::parse(&img).unwrap();
    cfg.guest_features = SevFeatures::SNP_ACTIVE;
    assert!(matches!(
        launch_vmsas(&fw, &cfg),
        Err(LaunchError::Firmware(ovmf::OvmfError::UnknownSectionType {
            section_type: 0x42,
            ..
        }))
    ));
}

#[test]
fn vcpu_sig_zero_is_a_signature() {
    let bytes = amd_sev();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let launch = launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::Snp, 1, CpuSignature(0), VmmType::Qemu),
    )
    .unwrap();
    assert_eq!(launch.bsp().rdx, 0);
    // The CLI takes it too (sev-snp-measure 0.0.13 treats 0 as "not given" and fails).
    let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args([
            "reset",
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-sig",
            "0",
            "--json",
            "--ovmf",
        ])
        .arg(fixture("ovmf_AmdSev_suffix.bin"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"rdx\""));
}

/// QEMU's `sev_apply_cpu_context` loads TR with the LDTR base: a VMSA whose TR base differs
/// passes QEMU's check but launches with another page. Our check says so; a direct VMM (and
/// our own launch VMSAs, which always have both bases 0) do not have the problem.
#[test]
fn qemu_tr_base_bug_is_flagged() {
    let bytes = amd_sev();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let launch = launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::Snp, 2, epyc(), VmmType::Qemu),
    )
    .unwrap();
    let qemu = FidelityParams {
        mode: SevMode::Snp,
        kvm: KvmParams::default(),
        path: VmmPath::Qemu,
    };
    for (_, page) in launch.pages() {
        assert!(
            check_vmsa(page, 0, INITIAL_VMSA_GPA, 1, &qemu).is_exact(),
            "our launch VMSAs are reproducible through QEMU"
        );
    }
    let mut igvm_like = launch.bsp().clone();
    igvm_like.tr.base = 0x5000;
    let f = check_vmsa(&igvm_like, 0, INITIAL_VMSA_GPA, 1, &qemu);
    assert!(f.refusals().is_empty(), "QEMU accepts it");
    let finding = f.findings().next().unwrap();
    assert_eq!(
        (finding.field.name, finding.origin),
        ("tr", Origin::Programmed)
    );
    assert!(finding.reason().contains("LDTR"));
    assert_eq!(
        f.reproduced().tr.base,
        0,
        "QEMU would launch it with the LDTR base"
    );
    let direct = FidelityParams {
        path: VmmPath::Direct,
        ..qemu
    };
    assert!(check_vmsa(&igvm_like, 0, INITIAL_VMSA_GPA, 1, &direct).is_exact());
}

/// sev-snp-measure's QEMU values assume `KVM_SEV_INIT2`; QEMU's `sev-guest` default is the legacy
/// init, where KVM puts no FPU state in the VMSA. We model both.
#[test]
fn legacy_init_differs_from_what_the_tool_assumes() {
    let bytes = amd_sev();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let mut cfg = LaunchConfig::new(SevMode::SevEs, 2, epyc(), VmmType::Qemu);
    let init2 = launch_vmsas(&fw, &cfg).unwrap();
    cfg.kvm.init = VmInit::Legacy;
    let legacy = launch_vmsas(&fw, &cfg).unwrap();
    let diffs: Vec<_> = vmsa_core::vmsa::diff(init2.bsp(), legacy.bsp())
        .map(|d| d.field.name)
        .collect();
    assert_eq!(diffs, ["mxcsr", "x87_fcw"]);
    assert_eq!((init2.bsp().x87_fcw, legacy.bsp().x87_fcw), (0x37f, 0));
}

/// The kvm profile: KVM's own reset values on the BSP; on an AP the VMM's KVM_GET_SREGS /
/// KVM_SET_SREGS round trip sets the accessed bit of DS/ES/FS/GS.
#[test]
fn kvm_profile_values() {
    let bytes = amd_sev();
    let fw = OvmfImage::parse(&bytes).unwrap();
    let launch = launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::Snp, 2, CpuSignature(0), VmmType::Kvm),
    )
    .unwrap();
    let (bsp, ap) = (launch.bsp(), launch.ap().unwrap());
    assert_eq!(
        (
            bsp.cs.attrib.bits(),
            bsp.ds.attrib.bits(),
            bsp.ss.attrib.bits(),
            bsp.tr.attrib.bits()
        ),
        (0x9a, 0x92, 0x92, 0x83)
    );
    assert_eq!(
        (
            ap.cs.attrib.bits(),
            ap.ds.attrib.bits(),
            ap.ss.attrib.bits(),
            ap.tr.attrib.bits()
        ),
        (0x9a, 0x93, 0x92, 0x83)
    );
    assert_eq!(
        (bsp.rdx, bsp.x87_fcw, bsp.mxcsr, bsp.cr0, bsp.efer, bsp.cr4),
        (0x600, 0x37f, 0x1f80, 0x10, 0x1000, 0x40)
    );
    assert_eq!(
        (ap.cs.base, ap.rip, ap.cs.selector),
        (0x800000, 0xb004, 0xf000)
    );
}
