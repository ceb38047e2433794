//! VP contexts as launch VMSAs (core), and the `vmsa inspect` / `vmsa reset --igvm` /
//! `vmsa diff` command lines on IGVM files written by the `igvm` crate.

mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::TempDir;
use igvm::{IgvmDirectiveHeader as D, IgvmRevision};
use igvm_common::*;
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType};
use std::process::Command;
use vmsa_core::arch::RESET_VECTOR as BSP_RESET_EIP;
use vmsa_core::igvm::{At, IgvmFile, PlatformChoice};
use vmsa_core::kvm::Refusal;
use vmsa_core::launch::{
    Firmware, Launch, LaunchConfig, LaunchError, VmsaSource as Source, vcpu_vmsa,
};
use vmsa_core::page::VMSA_GPA as INITIAL_VMSA_GPA;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use zerocopy::{FromBytes, IntoBytes};

const EPYC_V4: u32 = 0x800f12;

/// A VMSA that KVM reproduces exactly under QEMU: the QEMU reset state synced by KVM, moved
/// to 32-bit protected mode at 0x100000 (fields QEMU hands to KVM).
fn kvm_exact(cpu: u32) -> Vmsa {
    let cfg = LaunchConfig::new(SevMode::Snp, 4, CpuSignature(EPYC_V4), VmmType::Qemu);
    let mut v = vcpu_vmsa(&cfg, cpu, BSP_RESET_EIP).unwrap();
    v.rip = 0x10_0000 + u64::from(cpu);
    v.rax = 0x1234;
    v
}

fn to_igvm_vmsa(v: &Vmsa) -> Box<igvm::snp_defs::SevVmsa> {
    Box::new(igvm::snp_defs::SevVmsa::read_from_bytes(v.as_bytes()).unwrap())
}

/// SNP (mask 1) and SEV-ES (mask 2) platforms; SNP contexts for vCPU 0 (twice: the second
/// wins) and vCPU 2; an SEV-ES context for vCPU 0.
fn file_with_contexts(vcpu2: &Vmsa, vcpu2_gpa: u64) -> Vec<u8> {
    let mut first = kvm_exact(0);
    first.rip = 0xdead;
    let mut es = kvm_exact(0);
    es.sev_features = 0;
    build(
        IgvmRevision::V1,
        vec![
            platform(1, IgvmPlatformType::SEV_SNP, 0),
            platform(2, IgvmPlatformType::SEV_ES, 0),
        ],
        vec![],
        vec![
            D::PageData {
                gpa: 0x10_0000,
                compatibility_mask: 3,
                flags: IgvmPageDataFlags::new(),
                data_type: IgvmPageDataType::NORMAL,
                data: vec![0xf4; 4096],
            },
            D::SnpVpContext {
                gpa: INITIAL_VMSA_GPA,
                compatibility_mask: 1,
                vp_index: 0,
                vmsa: to_igvm_vmsa(&first),
            },
            D::SnpVpContext {
                gpa: INITIAL_VMSA_GPA,
                compatibility_mask: 1,
                vp_index: 0,
                vmsa: to_igvm_vmsa(&kvm_exact(0)),
            },
            D::SnpVpContext {
                gpa: vcpu2_gpa,
                compatibility_mask: 1,
                vp_index: 2,
                vmsa: to_igvm_vmsa(vcpu2),
            },
            D::SnpVpContext {
                gpa: INITIAL_VMSA_GPA,
                compatibility_mask: 2,
                vp_index: 0,
                vmsa: to_igvm_vmsa(&es),
            },
        ],
    )
}

/// `bytes` on its platform `t`.
fn firmware(bytes: &[u8], t: IgvmPlatformType) -> Firmware<'_> {
    let file = IgvmFile::parse(bytes).unwrap();
    let platform = file.select(PlatformChoice::Only(t)).unwrap();
    Firmware::Igvm { file, platform }
}

fn launch<'f, 'a>(fw: &'f Firmware<'a>, vcpus: u32) -> Result<Launch<'f, 'a>, LaunchError> {
    let cfg = LaunchConfig::new(SevMode::Snp, vcpus, CpuSignature(EPYC_V4), VmmType::Qemu);
    Launch::new(fw, &cfg)
}

