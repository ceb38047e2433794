//! `vmsa id-block` against sev-snp-measure 0.0.13's `snp-create-id-block` with the same keys
//! (`tests/data/keys`, made for these tests with `openssl ecparam -genkey` (SEC1) and `openssl
//! genpkey` (PKCS#8)): the ID block byte for byte, the ID authentication information byte for
//! byte outside the two signatures (the peer's nonces are random, ours RFC 6979), both key
//! digests; each side's signatures verify with the other's checker — the peer's with
//! `vmsa id-block --verify`. Then determinism, tampering and a missing author key.
mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{fixture, peer_installed, vmsa_bin};
use std::process::Command;

fn key(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/").to_owned() + name
}

fn pair(line: &str) -> (Vec<u8>, Vec<u8>) {
    let mut block = Vec::new();
    let mut auth = Vec::new();
    for part in line.split(',') {
        let (k, v) = part.split_once('=').unwrap();
        let bytes = B64.decode(v).unwrap();
        match k {
            "id-block" => block = bytes,
            "id-auth" => auth = bytes,
            other => panic!("{other}"),
        }
    }
    (block, auth)
}

/// The ID authentication information without its two signatures (r and s of each).
fn without_signatures(auth: &[u8]) -> Vec<u8> {
    let mut a = auth.to_vec();
    a[0x40..0x40 + 144].fill(0);
    a[0x680..0x680 + 144].fill(0);
    a
}

#[test]
fn equals_snp_create_id_block_and_verifies_the_peers_signatures() {
    if !peer_installed() {
        return;
    }
    let mut seed = common::random_seed("VMSA_ID_BLOCK_SEED");
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    // A launch's digest (a random vCPU count and CPU type), then random measurements (the peer
    // needs both keys: "missing key files for id block" without the author key).
    for round in 0..4 {
        let m = if round == 0 {
            let vcpus = (1 + common::xorshift(&mut seed) % 64).to_string();
            let cpu =
                ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"][(common::xorshift(&mut seed) % 3) as usize];
            let (_, m, _) = vmsa_bin(&[
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                &vcpus,
                "--vcpu-type",
                cpu,
                "--ovmf",
                fw.to_str().unwrap(),
                "--output-format",
                "base64",
            ]);
            m.trim().to_owned()
        } else {
            let bytes: Vec<u8> = (0..48).map(|_| common::xorshift(&mut seed) as u8).collect();
            B64.encode(bytes)
        };
        let m = m.as_str();
        let (id, au) = (key("id-sec1.pem"), key("author-pkcs8.pem"));
        let peer = Command::new("snp-create-id-block")
            .args(["--measurement", m, "--idkey", &id, "--authorkey", &au])
            .output()
            .expect("snp-create-id-block runs");
        assert!(peer.status.success(), "{peer:?}");
        let peer = String::from_utf8(peer.stdout).unwrap();
        let (code, ours, err) = vmsa_bin(&[
            "id-block",
            "--measurement",
            m,
            "--id-key",
            &id,
            "--author-key",
            &au,
        ]);
        assert_eq!(code, 0, "{err}");
        let (p, o): (Vec<&str>, Vec<&str>) = (peer.lines().collect(), ours.lines().collect());
        assert_eq!((p.len(), o.len()), (3, 3), "{m}");
        let (pb, pa) = pair(p[0]);
        let (ob, oa) = pair(o[0]);
        assert_eq!(ob, pb, "ID block, {m}");
        assert_eq!(
            without_signatures(&oa),
            without_signatures(&pa),
            "ID auth info, {m}"
        );
        assert_eq!(o[1..], p[1..], "key digests, {m}");
        // The peer's pair verifies here, ours too, and both bind the measurement.
        for line in [p[0], o[0]] {
            let (code, out, err) = vmsa_bin(&["id-block", "--verify", line, "--measurement", m]);
            assert_eq!(code, 0, "{out}{err}");
            assert!(out.starts_with("ID block verifies"), "{out}");
        }
    }
}

#[test]
fn deterministic_tamper_evident_and_author_optional() {
    let m = B64.encode([7u8; 48]);
    let args = [
        "id-block",
        "--measurement",
        &m,
        "--id-key",
        &key("id-sec1.pem"),
    ];
    let (code, a, err) = vmsa_bin(&args);
    assert_eq!(code, 0, "{err}");
    let (_, b, _) = vmsa_bin(&args);
    assert_eq!(a, b, "RFC 6979: the same inputs, the same bytes");
    // No author key: two lines, and the pair verifies without one.
    assert_eq!(a.lines().count(), 2);
    let line = a.lines().next().unwrap();
    let (code, out, _) = vmsa_bin(&["id-block", "--verify", line]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("author_key_digest: none"), "{out}");
    // Another measurement than the block binds.
    let (code, out, _) = vmsa_bin(&[
        "id-block",
        "--verify",
        line,
        "--measurement",
        &B64.encode([8u8; 48]),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("the ID block binds launch digest 0707")
            && out.contains("the launch's is 0808"),
        "{out}"
    );
    // One bit of the block's policy changed after signing.
    let (mut block, auth) = pair(line);
    block[0x58] ^= 1;
    let forged = format!(
        "id-block={},id-auth={}",
        B64.encode(&block),
        B64.encode(&auth)
    );
    let (code, out, _) = vmsa_bin(&["id-block", "--verify", &forged]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL: ID block signature"), "{out}");
    // Family and image IDs, SVN and policy land at their offsets.
    let (_, out, _) = vmsa_bin(&[
        "id-block",
        "--measurement",
        &m,
        "--id-key",
        &key("author-pkcs8.pem"),
        "--family-id",
        "00112233445566778899aabbccddeeff",
        "--image-id",
        "01",
        "--guest-svn",
        "5",
        "--policy",
        "0x30001",
    ]);
    let (block, _) = pair(out.lines().next().unwrap());
    assert_eq!(block[0x30], 0x00);
    assert_eq!(block[0x3f], 0xff);
    assert_eq!(block[0x40], 0x01);
    assert_eq!(&block[0x50..0x54], &1u32.to_le_bytes());
    assert_eq!(&block[0x54..0x58], &5u32.to_le_bytes());
    assert_eq!(&block[0x58..0x60], &0x30001u64.to_le_bytes());
    // Not a key.
    let (code, _, err) = vmsa_bin(&[
        "id-block",
        "--measurement",
        &m,
        "--id-key",
        &fixture("vectors.json").to_string_lossy(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not a P-384 private key"), "{err}");
}
