//! The `krun` VMM type: libkrun's vCPU state against the pages libkrunfw recorded from real
//! libkrun launches (`utils/vmsa.h`: SEV-ES under the legacy init, SNP under the out-of-tree
//! SNP init; neither copies FPU state) and against virtee's `sev` crate (`VMMType::KRUN`), the
//! one measurement tool with a libkrun profile.
mod common;

use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType, VMSA};
use std::path::Path;
use vmsa_core::arch::RESET_VECTOR;
use vmsa_core::flags::SevFeatures;
use vmsa_core::kvm::VmInit;
use vmsa_core::launch::{LaunchConfig, vcpu_vmsa};
use vmsa_core::reset::VmmType;
use vmsa_core::vmsa::diff;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use zerocopy::IntoBytes;

/// libkrun's AP entry (`RESET_VECTOR_SEV_AP` 0xfff3 in qboot's segment at 0xffff0000).
const KRUN_AP_EIP: u32 = 0xffff_fff3;

fn dump(name: &str) -> Vmsa {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libkrunfw")
        .join(name);
    Vmsa::from_page(&std::fs::read(p).unwrap()).unwrap()
}

fn krun(mode: SevMode, init: VmInit, cpu: u32, eip: u32) -> Vmsa {
    let mut cfg = LaunchConfig::new(mode, 2, CpuSignature(0x800f12), VmmType::Krun);
    cfg.kvm.init = init;
    vcpu_vmsa(&cfg, cpu, eip).unwrap()
}

fn differing(a: &Vmsa, b: &Vmsa) -> Vec<&'static str> {
    diff(a, b).map(|d| d.field.name).collect()
}

