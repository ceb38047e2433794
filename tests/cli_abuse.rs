//! The command line under abuse: a table of bad inputs — corrupted, truncated, endless and
//! oversized files, odd and conflicting flags, unwritable outputs — each run through the real
//! `vmsa` binary in an empty scratch directory. Every row names the exit code, a fragment of the
//! message, and checks that nothing was left behind (no new file, no temporary directory) and
//! that nothing panicked.
//!
//! Also the output contract: a closed pipe ends the program quietly, a full disk or a closed
//! standard output is an error (never a panic), SIGTERM while pages are written leaves nothing.

mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::{TempDir, fixture};
use igvm::{IgvmDirectiveHeader as D, IgvmRevision};
use igvm_common::{build, platform, snp_only};
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vmsa_core::ovmf::{self, Section, SectionType, TableEntry};

/// One bad invocation: the arguments (`{}` stands for the scratch directory), the exit code and
/// a fragment of standard error.
struct Case {
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
}

const fn case(args: &'static [&'static str], code: i32, message: &'static str) -> Case {
    Case {
        args,
        code,
        message,
    }
}

/// A 4 KiB firmware image with `entries`, `sections` and a real SEV-ES reset block.
fn image(sections: &[Section], hash_table: Option<(u32, u32)>) -> Vec<u8> {
    let mut img = vec![0u8; 4096];
    let mut entries = vec![TableEntry::SevEsResetBlock {
        reset_addr: 0x80_b004,
    }];
    if let Some((base, size)) = hash_table {
        entries.push(TableEntry::SevHashTable(ovmf::GpaRange { base, size }));
    }
    ovmf::build(&mut img, &entries, Some(sections)).unwrap();
    img
}

/// Writes every input the table refers to into `dir`.
fn inputs(dir: &Path) {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let amd = std::fs::read(fixture("ovmf_AmdSev_suffix.bin")).unwrap();
    write("amd.fd", &amd);
    write(
        "x64.fd",
        &std::fs::read(fixture("ovmf_OvmfX64_suffix.bin")).unwrap(),
    );
    write("short.fd", &amd[..100]);
    // A larger image (not a page) whose footer GUID is damaged.
    let mut bad_footer = vec![0u8; 4096];
    bad_footer.extend_from_slice(&amd);
    let n = bad_footer.len();
    bad_footer[n - 48] ^= 0xff;
    write("bad-footer.fd", &bad_footer);
    let mut unaligned = vec![0u8];
    unaligned.extend_from_slice(&amd);
    write("unaligned.fd", &unaligned);
    // SNP metadata whose secrets page lies inside the image (the image's pages launch first).
    write(
        "asev-in-image.fd",
        &image(
            &[Section::new(0xffff_f000, 0x1000, SectionType::SNP_SECRETS)],
            None,
        ),
    );
    // A kernel-hashes area too small for QEMU's 176-byte padded table.
    write(
        "small-hash-area.fd",
        &image(
            &[Section::new(
                0x80_0000,
                0x1000,
                SectionType::SNP_KERNEL_HASHES,
            )],
            Some((0x80_0c00, 0x80)),
        ),
    );
    let mut no_reset = vec![0u8; 4096];
    ovmf::build(
        &mut no_reset,
        &[],
        Some(&[Section::new(0x80_0000, 0x1000, SectionType::SNP_SECRETS)]),
    )
    .unwrap();
    write("no-reset-block.fd", &no_reset);
    let mut no_asev = vec![0u8; 4096];
    ovmf::build(
        &mut no_asev,
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0x80_b004,
        }],
        None,
    )
    .unwrap();
    write("no-asev.fd", &no_asev);
    write(
        "random.bin",
        &(0..5000u32).map(|i| (i * 37) as u8).collect::<Vec<_>>(),
    );
    write("page.bin", &[0u8; 4096]);
    write("two-pages.bin", &[0u8; 8192]);
    write("hundred.bin", &[0u8; 100]);
    write("kernel", b"a kernel");
    let igvm = snp_only(vec![D::PageData {
        gpa: 0x1000,
        compatibility_mask: 1,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data: vec![1; 4096],
    }]);
    write("snp.igvm", &igvm);
    let mut bad_sum = igvm.clone();
    bad_sum[20] ^= 1;
    write("bad-checksum.igvm", &bad_sum);
    write("magic-only.igvm", b"IGVM\x01\0\0\0");
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
    write("native.igvm", &native);
    // Firmware of 4 GiB and of 5 GiB, sparse (no disk used): QEMU loads neither.
    for (name, len) in [("4g.fd", 4u64 << 30), ("5g.fd", 5 << 30)] {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        f.set_len(len).unwrap();
    }
    std::fs::create_dir(dir.join("old")).unwrap();
    write("old/vmsa0.bin", &[0u8; 4096]);
    write("old/vmsa7.bin", &[0u8; 4096]);
}