#[test]
fn contexts_become_vmsas_the_rest_get_the_reset_state() {
    let bytes = file_with_contexts(&kvm_exact(2), INITIAL_VMSA_GPA);
    let fw = firmware(&bytes, IgvmPlatformType::SEV_SNP);
    let l = launch(&fw, 4).unwrap();
    let e: Vec<_> = l.vmsas().map(Result::unwrap).collect();
    assert_eq!(e.len(), 4);
    // vCPU 0: the second context replaced the first (at #2, offset 0x58; first at #1... ).
    assert_eq!(e[0].vmsa, kvm_exact(0));
    let Source::Context {
        replaced,
        first,
        at,
    } = e[0].source
    else {
        panic!("vCPU 0 has a context")
    };
    assert_eq!(replaced, 1);
    assert_eq!(first.map(|a| a.index), Some(3));
    assert_eq!(at.index, 4);
    // vCPU 1 and 3: KVM's reset VMSA at the reset vector, with vCPU 0's features.
    let cfg = LaunchConfig::new(SevMode::Snp, 4, CpuSignature(EPYC_V4), VmmType::Qemu);
    for cpu in [1, 3] {
        assert_eq!(e[cpu as usize].source, Source::Reset);
        assert_eq!(
            e[cpu as usize].vmsa,
            vcpu_vmsa(&cfg, cpu, BSP_RESET_EIP).unwrap()
        );
        assert_eq!(e[cpu as usize].gpa, INITIAL_VMSA_GPA);
    }
    assert_eq!(e[2].vmsa, kvm_exact(2));
    // Every context here is one KVM reproduces.
    for x in &e {
        assert!(
            l.fidelity(x).is_exact(),
            "vCPU {}: {:?}",
            x.cpu_index,
            l.fidelity(x).findings().collect::<Vec<_>>()
        );
    }
    l.check_strict().unwrap();
    // The SEV-ES platform has its own context for vCPU 0, with features 0.
    let fw = firmware(&bytes, IgvmPlatformType::SEV_ES);
    let es = launch(&fw, 2).unwrap();
    assert_eq!(es.config().mode, SevMode::SevEs);
    assert_eq!(es.vmsa(0).unwrap().vmsa.sev_features, 0);
    assert_eq!(es.vmsa(1).unwrap().source, Source::Reset);
}

/// Anchored outside our code: sev-snp-measure 0.0.13's BSP page (`tests/data/inspect`, SNP,
/// EPYC-v4, guest features 0x21, QEMU) as vCPU 0's context. vCPU 0's launch VMSA is those
/// bytes; vCPU 1, without a context, gets QEMU/KVM's reset state at the reset vector with vCPU
/// 0's features, which is the same page the peer dumps for a BSP.
#[test]
fn a_vcpu_without_a_context_gets_the_page_the_peer_dumps() {
    let peer = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/inspect/ssm-snp-epyc-v4-0x21-vmsa0.bin"),
    )
    .unwrap();
    let page = Vmsa::read_from_bytes(&peer).unwrap();
    let bytes = build(
        IgvmRevision::V1,
        vec![platform(1, IgvmPlatformType::SEV_SNP, 0)],
        vec![],
        vec![D::SnpVpContext {
            gpa: INITIAL_VMSA_GPA,
            compatibility_mask: 1,
            vp_index: 0,
            vmsa: to_igvm_vmsa(&page),
        }],
    );
    let fw = firmware(&bytes, IgvmPlatformType::SEV_SNP);
    let l = launch(&fw, 2).unwrap();
    let e: Vec<_> = l.vmsas().map(Result::unwrap).collect();
    assert_eq!(e[0].vmsa.as_page()[..], peer[..]);
    assert_eq!(e[1].source, Source::Reset);
    assert_eq!(e[1].vmsa.as_page()[..], peer[..]);
}

