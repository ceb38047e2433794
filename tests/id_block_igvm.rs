//! `vmsa id-block --igvm-out`: an IGVM file signed with an `SNP_ID_BLOCK` (what igvmmeasure's
//! `sign` does), read back by this reader and by the `igvm` crate; `--verify-igvm` on it; the
//! block replaced, not added, when the file has one; the revision kept; the launch computed from
//! the arguments after `--` (OVMF and IGVM) equal to `vmsa measure`'s.
mod common;
#[path = "../core/tests/igvm_common/mod.rs"]
mod igvm_common;

use common::{TempDir, fixture, vmsa_bin};
use igvm::snp_defs::SevVmsa;
use igvm::{Arch, IgvmDirectiveHeader as D, IgvmInitializationHeader as I, IgvmRevision};
use igvm_common::*;
use igvm_defs::*;
use vmsa_core::id_block::{IdAuthInfo, IdBlock};
use zerocopy::FromZeros;

fn key(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/").to_owned() + name
}

fn vmsa() -> Box<SevVmsa> {
    let mut v = SevVmsa::new_zeroed();
    v.rip = 0xfff0;
    v.cr0 = 0x31;
    v.efer = 0x1000;
    v.xcr0 = 1;
    Box::new(v)
}

/// An SNP file (policy 0x30002) with two pages and a VP context, and `extra` directives.
fn file(revision: IgvmRevision, extra: Vec<D>) -> Vec<u8> {
    let mut directives = vec![
        page(
            0x20_0000,
            SNP,
            vec![7; 4096],
            IgvmPageDataType::NORMAL,
            IgvmPageDataFlags::new(),
        ),
        page(
            0x20_1000,
            SNP,
            vec![],
            IgvmPageDataType::NORMAL,
            IgvmPageDataFlags::new(),
        ),
        D::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: SNP,
            vp_index: 0,
            vmsa: vmsa(),
        },
    ];
    directives.extend(extra);
    build(
        revision,
        vec![platform(SNP, IgvmPlatformType::SEV_SNP, 0)],
        vec![I::GuestPolicy {
            policy: 0x30002,
            compatibility_mask: SNP,
        }],
        directives,
    )
}