const SNP1: [&str; 6] = ["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4"];

fn cases() -> Vec<Case> {
    vec![
        // --- vmsa, vmsa inspect ---------------------------------------------------------------
        case(&["--bogus"], 2, "unexpected argument"),
        case(&["inspect"], 2, "required"),
        case(&["inspect", "missing.bin"], 2, "cannot read missing.bin"),
        case(&["inspect", "/dev/null"], 2, "input has 0 bytes"),
        case(&["inspect", "short.fd"], 2, "not a VMSA"),
        case(
            &["inspect", "bad-footer.fd"],
            2,
            "no OVMF table footer GUID",
        ),
        case(&["inspect", "random.bin"], 2, "input has 5000 bytes"),
        case(&["inspect", "magic-only.igvm"], 2, "invalid IGVM file"),
        case(&["inspect", "bad-checksum.igvm"], 2, "checksum"),
        case(
            &["inspect", "--json", "hundred.bin"],
            2,
            "input has 100 bytes",
        ),
        case(&["inspect", "old"], 2, "cannot read old"),
        case(&["inspect", "/dev/zero"], 2, "more than the"),
        // --- vmsa reset -----------------------------------------------------------------------
        case(&["reset", "--ovmf", "amd.fd"], 2, "--vcpus"),
        case(
            &["reset", "--ovmf", "amd.fd", "--vcpus", "x"],
            2,
            "invalid value 'x'",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "0",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "at least one vCPU",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "5000",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "more than the 4096",
        ),
        case(
            &["reset", "--ovmf", "amd.fd", "--vcpus", "1"],
            2,
            "QEMU puts the vCPU signature in RDX",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v9",
            ],
            2,
            "known types are EPYC, EPYC-v1",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-family",
                "25",
            ],
            2,
            "--vcpu-model",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-sig",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-sig",
                "0x100000000",
            ],
            2,
            "does not fit in 32 bits",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-family",
                "300",
                "--vcpu-model",
                "0",
                "--vcpu-stepping",
                "0",
            ],
            2,
            "family 0x12c",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--platform",
                "snp",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--strict",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--guest-features",
                "0x20",
            ],
            2,
            "lack SNP_ACTIVE",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--mode",
                "sev-es",
                "--guest-features",
                "1",
            ],
            2,
            "include SNP_ACTIVE",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--mode",
                "sev-es",
                "--guest-features",
                "0x200",
            ],
            2,
            "Secure TSC (bit 9) is SNP-only",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--guest-features",
                "0x3",
            ],
            2,
            "not all supported by KVM",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--legacy-init",
            ],
            2,
            "needs KVM_SEV_INIT2",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--mode",
                "sev",
            ],
            2,
            "plain SEV has no VMSAs",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--mode",
                "tdx",
            ],
            2,
            "invalid mode",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--out",
                "/dev/null",
            ],
            2,
            "not a directory",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--out",
                "old",
            ],
            2,
            "give --replace",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "amd.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--replace",
            ],
            2,
            "--out",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "missing.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "cannot read missing.fd",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "no-reset-block.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "no SEV-ES reset block",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "asev-in-image.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "inside the firmware image",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "no-asev.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "ASEV",
        ),
        case(
            &[
                "reset",
                "--ovmf",
                "5g.fd",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
            ],
            2,
            "more than the",
        ),
        case(
            &["reset", "--igvm", "bad-checksum.igvm", "--vcpus", "1"],
            2,
            "checksum",
        ),
        case(
            &["reset", "--igvm", "native.igvm", "--vcpus", "1"],
            2,
            "no SEV launch",
        ),
        case(
            &[
                "reset", "--igvm", "snp.igvm", "--vcpus", "1", "--mode", "sev-es",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "reset",
                "--igvm",
                "snp.igvm",
                "--vcpus",
                "1",
                "--platform",
                "tdx",
            ],
            2,
            "does not declare platform TDX",
        ),
        case(
            &["reset", "--igvm", "snp.igvm", "--vcpus", "2"],
            2,
            "vCPU 0 has no VP context",
        ),
        case(
            &[
                "reset", "--igvm", "snp.igvm", "--ovmf", "amd.fd", "--vcpus", "1",
            ],
            2,
            "cannot be used with",
        ),
        // --- vmsa diff ------------------------------------------------------------------------
        case(&["diff", "page.bin"], 2, "required"),
        case(
            &["diff", "page.bin", "missing.bin"],
            2,
            "cannot read missing.bin",
        ),
        case(&["diff", "/dev/null", "/dev/null"], 2, "input has 0 bytes"),
        case(
            &["diff", "page.bin", "hundred.bin"],
            2,
            "input has 100 bytes",
        ),
        case(
            &["diff", "page.bin", "two-pages.bin"],
            2,
            "more than the 4096",
        ),
        case(&["diff", "page.bin", "/dev/zero"], 2, "more than the 4096"),
        // --- vmsa measure ---------------------------------------------------------------------
        case(&["measure", "--ovmf", "amd.fd"], 2, "--mode"),
        case(
            &["measure", "--mode", "snp:svsm", "--ovmf", "amd.fd"],
            2,
            "snp:svsm mode requires --svsm PATH",
        ),
        case(
            &["measure", "--mode", "foo", "--ovmf", "amd.fd"],
            2,
            "invalid mode 'foo'",
        ),
        case(
            &["measure", "--mode", "snp", "--ovmf", "amd.fd"],
            2,
            "missing --vcpus N",
        ),
        case(
            &[
                "measure", "--mode", "snp", "--vcpus", "1", "--ovmf", "amd.fd",
            ],
            2,
            "missing --vcpu-type",
        ),
        case(
            &[
                "measure",
                "--mode",
                "sev",
                "--dump-vmsa",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "only available in the seves, snp and snp:svsm modes",
        ),
        case(
            &[
                "measure",
                "--mode",
                "seves",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--snp-ovmf-hash",
                "00",
                "--ovmf",
                "amd.fd",
            ],
            1,
            "SNP OVMF hash only works with SNP",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--snp-ovmf-hash",
                "00",
                "--ovmf",
                "amd.fd",
            ],
            1,
            "is not 48 bytes of hex",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--kernel",
                "kernel",
                "--ovmf",
                "x64.fd",
            ],
            1,
            "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section",
        ),
        case(
            &[
                "measure", "--mode", "sev", "--kernel", "kernel", "--ovmf", "x64.fd",
            ],
            1,
            "Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--kernel",
                "missing",
                "--ovmf",
                "amd.fd",
            ],
            1,
            "cannot read missing",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--kernel",
                "kernel",
                "--ovmf",
                "small-hash-area.fd",
            ],
            1,
            "hashes table area is invalid (base=0x800c00 size=0x80)",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--initrd",
                "kernel",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "--kernel",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--igvm-profile",
                "qemu",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--native-zero",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "cannot be used with",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--vmm-type",
                "xen",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "unknown VMM type",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v9",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "known types are EPYC",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--guest-features",
                "0x20",
                "--ovmf",
                "amd.fd",
            ],
            1,
            "lack SNP_ACTIVE",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--output-format",
                "b64",
                "--ovmf",
                "amd.fd",
            ],
            2,
            "invalid value 'b64'",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "/dev/null",
            ],
            1,
            "0 bytes",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "old",
            ],
            1,
            "cannot read old",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "4g.fd",
            ],
            1,
            "more than the",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "5g.fd",
            ],
            1,
            "more than the",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "unaligned.fd",
            ],
            1,
            "not a multiple of 4 KiB",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
                "asev-in-image.fd",
            ],
            1,
            "inside the firmware image",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp:ovmf-hash",
                "--ovmf",
                "unaligned.fd",
            ],
            1,
            "not a multiple of 4 KiB",
        ),
        case(
            &["measure", "--mode", "snp", "--igvm", "bad-checksum.igvm"],
            1,
            "checksum",
        ),
        case(
            &[
                "measure", "--mode", "snp", "--igvm", "snp.igvm", "--kernel", "kernel",
            ],
            2,
            "apply to OVMF firmware",
        ),
        case(
            &["measure", "--mode", "snp:ovmf-hash", "--igvm", "snp.igvm"],
            2,
            "measures OVMF firmware, not IGVM files",
        ),
        case(
            &["measure", "--mode", "seves", "--igvm", "snp.igvm"],
            1,
            "does not declare platform SEV_ES",
        ),
        case(
            &[
                "measure", "--mode", "snp", "--vcpus", "0", "--igvm", "snp.igvm",
            ],
            1,
            "at least one vCPU",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--igvm",
                "snp.igvm",
                "--igvm-profile",
                "qemu",
                "--native-zero",
            ],
            1,
            "never as ZERO pages",
        ),
        case(
            &[
                "measure",
                "--mode",
                "snp",
                "--igvm",
                "snp.igvm",
                "--igvm-profile",
                "nope",
            ],
            2,
            "unknown IGVM profile",
        ),
        // --- vmsa run (refused before any VM is made) ----------------------------------------
        case(
            &["run", "--ovmf", "amd.fd", "--vcpus", "0"],
            2,
            "at least one vCPU",
        ),
        case(
            &["run", "--ovmf", "amd.fd", "--launch", "sev"],
            2,
            "plain SEV",
        ),
        case(
            &["run", "--ovmf", "amd.fd", "--launch", "tdx"],
            2,
            "invalid mode",
        ),
        case(&["run", "--ovmf", "5g.fd"], 2, "more than the"),
        case(
            &["run", "--ovmf", "amd.fd", "--platform", "snp"],
            2,
            "cannot be used with",
        ),
        case(
            &["run", "--ovmf", "amd.fd", "--policy", "lots"],
            2,
            "invalid integer",
        ),
        case(
            &["run", "--ovmf", "amd.fd", "--vcpu-type", "EPYC-v9"],
            2,
            "known types are EPYC",
        ),
        case(
            &["run", "--igvm", "snp.igvm", "--launch", "sev-es"],
            2,
            "the selected IGVM platform is snp",
        ),
        case(&["run", "--igvm", "native.igvm"], 2, "no SEV launch"),
    ]
}