#[test]
fn fidelity_findings_and_strict_mode() {
    let mut odd = kvm_exact(2);
    odd.dr7 = 0x401; // L0 enabled: KVM refuses anything but DR7_FIXED_1
    odd.gdtr.selector = 0x10;
    odd.cpl = 3;
    odd.sev_features = 0x21; // SNP_ACTIVE | DEBUG_SWAP, vCPU 0 has only SNP_ACTIVE
    let bytes = file_with_contexts(&odd, 0x7000_0000);
    let fw = firmware(&bytes, IgvmPlatformType::SEV_SNP);
    let l = launch(&fw, 3).unwrap();
    let e = l.vmsa(2).unwrap();
    let fid = l.fidelity(&e);
    assert!(fid.refusals().contains(&Refusal::VmsaGpa {
        vcpu: 2,
        gpa: 0x7000_0000
    }));
    assert!(fid.refusals().contains(&Refusal::FeaturesDisagree {
        vcpu: 2,
        bsp: 1,
        this: 0x21
    }));
    let names: Vec<_> = fid.findings().map(|c| c.field.name).collect();
    assert!(
        fid.refusals().contains(&Refusal::Dr7 {
            vcpu: 2,
            dr7: 0x401
        }),
        "{:?}",
        fid.refusals()
    );
    for n in ["gdtr", "cpl", "sev_features"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    let Err(LaunchError::NotReproducible {
        cpu_index: 2,
        at: At { index: 5, .. },
        ..
    }) = l.check_strict()
    else {
        panic!("strict mode must refuse vCPU 2")
    };
}

#[test]
fn out_of_range_vp_and_platforms_without_vmsas() {
    let bytes = file_with_contexts(&kvm_exact(2), INITIAL_VMSA_GPA);
    let fw = firmware(&bytes, IgvmPlatformType::SEV_SNP);
    assert!(matches!(
        launch(&fw, 2),
        Err(LaunchError::VpIndexOutOfRange {
            vp_index: 2,
            vcpus: 2,
            ..
        })
    ));
    let native = build(
        IgvmRevision::V1,
        vec![platform(1, IgvmPlatformType::NATIVE, 0)],
        vec![],
        vec![D::PageData {
            gpa: 0,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: vec![1],
        }],
    );
    let fw = firmware(&native, IgvmPlatformType::NATIVE);
    assert!(matches!(launch(&fw, 1), Err(LaunchError::NotSev("native"))));
}

// ---- the command line ----------------------------------------------------------------------

fn vmsa(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args)
        .output()
        .expect("runs vmsa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_inspect_reset_and_diff() {
    let dir = TempDir::new("cli");
    let file = dir.write(
        "guest.igvm",
        &file_with_contexts(&kvm_exact(2), INITIAL_VMSA_GPA),
    );
    let f = file.to_str().unwrap();

    let (ok, out, err) = vmsa(&["inspect", f]);
    assert!(ok, "{err}");
    assert!(out.contains("IGVM format version 1, x64"), "{out}");
    assert!(out.contains("mask 0x1 snp"), "{out}");
    assert!(out.contains("selected (strongest, as QEMU): snp"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("VP_CONTEXT")
            && l.trim_end()
                .ends_with("gpa [0xfffffffff000, 0x1000000000000)")),
        "{out}"
    );
    assert!(
        out.contains("PAGE_DATA") && out.contains("normal: 1"),
        "{out}"
    );

    let (ok, out, err) = vmsa(&["inspect", "--json", f]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["platforms"][1]["platform_type"], "sev-es");
    assert_eq!(j["directives"]["VP_CONTEXT"]["count"], 4);
    assert_eq!(j["vp_contexts"].as_array().unwrap().len(), 4);

    let out_dir = dir.join("out");
    let o = out_dir.to_str().unwrap();
    let (ok, _, err) = vmsa(&[
        "reset",
        "--igvm",
        f,
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-v4",
        "--out",
        o,
        "--strict",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("replaces 1 earlier context(s)"), "{err}");
    assert!(err.contains("vCPU 1: no VP context, reset state"), "{err}");
    let v0 = std::fs::read(out_dir.join("vmsa0.bin")).unwrap();
    assert_eq!(v0, kvm_exact(0).as_bytes());
    let v2 = std::fs::read(out_dir.join("vmsa2.bin")).unwrap();
    assert_eq!(v2, kvm_exact(2).as_bytes());

    // vmsa diff works on the written pages: vCPU 0 and 2 differ in rip.
    let (ok, out, _) = vmsa(&[
        "diff",
        out_dir.join("vmsa0.bin").to_str().unwrap(),
        out_dir.join("vmsa2.bin").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(out.contains("rip"), "{out}");

    // The SEV-ES platform, named.
    let (ok, _, err) = vmsa(&[
        "reset",
        "--igvm",
        f,
        "--platform",
        "sev-es",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--out",
        o,
        "--replace",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        Vmsa::from_page(&std::fs::read(out_dir.join("vmsa0.bin")).unwrap())
            .unwrap()
            .sev_features,
        0
    );

    // Strict mode refuses a context KVM would not reproduce.
    let mut odd = kvm_exact(2);
    odd.idtr.attrib = vmsa_core::SegmentAttributes::LDT_RESET;
    std::fs::write(&file, file_with_contexts(&odd, INITIAL_VMSA_GPA)).unwrap();
    let (ok, _, err) = vmsa(&[
        "reset",
        "--igvm",
        f,
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-v4",
        "--strict",
    ]);
    assert!(!ok);
    assert!(
        err.contains("not reproduced") && err.contains("idtr"),
        "{err}"
    );
    assert!(
        err.contains("KVM would not reproduce the VMSA of vCPU 2"),
        "{err}"
    );

    // A malformed file: typed error with the header index and offset.
    let mut bad = file_with_contexts(&kvm_exact(2), INITIAL_VMSA_GPA);
    bad[20] ^= 0xff;
    std::fs::write(&file, bad).unwrap();
    let (ok, _, err) = vmsa(&["inspect", f]);
    assert!(!ok);
    assert!(err.contains("checksum mismatch"), "{err}");
}