fn digest_of(path: &str) -> String {
    let (code, out, err) = vmsa_bin(&[
        "measure",
        "--mode",
        "snp",
        "--igvm",
        path,
        "--ignore-idblock",
    ]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

fn id_blocks(bytes: &[u8]) -> Vec<D> {
    igvm::IgvmFile::new_from_binary(bytes, None)
        .expect("the igvm crate reads the signed file")
        .directives()
        .iter()
        .filter(|d| matches!(d, D::SnpIdBlock { .. }))
        .cloned()
        .collect()
}

fn sign(input: &str, out: &str, author: bool) -> (i32, String, String) {
    let id = key("id-sec1.pem");
    let au = key("author-pkcs8.pem");
    let mut a = vec![
        "id-block",
        "--id-key",
        &id,
        "--image-id",
        "00112233445566778899aabbccddeeff",
    ];
    if author {
        a.extend(["--author-key", &au]);
    }
    a.extend([
        "--igvm-out",
        out,
        "--json",
        "--",
        "--mode",
        "snp",
        "--igvm",
        input,
    ]);
    vmsa_bin(&a)
}

#[test]
fn signs_an_igvm_file_that_both_readers_accept() {
    let dir = TempDir::new("sign");
    for (revision, author) in [
        (IgvmRevision::V1, false),
        (IgvmRevision::V1, true),
        (
            IgvmRevision::V2 {
                arch: Arch::X64,
                page_size: 4096,
            },
            true,
        ),
    ] {
        let input = dir.write("in.igvm", &file(revision, vec![]));
        let out = dir.join("signed.igvm");
        let (code, json, err) = sign(input.to_str().unwrap(), out.to_str().unwrap(), author);
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let signed = std::fs::read(&out).unwrap();
        // Same launch: the digest is unchanged, and it is the block's.
        let d = digest_of(input.to_str().unwrap());
        assert_eq!(digest_of(out.to_str().unwrap()), d);
        // The igvm crate sees one block, with the digest, the image ID, the file's policy-free
        // fields and the keys; the revision is kept.
        let blocks = id_blocks(&signed);
        assert_eq!(blocks.len(), 1);
        let D::SnpIdBlock {
            ld,
            image_id,
            version,
            author_key_enabled,
            id_key_algorithm,
            ..
        } = &blocks[0]
        else {
            unreachable!()
        };
        assert_eq!(hex(ld), d);
        assert_eq!(hex(image_id), "00112233445566778899aabbccddeeff");
        assert_eq!(
            (*version, *id_key_algorithm, *author_key_enabled),
            (1, 1, u8::from(author))
        );
        let ours = vmsa_core::igvm::IgvmFile::parse(&signed).unwrap();
        assert_eq!(
            ours.fixed_header().format_version,
            if revision == IgvmRevision::V1 { 1 } else { 2 }
        );
        // The pair QEMU passes to the firmware equals the one printed: policy from the file.
        let printed_block = b64(json["id_block"].as_str().unwrap());
        let block: IdBlock = zerocopy::transmute!(<[u8; 96]>::try_from(printed_block).unwrap());
        assert_eq!(block.policy, 0x30002);
        // --verify-igvm: both signatures, the digest, the key digests printed before.
        let (code, text, err) = vmsa_bin(&["id-block", "--verify-igvm", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{text}{err}");
        assert!(text.contains(&format!("launch digest {d}")), "{text}");
        let id_digest = hex(&b64(json["id_key_digest"].as_str().unwrap()));
        assert!(
            text.contains(&format!("id_key_digest:     {id_digest}")),
            "{text}"
        );
        assert_eq!(text.contains("author_key_digest: none"), !author, "{text}");
        let (code, _, _) = vmsa_bin(&["id-block", "--check", json_pair(&json).as_str()]);
        assert_eq!(code, 0);
        let (code, v, _) =
            vmsa_bin(&["id-block", "--verify-igvm", out.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(
            (code, &v["verifies"], &v["policy"]),
            (0, &true.into(), &"0x30002".into())
        );
        assert_eq!(v["id_key_digest"].as_str().unwrap(), id_digest);
    }
}

#[test]
fn replaces_the_platforms_block_and_refuses_what_qemu_would_not_launch() {
    let dir = TempDir::new("replace");
    // A file that already has a (wrong) block: the new one replaces it.
    let mut stale = D::SnpIdBlock {
        compatibility_mask: SNP,
        author_key_enabled: 0,
        reserved: [0; 3],
        ld: [0xee; 48],
        family_id: [0; 16],
        image_id: [0; 16],
        version: 1,
        guest_svn: 0,
        id_key_algorithm: 1,
        author_key_algorithm: 0,
        id_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed()),
        id_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed()),
        author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed()),
        author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed()),
    };
    let input = dir.write("in.igvm", &file(IgvmRevision::V1, vec![stale.clone()]));
    let (code, _, err) = vmsa_bin(&["id-block", "--verify-igvm", input.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let out = dir.join("signed.igvm");
    let (code, _, err) = sign(input.to_str().unwrap(), out.to_str().unwrap(), false);
    assert_eq!(code, 0, "{err}");
    let blocks = id_blocks(&std::fs::read(&out).unwrap());
    assert_eq!(blocks.len(), 1);
    assert!(matches!(&blocks[0], D::SnpIdBlock { ld, .. } if *ld != [0xee; 48]));
    // A tampered block fails --verify-igvm.
    let mut signed = std::fs::read(&out).unwrap();
    let at = signed
        .windows(16)
        .position(|w| {
            w == [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff,
            ]
        })
        .unwrap();
    signed[at] ^= 1;
    fix_checksum(&mut signed);
    let tampered = dir.write("tampered.igvm", &signed);
    let (code, text, _) = vmsa_bin(&["id-block", "--verify-igvm", tampered.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(text.contains("signature does not verify"), "{text}");
    // Nothing written when the launch is refused; an --igvm-out without an IGVM launch refused.
    if let D::SnpIdBlock { ld, .. } = &mut stale {
        *ld = [1; 48];
    }
    let two = dir.write(
        "two.igvm",
        &file(IgvmRevision::V1, vec![stale.clone(), stale]),
    );
    let out2 = dir.join("never.igvm");
    let (code, _, err) = sign(two.to_str().unwrap(), out2.to_str().unwrap(), false);
    assert_ne!(code, 0);
    assert!(err.contains("a second SNP_ID_BLOCK"), "{err}");
    assert!(!out2.exists());
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let id = key("id-sec1.pem");
    let (code, _, err) = vmsa_bin(&[
        "id-block",
        "--id-key",
        &id,
        "--igvm-out",
        out2.to_str().unwrap(),
        "--",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--igvm-out needs the launch of an IGVM file"),
        "{err}"
    );
    assert!(!out2.exists());
}

#[test]
fn the_launch_after_the_separator_is_vmsa_measures() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let measure = [
        "--mode",
        "snp",
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        fw,
    ];
    let (code, b64_digest, _) =
        vmsa_bin(&[&["measure"][..], &measure, &["--output-format", "base64"]].concat());
    assert_eq!(code, 0);
    let id = key("id-sec1.pem");
    let (c1, from_launch, e1) =
        vmsa_bin(&[&["id-block", "--id-key", &id, "--"][..], &measure].concat());
    let (c2, from_digest, e2) = vmsa_bin(&[
        "id-block",
        "--id-key",
        &id,
        "--measurement",
        b64_digest.trim(),
    ]);
    assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
    assert_eq!(from_launch, from_digest);
    // The launch's refusals are the launch's: SEV-ES has no ID block; a bad flag is named.
    let (code, _, err) = vmsa_bin(&[
        "id-block",
        "--id-key",
        &id,
        "--",
        "--mode",
        "seves",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("ID blocks are for SNP launches"), "{err}");
    let (code, _, err) = vmsa_bin(&[
        "id-block", "--id-key", &id, "--", "--mode", "snp", "--bogus",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the launch after --") && err.contains("--bogus"),
        "{err}"
    );
}

#[test]
fn igvm_block_round_trips_through_the_firmware_layout() {
    let mut block = IdBlock::new([3; 48], [4; 16], [5; 16], 6, 0x30002);
    block.version = 1;
    let mut auth = IdAuthInfo::new_zeroed();
    auth.id_key_algo = 1;
    auth.auth_key_algo = 1;
    auth.id_block_sig.r = [7; 72];
    auth.id_block_sig.s = [8; 72];
    auth.id_key.curve = 2;
    auth.id_key.qx = [9; 72];
    auth.id_key.qy = [10; 72];
    auth.id_key_sig.r = [11; 72];
    auth.author_key.curve = 2;
    auth.author_key.qy = [12; 72];
    let igvm = vmsa_core::id_block::to_igvm(&block, &auth, 0x4, true);
    assert_eq!((igvm.compatibility_mask, igvm.author_key_enabled), (4, 1));
    assert_eq!(
        vmsa_core::id_block::from_igvm(&igvm, 0x30002),
        (block, auth)
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn json_pair(json: &serde_json::Value) -> String {
    format!(
        "id-block={},id-auth={}",
        json["id_block"].as_str().unwrap(),
        json["id_auth"].as_str().unwrap()
    )
}
