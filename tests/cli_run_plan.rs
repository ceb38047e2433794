//! One launch for digest and launch: the core's launch (`vmsa_core::launch::Launch`), whose
//! updates `vmsa run --launch` sends, hashed ([`Launch::launch_digest`]), gives exactly the
//! digest and the `--explain` item list that the real `vmsa measure` binary prints — for the sev-snp-measure OVMF fixtures, the
//! built-in test firmware and Debian's OVMF (every VMM policy, with and without a kernel), and
//! for IGVM files (SNP and SEV-ES). Where KVM's order makes an IGVM launch differ from the
//! file's own digest, the plan says why and its digest differs.
//!
//! Needs no `/dev/kvm`: the launch itself is tested in tests/kvm_igvm.rs and host-kvm/tests.

mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::{TempDir, fixture};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader as D, IgvmRevision};
use igvm_common::{SEV_ES, SNP, build, every_kind_pages, snp_and_sev_es};
use igvm_defs::IgvmPlatformType;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use vmsa_core::flags::SevFeatures;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::kvm::VmmPath;
use vmsa_core::launch::{
    FileDigestDifference, Firmware, IgvmProfile, Launch, LaunchConfig, LaunchError,
};
use vmsa_core::measure::{ItemKind, MeasuredItem, Observer, Sha2Pages};
use vmsa_core::ovmf::{OvmfImage, SectionType};
use vmsa_core::page::VMSA_GPA as INITIAL_VMSA_GPA;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use zerocopy::FromZeros;