/// `vmsa measure` of a libkrun launch in `dir` (its `--dump-vmsa` pages written there): the
/// digest it prints.
fn measure_krun(
    dir: &Path,
    mode: &str,
    vcpus: &str,
    bundles: [&Path; 3],
    ram: &str,
    libkrun: &str,
) -> String {
    let [qboot, kernel, initrd] = bundles.map(|p| p.to_str().unwrap().to_owned());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .current_dir(dir)
        .args([
            "measure",
            "--mode",
            mode,
            "--vcpus",
            vcpus,
            "--krun-qboot",
            &qboot,
            "--krun-kernel",
            &kernel,
            "--krun-initrd",
            &initrd,
            "--ram-mib",
            ram,
            "--libkrun",
            libkrun,
            "--dump-vmsa",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// SEV-ES (libkrun ≤ 1.10: `KVM_SEV_ES_INIT`): both pages byte for byte.
#[test]
fn sev_es_pages_are_libkrunfws() {
    let bsp = krun(SevMode::SevEs, VmInit::Legacy, 0, RESET_VECTOR);
    let ap = krun(SevMode::SevEs, VmInit::Legacy, 1, KRUN_AP_EIP);
    assert_eq!(bsp.as_bytes(), dump("VMSA_BP.bin").as_bytes());
    assert_eq!(ap.as_bytes(), dump("VMSA_AP.bin").as_bytes());
}

/// SNP: the recorded pages came from AMD's out-of-tree SNP host (no FPU sync); under Linux ≥
/// 6.11's `KVM_SEV_INIT2` (libkrun ≥ 1.12) the FPU words libkrun programs are in the page, and
/// nothing else differs.
#[test]
fn snp_pages_are_libkrunfws_with_the_init2_fpu_words() {
    let bsp = krun(SevMode::Snp, VmInit::Init2, 0, RESET_VECTOR);
    let ap = krun(SevMode::Snp, VmInit::Init2, 1, KRUN_AP_EIP);
    for (ours, theirs) in [
        (&bsp, dump("SNP_VMSA_BP.bin")),
        (&ap, dump("SNP_VMSA_AP.bin")),
    ] {
        assert_eq!(differing(ours, &theirs), ["mxcsr", "x87_fcw"]);
        assert_eq!((ours.mxcsr, ours.x87_fcw), (0x1f80, 0x37f));
        assert_eq!((theirs.mxcsr, theirs.x87_fcw), (0, 0));
    }
}

/// The `sev` crate's KRUN pages (for an OVMF launch, the AP at OVMF's reset address): its AP
/// is ours; its BSP lacks RSP, RBP and RSI, because it passes the vCPU count where libkrun's
/// vCPU index belongs (its `build_save_area(…, cpu_num)`), so the BSP takes the AP branch —
/// libkrunfw's own BSP page has them. Under INIT2 the crate also lacks the FPU words.
#[test]
fn the_sev_crates_krun_pages_differ_where_it_is_wrong() {
    let ap_eip = 0x0080_b004u32;
    for (mode, init, features) in [
        (SevMode::SevEs, VmInit::Legacy, 0u64),
        (SevMode::Snp, VmInit::Init2, 1),
    ] {
        let crate_pages = VMSA::new(
            u64::from(ap_eip),
            CpuType::EpycV4,
            VMMType::KRUN,
            Some(2),
            GuestFeatures(features),
        )
        .pages(2)
        .unwrap();
        let theirs: Vec<Vmsa> = crate_pages
            .iter()
            .map(|p| Vmsa::from_page(p).unwrap())
            .collect();
        let bsp = krun(mode, init, 0, RESET_VECTOR);
        let ap = krun(mode, init, 1, ap_eip);
        assert_eq!(
            bsp.sev_features,
            SevFeatures::from_bits_retain(features).bits()
        );
        let fpu: &[&str] = match init {
            VmInit::Init2 => &["mxcsr", "x87_fcw"],
            VmInit::Legacy => &[],
        };
        let mut want_bsp = vec!["rsp", "rbp", "rsi"];
        want_bsp.extend_from_slice(fpu);
        want_bsp.sort_unstable();
        let mut got_bsp = differing(&bsp, &theirs[0]);
        got_bsp.sort_unstable();
        assert_eq!(got_bsp, want_bsp, "{mode:?}");
        let mut got_ap = differing(&ap, &theirs[1]);
        got_ap.sort_unstable();
        assert_eq!(got_ap, fpu, "{mode:?}");
    }
}

/// A whole libkrun SNP launch — qboot (libkrunfw-sev's own), a kernel and an initrd bundle,
/// boot_params, the fixed pages, the VMSAs — against sev-snp-measure 0.0.13's `GCTX` walking
/// the same pages in libkrun's order (`builder.rs`, `amdsnp/mod.rs`), with boot_params written
/// by the script from libkrun's `configure_64bit_boot` independently of the core. The VMSA
/// pages are `vmsa measure --dump-vmsa`'s (the VMSA model has its own peers).
#[test]
fn a_libkrun_snp_launch_walks_as_the_peers_gctx() {
    if !common::peer_installed() {
        return;
    }
    let dir = common::TempDir::new("krun");
    let qboot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libkrunfw/qboot-sev-bios.bin");
    // Bundles as libkrunfw makes them: whole 64 KiB units.
    let kernel: Vec<u8> = (0..0x3_0000u32).map(|i| (i * 7 % 251) as u8).collect();
    let initrd: Vec<u8> = (0..0x2_0000u32).map(|i| (i * 13 % 241) as u8).collect();
    let k = dir.write("kernel.bundle", &kernel);
    let i = dir.write("initrd.bundle", &initrd);
    for (ram, vcpus, libkrun) in [("1024", "2", "1.16"), ("4096", "3", "1.12")] {
        let ours = measure_krun(&dir, "snp", vcpus, [&qboot, &k, &i], ram, libkrun);
        let script = r#"
import sys, struct
from sevsnpmeasure.gctx import GCTX
qboot, kernel, initrd, ram_mib, vcpus, d = sys.argv[1:7]
ram_mib, vcpus = int(ram_mib), int(vcpus)
initrd = open(initrd, "rb").read()
# libkrun configure_64bit_boot (TEE), boot_params at 0x7000
p = bytearray(4096)
p[0x210] = 0xff
struct.pack_into("<H", p, 0x1fe, 0xaa55)
struct.pack_into("<I", p, 0x202, 0x53726448)
struct.pack_into("<I", p, 0x228, 0x20000)
struct.pack_into("<I", p, 0x238, 0x200)
struct.pack_into("<I", p, 0x230, 0x1000000)
struct.pack_into("<II", p, 0x218, 0xa00000, len(initrd))
struct.pack_into("<I", p, 0x1f4, vcpus)
size, gap = ram_mib << 20, (1 << 32) - (768 << 20)
last = size if size <= gap else (1 << 32) + size - gap
e820 = [(0, 0x9fc00)]
if last < gap:
    e820.append((0x100000, last - 0x100000 + 1))
else:
    e820.append((0x100000, gap - 0x100000))
    if last > 1 << 32:
        e820.append((1 << 32, last - (1 << 32) + 1))
p[0x1e8] = len(e820)
for n, (a, l) in enumerate(e820):
    struct.pack_into("<QQI", p, 0x2d0 + 20 * n, a, l, 1)
g = GCTX()
g.update_normal_pages(0xffff0000, open(qboot, "rb").read())
g.update_normal_pages(0x1000000, open(kernel, "rb").read())
g.update_normal_pages(0xa00000, initrd)
g.update_normal_pages(0x7000, bytes(p))
g.update_zero_pages(0x0, 0x1000)
g.update_secrets_page(0x5000)
g.update_cpuid_page(0x6000)
g.update_zero_pages(0x8000, 0x7000)
for c in range(vcpus):
    g.update_vmsa_page(open(f"{d}/vmsa{c}.bin", "rb").read())
print(g.ld().hex())
"#;
        let peer = std::process::Command::new("python3")
            .args([
                "-c",
                script,
                qboot.to_str().unwrap(),
                k.to_str().unwrap(),
                i.to_str().unwrap(),
                ram,
                vcpus,
                dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            peer.status.success(),
            "{}",
            String::from_utf8_lossy(&peer.stderr)
        );
        assert_eq!(
            ours.trim(),
            String::from_utf8_lossy(&peer.stdout).trim(),
            "{ram} MiB, {vcpus} vCPUs, libkrun {libkrun}"
        );
        // libkrun ≥ 1.16 programs nothing: KVM's reset state, every vCPU at the reset vector.
        let ap = Vmsa::from_page(&std::fs::read(dir.join("vmsa1.bin")).unwrap()).unwrap();
        match libkrun {
            "1.16" => assert_eq!((ap.rip, ap.rdx, ap.ds.attrib.0), (0xfff0, 0x600, 0x92)),
            _ => assert_eq!((ap.rip, ap.rdx, ap.ds.attrib.0), (0xfff3, 0, 0x93)),
        }
    }
}

/// What libkrun refuses, and what cannot be launched, is refused.
#[test]
fn libkrun_launches_that_cannot_be_made_are_refused() {
    let dir = common::TempDir::new("krun-bad");
    let qboot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libkrunfw/qboot-sev-bios.bin");
    let short = dir.write("short.bin", &[0u8; 0x8000]);
    let bundle = dir.write("bundle", &[1u8; 0x1_0000]);
    let big = dir.write("big", &vec![2u8; 0x40_0000]);
    let (q, s, b, g) = (
        qboot.to_str().unwrap(),
        short.to_str().unwrap(),
        bundle.to_str().unwrap(),
        big.to_str().unwrap(),
    );
    let launch = |qboot: &str, initrd: &str, ram: &str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--krun-qboot",
            qboot,
            "--krun-kernel",
            b,
            "--krun-initrd",
            initrd,
        ]
        .map(String::from)
        .to_vec();
        if !ram.is_empty() {
            a.extend(["--ram-mib".into(), ram.into()]);
        }
        a.extend(extra.iter().map(|e| e.to_string()));
        a
    };
    for (args, words) in [
        (launch(s, b, "512", &[]), "exactly 64 KiB"),
        (launch(q, b, "16", &[]), "Kernel doesn't fit in RAM"),
        (
            launch(q, g, "512", &["--krun-kernel-gpa", "0xb00000"]),
            "overlap",
        ),
        (launch(q, b, "", &[]), "--ram-mib"),
    ] {
        let mut a = vec!["measure", "--mode", "snp", "--vcpus", "1"];
        a.extend(args.iter().map(String::as_str));
        let (code, out, err) = common::vmsa_bin(&a);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty() && err.contains(words), "{args:?}: {err}");
    }
    let (code, _, err) = common::vmsa_bin(&[
        "measure",
        "--mode",
        "sev",
        "--krun-qboot",
        q,
        "--krun-kernel",
        b,
        "--krun-initrd",
        b,
        "--ram-mib",
        "512",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("libkrun launches SEV-ES"), "{err}");
}

/// libkrun ≤ 1.10's SEV-ES: SHA-256 over the four regions in order (`LAUNCH_UPDATE_DATA`), then
/// the VMSAs (`LAUNCH_UPDATE_VMSA`, the legacy init: no FPU state); the SNP boot_params page
/// is the same page (its bytes from `--explain`'s SNP walk are not needed: the digest is
/// recomputed here from the dumped pages and a boot_params written by hand).
#[test]
fn a_libkrun_sev_es_launch_hashes_its_regions_then_its_vmsas() {
    use sha2::{Digest, Sha256};
    let dir = common::TempDir::new("krun-es");
    let qboot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libkrunfw/qboot-sev-bios.bin");
    let kernel = vec![0x5au8; 0x2_0000];
    let initrd = vec![0xa5u8; 0x1_0000];
    let k = dir.write("k", &kernel);
    let i = dir.write("i", &initrd);
    let ours = measure_krun(&dir, "seves", "2", [&qboot, &k, &i], "2048", "1.10");
    let mut bp = [0u8; 4096];
    bp[0x210] = 0xff;
    bp[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    bp[0x202..0x206].copy_from_slice(b"HdrS");
    bp[0x228..0x22c].copy_from_slice(&0x2_0000u32.to_le_bytes());
    bp[0x238..0x23c].copy_from_slice(&0x200u32.to_le_bytes());
    bp[0x230..0x234].copy_from_slice(&0x100_0000u32.to_le_bytes());
    bp[0x218..0x21c].copy_from_slice(&0xa0_0000u32.to_le_bytes());
    bp[0x21c..0x220].copy_from_slice(&0x1_0000u32.to_le_bytes());
    bp[0x1f4..0x1f8].copy_from_slice(&2u32.to_le_bytes());
    bp[0x1e8] = 2;
    for (n, (a, l)) in [
        (0u64, 0x9_fc00u64),
        (0x10_0000, (2048 << 20) - 0x10_0000 + 1),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 0x2d0 + 20 * n;
        bp[at..at + 8].copy_from_slice(&a.to_le_bytes());
        bp[at + 8..at + 16].copy_from_slice(&l.to_le_bytes());
        bp[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
    }
    let mut h = Sha256::new();
    h.update(std::fs::read(&qboot).unwrap());
    h.update(&kernel);
    h.update(&initrd);
    h.update(bp);
    for c in 0..2 {
        let page = std::fs::read(dir.join(format!("vmsa{c}.bin"))).unwrap();
        let v = Vmsa::from_page(&page).unwrap();
        assert_eq!((v.mxcsr, v.x87_fcw, v.sev_features), (0, 0, 0));
        h.update(&page);
    }
    let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ours.trim(), want);
    // libkrunfw's recorded SEV-ES pages are the ones launched.
    assert_eq!(
        std::fs::read(dir.join("vmsa0.bin")).unwrap(),
        dump("VMSA_BP.bin").as_bytes()
    );
    assert_eq!(
        std::fs::read(dir.join("vmsa1.bin")).unwrap(),
        dump("VMSA_AP.bin").as_bytes()
    );
}
