//! `vmsa measure --kernel-hash/--initrd-hash/--append-hash`: measuring from precomputed
//! SHA-256s gives the digest of the files themselves, which sev-snp-measure's known answers
//! anchor (`vectors.json`, the vectors with a kernel, an initrd and a command line).
mod common;

use common::{TempDir, fixture, vmsa_bin};
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn hashes_give_the_digest_of_the_files() {
    let dir = TempDir::new("hashes");
    let kernel_bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let kernel = dir.write("vmlinuz", &kernel_bytes);
    let initrd = dir.write("initrd", b"an initrd");
    let append = "console=ttyS0 root=/dev/vda";
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    for mode in [
        &["--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4"][..],
        &["--mode", "sev"][..],
        &["--mode", "seves", "--vcpus", "2", "--vcpu-type", "EPYC-v4"][..],
    ] {
        let mut files = vec!["measure"];
        files.extend_from_slice(mode);
        files.extend_from_slice(&["--ovmf", fw.to_str().unwrap()]);
        let mut hashes = files.clone();
        files.extend_from_slice(&[
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--append",
            append,
        ]);
        let k = hex(&Sha256::digest(&kernel_bytes));
        let i = hex(&Sha256::digest(b"an initrd"));
        // QEMU hashes the command line with its terminating NUL.
        let a = hex(&Sha256::digest(format!("{append}\0").as_bytes()));
        hashes.extend_from_slice(&[
            "--kernel-hash",
            &k,
            "--initrd-hash",
            &i,
            "--append-hash",
            &a,
        ]);
        let (c1, d1, e1) = vmsa_bin(&files);
        let (c2, d2, e2) = vmsa_bin(&hashes);
        assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
        assert_eq!(d1, d2, "{mode:?}");
        // Only a kernel: the defaults are the hashes of no initrd and no command line.
        let only = hashes[..hashes.len() - 4].to_vec();
        let (c3, d3, e3) = vmsa_bin(&only);
        let only_file = files[..files.len() - 4].to_vec();
        let (c4, d4, e4) = vmsa_bin(&only_file);
        assert_eq!((c3, c4), (0, 0), "{e3}{e4}");
        assert_eq!(d3, d4, "{mode:?}: kernel only");
    }
    let (code, _, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "sev",
        "--ovmf",
        fw.to_str().unwrap(),
        "--kernel-hash",
        "abcd",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("64 hex digits"), "{err}");
}
