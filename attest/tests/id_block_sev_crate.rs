//! ID blocks against virtee's `sev` crate (8.0, `measurement::idblock`, OpenSSL): for the same
//! digest, IDs, SVN, policy and keys (`tests/data/keys`), the 96-byte ID block equal byte for
//! byte, both key digests equal, the ID authentication information equal outside its two
//! signatures (each side's ECDSA nonces differ: ours are RFC 6979), the crate's signatures
//! verified by ours, and ours verified by OpenSSL, the crate's cryptography.
use openssl::bn::BigNum;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use sev::measurement::idblock::{gen_id_auth_block, generate_key_digest};
use sev::measurement::idblock_types::{FamilyId, IdBlock as SevIdBlock, ImageId};
use sev::measurement::snp::SnpLaunchDigest;
use sev::parser::ByteParser;
use std::path::PathBuf;
use vmsa_attest::id_block::{id_auth, signing_key, verify_id_auth};
use vmsa_core::id_block::{EcdsaSignature, IdAuthInfo, IdBlock};
use zerocopy::{FromBytes, IntoBytes};

fn key_path(name: &str) -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "data",
        "keys",
        name,
    ]
    .iter()
    .collect()
}

const LD: [u8; 48] = [0x5a; 48];
const FAMILY: [u8; 16] = *b"family-id-16byte";
const IMAGE: [u8; 16] = *b"image-id-16bytes";

fn theirs(svn: u32, policy: u64) -> SevIdBlock {
    SevIdBlock::new(
        Some(SnpLaunchDigest::new(LD)),
        Some(FamilyId::new(FAMILY)),
        Some(ImageId::new(IMAGE)),
        Some(svn),
        Some(policy.into()),
    )
    .unwrap()
}

#[test]
fn the_id_block_and_key_digests_equal_the_sev_crates() {
    for (svn, policy) in [(0, 0x30000), (7, 0x30000 | 1 << 19), (u32::MAX, 0x3_0fff)] {
        let ours = IdBlock::new(LD, FAMILY, IMAGE, svn, policy);
        assert_eq!(
            ours.as_bytes(),
            theirs(svn, policy).to_bytes().unwrap().as_slice(),
            "svn {svn} policy {policy:#x}"
        );
    }
    for name in ["id-sec1.pem", "author-pkcs8.pem"] {
        let pem = std::fs::read_to_string(key_path(name)).unwrap();
        let k = signing_key(&pem).unwrap();
        let ours = vmsa_attest::id_block::public_key(k.verifying_key()).digest();
        let theirs: Vec<u8> = generate_key_digest(key_path(name))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(ours.as_slice(), theirs.as_slice(), "{name}");
    }
}

/// Our ID authentication information and the crate's, with and without the signatures.
fn both() -> (IdBlock, IdAuthInfo, IdAuthInfo) {
    let block = IdBlock::new(LD, FAMILY, IMAGE, 3, 0x30000);
    let id = signing_key(&std::fs::read_to_string(key_path("id-sec1.pem")).unwrap()).unwrap();
    let author =
        signing_key(&std::fs::read_to_string(key_path("author-pkcs8.pem")).unwrap()).unwrap();
    let ours = id_auth(&block, &id, Some(&author));
    let theirs = gen_id_auth_block(
        &theirs(3, 0x30000),
        key_path("id-sec1.pem"),
        key_path("author-pkcs8.pem"),
    )
    .unwrap();
    let theirs = IdAuthInfo::read_from_bytes(theirs.to_bytes().unwrap().as_slice()).unwrap();
    (block, ours, theirs)
}

#[test]
fn the_id_auth_equals_the_sev_crates_outside_the_signatures() {
    let (_, mut ours, mut theirs) = both();
    for a in [&mut ours, &mut theirs] {
        a.id_block_sig = <EcdsaSignature as zerocopy::FromZeros>::new_zeroed();
        a.id_key_sig = <EcdsaSignature as zerocopy::FromZeros>::new_zeroed();
    }
    assert_eq!(ours.as_bytes(), theirs.as_bytes());
}

#[test]
fn each_sides_signatures_verify_with_the_others_checker() {
    let (block, ours, theirs) = both();
    // The crate's, by ours: both signatures, and the key digests the report will carry.
    let keys = verify_id_auth(&block, &theirs).unwrap();
    assert_eq!(keys.id_key_digest, theirs.id_key.digest());
    assert!(keys.author_key_digest.is_some());
    // Ours, by OpenSSL: the ID key's signature of the block, the author key's of the ID key.
    let verify = |key: &str, data: &[u8], sig: &EcdsaSignature| {
        let pem = std::fs::read(key_path(key)).unwrap();
        let k = EcKey::private_key_from_pem(&pem).unwrap();
        let public = EcKey::from_public_key(k.group(), k.public_key()).unwrap();
        let (r, s) = sig.to_be().unwrap();
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(&r).unwrap(),
            BigNum::from_slice(&s).unwrap(),
        )
        .unwrap();
        sig.verify(&openssl::sha::sha384(data), &public).unwrap()
    };
    assert!(verify("id-sec1.pem", block.as_bytes(), &ours.id_block_sig));
    assert!(verify(
        "author-pkcs8.pem",
        ours.id_key.as_bytes(),
        &ours.id_key_sig
    ));
    // And a changed block does not.
    let mut other = block;
    other.guest_svn ^= 1;
    assert!(!verify("id-sec1.pem", other.as_bytes(), &ours.id_block_sig));
    assert!(verify_id_auth(&other, &theirs).is_err());
}