/// `vmsa measure ARGS --json --explain`.
fn measure(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .arg("measure")
        .args(args)
        .args(["--json", "--explain"])
        .output()
        .expect("run vmsa");
    assert!(
        out.status.success(),
        "vmsa measure {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[derive(Default)]
struct Items(Vec<MeasuredItem>);
impl Observer for Items {
    fn measured(&mut self, item: &MeasuredItem) {
        self.0.push(*item);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An item as `vmsa measure --json --explain` prints it.
fn json_item(it: &MeasuredItem) -> Value {
    let item = match it.kind {
        ItemKind::Firmware => "firmware".to_string(),
        ItemKind::MetadataSection { section_type } => {
            format!("section {}", SectionType(section_type))
        }
        ItemKind::KernelHashes => "kernel-hashes".into(),
        ItemKind::Vmsa { cpu } => format!("vmsa cpu{cpu}"),
        ItemKind::IgvmDirective { header_index } => format!("igvm header {header_index}"),
        other => format!("{other:?}"),
    };
    let snp = it.page_type.is_some();
    serde_json::json!({
        "item": item,
        "gpa": it.gpa,
        "len": it.len,
        "page_type": it.page_type.map(|t| t.to_string()),
        "contents": hex(if snp { &it.contents[..] } else { &it.contents[..32] }),
        "digest_after": snp.then(|| hex(&it.digest_after)),
    })
}

/// The digest and items of what the launch sends, as `vmsa measure` would print them.
fn hashed(launch: &Launch<'_, '_>) -> (String, Vec<Value>) {
    let (d, items) = launch.launch_digest(&Sha2Pages, Items::default()).unwrap();
    (hex(d.bytes()), items.0.iter().map(json_item).collect())
}

fn assert_same(what: &str, ours: (String, Vec<Value>), measured: &Value) {
    assert_eq!(
        ours.0,
        measured["measurement"].as_str().unwrap(),
        "{what}: digest"
    );
    let theirs = measured["items"].as_array().unwrap();
    assert_eq!(ours.1.len(), theirs.len(), "{what}: item count");
    for (i, (a, b)) in ours.1.iter().zip(theirs).enumerate() {
        assert_eq!(a, b, "{what}: item {i}");
    }
}

const SIG: &str = "EPYC-v4";

fn check_ovmf(path: &Path, kernel: Option<&Path>) -> usize {
    let image = std::fs::read(path).unwrap();
    let fw = Firmware::Ovmf(OvmfImage::parse(&image).unwrap());
    let sig = CpuSignature::named(SIG).unwrap();
    let hashes = kernel.map(|k| SevHashes {
        kernel: SevHashes::sha256(&std::fs::read(k).unwrap()),
        initrd: SevHashes::sha256(b""),
        cmdline: SevHashes::cmdline_hash(Some("console=ttyS0")),
    });
    let mut checked = 0;
    for (smode, arg) in [(SevMode::Snp, "snp"), (SevMode::SevEs, "seves")] {
        for (vmm, vmm_arg) in [
            (VmmType::Qemu, "QEMU"),
            (VmmType::Ec2, "ec2"),
            (VmmType::Gce, "gce"),
        ] {
            for vcpus in [1u32, 4] {
                let mut cfg = LaunchConfig::new(smode, vcpus, sig, vmm);
                if smode == SevMode::Snp {
                    cfg.guest_features = SevFeatures::SNP_ACTIVE;
                }
                cfg.kernel = hashes;
                let launch = Launch::new(&fw, &cfg).unwrap();
                let n = vcpus.to_string();
                let mut args = vec![
                    "--mode",
                    arg,
                    "--vcpus",
                    &n,
                    "--vcpu-type",
                    SIG,
                    "--vmm-type",
                    vmm_arg,
                    "--ovmf",
                    path.to_str().unwrap(),
                ];
                if let Some(k) = kernel {
                    args.extend(["--kernel", k.to_str().unwrap(), "--append", "console=ttyS0"]);
                }
                let what = format!(
                    "{} {arg} {vmm_arg} {vcpus} kernel={}",
                    path.display(),
                    kernel.is_some()
                );
                assert_same(&what, hashed(&launch), &measure(&args));
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn ovmf_plans_hash_to_vmsa_measures_digest_and_items() {
    let dir = TempDir::new("ovmf");
    let kernel = dir.write("kernel", b"not really a kernel, but hashed like one");
    let mut n = 0;
    for name in ["ovmf_AmdSev_suffix.bin", "ovmf_OvmfX64_suffix.bin"] {
        n += check_ovmf(&fixture(name), None);
    }
    // The AmdSev build has the hash table and the SNP_KERNEL_HASHES section.
    n += check_ovmf(&fixture("ovmf_AmdSev_suffix.bin"), Some(&kernel));
    let testfw = dir.write("testfw.bin", &vmsa_kvm::testfw::image());
    n += check_ovmf(&testfw, None);
    let debian = "/usr/share/OVMF/OVMF_CODE.fd";
    if common::require::file("ovmf", debian) {
        n += check_ovmf(Path::new(debian), None);
    }
    assert!(n >= 48, "{n} plans checked");
}

// ---- IGVM ------------------------------------------------------------------------------------

fn vmsa(rip: u64, features: u64) -> Box<SevVmsa> {
    let mut v = SevVmsa::new_zeroed();
    v.rip = rip;
    v.cr0 = 0x31;
    v.efer = 0x1000;
    v.xcr0 = 1;
    v.dr7 = 0x400;
    v.sev_features = features.into();
    Box::new(v)
}

/// SNP and SEV-ES platforms, every measured directive kind (a two-page parameter area, a full
/// unmeasured page, no CPUID_XF), then VP contexts for `contexts` vCPUs at `vmsa_gpa`, last
/// unless `context_first`.
fn igvm_file(contexts: u16, vmsa_gpa: u64, context_first: bool) -> Vec<u8> {
    let pages = every_kind_pages(0x2000, 4096, false);
    let contexts = (0..contexts).flat_map(|vp| {
        [(SNP, 0xfff0, 0x1), (SEV_ES, 0x1234, 0)].map(|(mask, rip, features)| D::SnpVpContext {
            gpa: vmsa_gpa,
            compatibility_mask: mask,
            vp_index: vp,
            vmsa: vmsa(rip + u64::from(vp), features),
        })
    });
    let d = if context_first {
        contexts.chain(pages).collect()
    } else {
        pages.into_iter().chain(contexts).collect()
    };
    build(IgvmRevision::V1, snp_and_sev_es(), vec![], d)
}

/// `bytes` on platform `t`.
fn firmware(bytes: &[u8], t: IgvmPlatformType) -> Firmware<'_> {
    let file = IgvmFile::parse(bytes).unwrap();
    let platform = file.select(PlatformChoice::Only(t)).unwrap();
    Firmware::Igvm { file, platform }
}

/// The launch of `fw` with `vcpus` vCPUs, programmed by a VMM that sets every register (as
/// `vmsa run --launch` does), read with `profile`.
fn launch<'f, 'a>(
    fw: &'f Firmware<'a>,
    vcpus: u32,
    profile: IgvmProfile,
) -> Result<Launch<'f, 'a>, LaunchError> {
    let mut cfg = LaunchConfig::new(
        SevMode::Snp,
        vcpus,
        CpuSignature::named(SIG).unwrap(),
        VmmType::Qemu,
    );
    cfg.path = VmmPath::Direct;
    cfg.igvm.profile = profile;
    Launch::new(fw, &cfg)
}

#[test]
fn igvm_plans_hash_to_vmsa_measures_digest_and_items() {
    let dir = TempDir::new("igvm");
    for vcpus in [1u16, 3] {
        let bytes = igvm_file(vcpus, INITIAL_VMSA_GPA, false);
        let path = dir.write(&format!("ok-{vcpus}.igvm"), &bytes);
        for (t, arg) in [
            (IgvmPlatformType::SEV_SNP, "snp"),
            (IgvmPlatformType::SEV_ES, "seves"),
        ] {
            let fw = firmware(&bytes, t);
            let plan = launch(&fw, u32::from(vcpus), IgvmProfile::Spec).unwrap();
            assert_eq!(plan.file_digest_difference(), None);
            // A profile that reproduces a measuring tool is no launch.
            let igvmmeasure = launch(&fw, u32::from(vcpus), IgvmProfile::Igvmmeasure).unwrap();
            assert!(matches!(
                igvmmeasure.updates().err(),
                Some(LaunchError::DigestOnlyProfile(IgvmProfile::Igvmmeasure))
            ));
            let measured = measure(&[
                "--mode",
                arg,
                "--vcpus",
                &vcpus.to_string(),
                "--igvm",
                path.to_str().unwrap(),
            ]);
            assert_same(&format!("igvm {arg} {vcpus}"), hashed(&plan), &measured);
            // The VMSAs come last, KVM's way; SNP also sends the CPUID page for the VMM to
            // fill and the parameter area as loaded.
            let u: Vec<_> = plan.updates().unwrap().collect();
            assert!(
                u[u.len() - usize::from(vcpus)..]
                    .iter()
                    .all(|u| u.is_vmsa())
            );
        }
    }
}

#[test]
fn igvm_plans_say_why_kvms_digest_differs_from_the_files() {
    let dir = TempDir::new("diff");
    // (file, vCPUs, expected difference on SNP)
    type Expect = fn(&FileDigestDifference) -> bool;
    let cases: Vec<(Vec<u8>, u32, Expect)> = vec![
        // A vCPU without a VP context: KVM measures its reset state.
        (igvm_file(1, INITIAL_VMSA_GPA, false), 2, |d| {
            matches!(d, FileDigestDifference::ResetVmsa { cpu: 1 })
        }),
        // The VP context at another GPA.
        (igvm_file(1, 0x1000_0000, false), 1, |d| {
            matches!(
                d,
                FileDigestDifference::ContextGpa {
                    gpa: 0x1000_0000,
                    ..
                }
            )
        }),
        // The VP contexts before the pages.
        (igvm_file(1, INITIAL_VMSA_GPA, true), 1, |d| {
            matches!(d, FileDigestDifference::ContextNotLast { .. })
        }),
    ];
    for (i, (bytes, vcpus, expected)) in cases.iter().enumerate() {
        let path = dir.write(&format!("diff-{i}.igvm"), bytes);
        let fw = firmware(bytes, IgvmPlatformType::SEV_SNP);
        let plan = launch(&fw, *vcpus, IgvmProfile::Spec).unwrap();
        let diff = plan.file_digest_difference().unwrap();
        assert!(expected(&diff), "case {i}: {diff}");
        let measured = measure(&[
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--igvm",
            path.to_str().unwrap(),
        ]);
        let (ours, _) = hashed(&plan);
        assert_ne!(ours, measured["measurement"].as_str().unwrap(), "case {i}");
    }
}

/// The test above is a consistency test (the plan and `vmsa measure` share the core); this one
/// anchors the plan outside our code: the plan `vmsa run --launch` would send, hashed, equals
/// sev-snp-measure 0.0.13's own expected digests (its test suite, `vectors.json`) for the four
/// SNP vectors without a kernel.
#[test]
fn ovmf_plans_hash_to_the_peers_known_answers() {
    let text = std::fs::read_to_string(fixture("vectors.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut n = 0;
    for vec in v["vectors"].as_array().unwrap() {
        if vec["mode"] != "snp" || !vec["kernel"].is_null() || !vec["snp_ovmf_hash"].is_null() {
            continue;
        }
        let bytes = std::fs::read(fixture(vec["firmware"].as_str().unwrap())).unwrap();
        let fw = Firmware::Ovmf(OvmfImage::parse(&bytes).unwrap());
        let sig = u32::from_str_radix(
            vec["vcpu_sig"].as_str().unwrap().trim_start_matches("0x"),
            16,
        );
        let features = vec["guest_features"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x");
        let mut cfg = LaunchConfig::new(
            SevMode::Snp,
            vec["vcpus"].as_u64().unwrap() as u32,
            CpuSignature(sig.unwrap()),
            VmmType::Qemu,
        );
        cfg.guest_features =
            SevFeatures::from_bits_retain(u64::from_str_radix(features, 16).unwrap());
        let launch = Launch::new(&fw, &cfg).unwrap();
        assert_eq!(
            hashed(&launch).0,
            vec["digest"].as_str().unwrap(),
            "{}",
            vec["name"]
        );
        n += 1;
    }
    assert_eq!(n, 4);
}