/// Every file under `dir`, relative, directories included.
fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

#[test]
fn bad_inputs_are_refused_with_reasons_and_leave_nothing() {
    let dir = TempDir::new("abuse");
    inputs(&dir);
    let before = listing(&dir);
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_vmsa"))
            .args(c.args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let what = c.args.join(" ");
        if out.status.code() != Some(c.code) {
            failures.push(format!(
                "vmsa {what}: exit {:?}, expected {}: {err}",
                out.status.code(),
                c.code
            ));
        } else if !err.contains(c.message) {
            failures.push(format!("vmsa {what}: no {:?} in: {err}", c.message));
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            failures.push(format!("vmsa {what}: panicked: {err}"));
        }
        let after = listing(&dir);
        if after != before {
            let new: Vec<_> = after.difference(&before).collect();
            failures.push(format!("vmsa {what}: left {new:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An endless pipe on standard input is read only up to the input's limit, then refused.
#[test]
fn endless_stdin_is_bounded() {
    let dir = TempDir::new("endless");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(["diff", "/dev/stdin", "/dev/stdin"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed more than a page; vmsa stops reading at its limit and closes the pipe.
    let writer = std::thread::spawn(move || {
        let chunk = [0u8; 4096];
        for _ in 0..1024 {
            if stdin.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("more than the 4096"), "{err}");
    assert!(writer.join().unwrap(), "vmsa read all 4 MiB of the pipe");
}

/// Standard output: a closed pipe ends the program quietly (141, as SIGPIPE would); a full
/// disk and a closed standard output are errors with a message, never a panic; what a failed
/// command printed is not printed.
#[test]
fn output_errors_are_reported_not_panics() {
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let amd = amd.to_str().unwrap();
    let sh = |script: &str| {
        let out = Command::new("bash")
            .args(["-c", script])
            .env("VMSA", env!("CARGO_BIN_EXE_vmsa"))
            .env("AMD", amd)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = sh(
        "\"$VMSA\" measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf \"$AMD\" > /dev/full",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let (code, _, err) =
        sh("\"$VMSA\" measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf \"$AMD\" >&-");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("standard output is closed"), "{err}");
    // 1024 vCPUs of JSON (megabytes) into a pipe the reader closes after ten bytes.
    let (_, out, err) = sh(
        "\"$VMSA\" reset --ovmf \"$AMD\" --vcpus 1024 --vcpu-type EPYC --json | head -c 10; echo \" status ${PIPESTATUS[0]}\"",
    );
    assert!(out.ends_with(" status 141\n"), "{out} {err}");
    assert!(err.is_empty(), "quiet on a closed pipe: {err}");
    // Standard error full: the refusal's message is lost, the exit code is not, no panic.
    let (code, _, _) = sh("\"$VMSA\" inspect /dev/null 2> /dev/full");
    assert_eq!(code, Some(2));
}

/// SIGTERM while `reset --out` writes 4096 pages: exit 143, and neither the target nor a
/// temporary directory is left; the same command then writes all 4096.
#[test]
fn sigterm_while_writing_pages_leaves_nothing() {
    let dir = TempDir::new("sigterm");
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let out = dir.join("pages");
    let args = |o: &Path| {
        vec![
            "reset".to_string(),
            "--ovmf".into(),
            amd.to_str().unwrap().into(),
            "--vcpus".into(),
            "4096".into(),
            "--vcpu-type".into(),
            "EPYC".into(),
            "--out".into(),
            o.to_str().unwrap().into(),
        ]
    };
    let mut stopped = false;
    // The pages are synced one by one, which takes long enough to be interrupted; if a run
    // finishes first, try again (the target is then removed).
    for delay in [50u64, 20, 5, 100] {
        let _ = std::fs::remove_dir_all(&out);
        let child = Command::new(env!("CARGO_BIN_EXE_vmsa"))
            .args(args(&out))
            .current_dir(&dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let o = child.wait_with_output().unwrap();
        if o.status.code() == Some(143) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("interrupted by SIGTERM: nothing was written"),
                "{err}"
            );
            assert!(!out.exists(), "the target was created");
            assert_eq!(listing(&dir), BTreeSet::new(), "left behind");
            stopped = true;
            break;
        }
    }
    assert!(stopped, "no run could be interrupted");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(args(&out))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4096);
    // A second run refuses the full directory; with --replace it writes fewer pages and removes
    // the rest.
    let mut again = args(&out);
    again[4] = "2".into();
    let o = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(&again)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    again.push("--replace".into());
    let o = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["vmsa0.bin", "vmsa1.bin"]);
}

/// `--dump-vmsa` writes into the current directory as sev-snp-measure does, all or nothing,
/// and names the pages an earlier run left there that this one does not write.
#[test]
fn dump_vmsa_overwrites_and_names_stale_pages() {
    let dir = TempDir::new("dump");
    std::fs::write(dir.join("vmsa5.bin"), [1u8; 4096]).unwrap();
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsa"))
        .args(["measure", "--dump-vmsa", "--ovmf", amd.to_str().unwrap()])
        .args(SNP1)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("also holds vmsa5.bin from an earlier run"),
        "{err}"
    );
    let names: BTreeSet<_> = listing(&dir).into_iter().collect();
    assert_eq!(
        names,
        ["vmsa0.bin", "vmsa5.bin"]
            .iter()
            .map(PathBuf::from)
            .collect()
    );
}
