//! SNP attestation reports signed by real AMD processors (`tests/data/reports`, TESTING.md
//! names each one's source): decoded by `vmsa_core::report`, and every field cross-checked
//! against a second implementation's decoding (the `sev` crate 8.0, the virtee project's);
//! known answers for one report of each generation written out by hand from the bytes, and the
//! VCEK's SPL values the report's REPORTED_TCB must equal (from the certificates, read with
//! `openssl x509 -text`). Then malformed copies, and a decode ∘ encode round trip (proptest).

use proptest::prelude::*;
use sev::firmware::guest::AttestationReport as SevReport;
use sev::parser::ByteParser;
use std::path::PathBuf;
use vmsa_core::report::{
    AttestationReport, KeyInfo, PlatformInfo, PolicyFlags, Product, REPORT_LEN, Report,
    ReportError, SigningKey, TcbVersion,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/reports")
        .join(name)
}

/// Every real report, with the product the test names for version 2 (the reports' sources say
/// which machine made them: TESTING.md).
const REPORTS: &[(&str, Product)] = &[
    ("milan-v2-virtee.report.bin", Product::Milan),
    ("milan-v2-go-sev-guest.report.bin", Product::Milan),
    ("milan-v2-trustee.report.bin", Product::Milan),
    ("milan-v2-azure.report.bin", Product::Milan),
    ("milan-v3-trustee-vlek.report.bin", Product::Milan),
    ("milan-v3-oak.report.bin", Product::Milan),
    ("genoa-v3-azure.report.bin", Product::Genoa),
    ("genoa-v5-oak.report.bin", Product::Genoa),
    ("turin-v5-oak.report.bin", Product::Turin),
];

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tcb_eq(ours: &TcbVersion, theirs: &sev::firmware::host::TcbVersion, what: &str) {
    assert_eq!(
        (
            ours.fmc,
            ours.bootloader,
            ours.tee,
            ours.snp,
            ours.microcode
        ),
        (
            theirs.fmc,
            theirs.bootloader,
            theirs.tee,
            theirs.snp,
            theirs.microcode
        ),
        "{what}"
    );
}

#[test]
fn every_real_report_decodes_as_the_sev_crate_decodes_it() {
    for &(name, product) in REPORTS {
        let bytes = read(name);
        let ours = Report::parse(&bytes, Some(product)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = SevReport::from_bytes(&bytes).unwrap_or_else(|e| panic!("sev: {name}: {e}"));
        let x = &ours.raw;
        assert_eq!(ours.product, product, "{name}");
        assert_eq!(ours.product_from_cpuid, x.version >= 3, "{name}");
        assert_eq!(x.version, theirs.version, "{name}");
        assert_eq!(x.guest_svn, theirs.guest_svn, "{name}");
        assert_eq!(x.policy, u64::from(theirs.policy), "{name}");
        let p = ours.policy();
        assert_eq!(p.abi_major() as u64, theirs.policy.abi_major(), "{name}");
        assert_eq!(p.abi_minor() as u64, theirs.policy.abi_minor(), "{name}");
        for (flag, theirs) in [
            (PolicyFlags::SMT, theirs.policy.smt_allowed()),
            (PolicyFlags::MIGRATE_MA, theirs.policy.migrate_ma_allowed()),
            (PolicyFlags::DEBUG, theirs.policy.debug_allowed()),
            (
                PolicyFlags::SINGLE_SOCKET,
                theirs.policy.single_socket_required(),
            ),
            (PolicyFlags::CXL_ALLOW, theirs.policy.cxl_allowed()),
            (
                PolicyFlags::MEM_AES_256_XTS,
                theirs.policy.mem_aes_256_xts(),
            ),
            (PolicyFlags::RAPL_DIS, theirs.policy.rapl_dis()),
            (
                PolicyFlags::CIPHERTEXT_HIDING,
                theirs.policy.ciphertext_hiding(),
            ),
            (
                PolicyFlags::PAGE_SWAP_DISABLE,
                theirs.policy.page_swap_disabled(),
            ),
        ] {
            assert_eq!(p.flags().contains(flag), theirs, "{name}: {flag:?}");
        }
        assert_eq!(x.family_id, theirs.family_id, "{name}");
        assert_eq!(x.image_id, theirs.image_id, "{name}");
        assert_eq!(x.vmpl, theirs.vmpl, "{name}");
        assert_eq!(x.signature_algo, theirs.sig_algo, "{name}");
        assert_eq!(x.platform_info, theirs.plat_info.0, "{name}");
        let pi = ours.platform_info();
        for (flag, theirs) in [
            (PlatformInfo::SMT_EN, theirs.plat_info.smt_enabled()),
            (PlatformInfo::TSME_EN, theirs.plat_info.tsme_enabled()),
            (PlatformInfo::ECC_EN, theirs.plat_info.ecc_enabled()),
            (PlatformInfo::RAPL_DIS, theirs.plat_info.rapl_disabled()),
            (
                PlatformInfo::CIPHERTEXT_HIDING_EN,
                theirs.plat_info.ciphertext_hiding_enabled(),
            ),
            (
                PlatformInfo::ALIAS_CHECK_COMPLETE,
                theirs.plat_info.alias_check_complete(),
            ),
            (PlatformInfo::SEV_TIO_EN, theirs.plat_info.tio_enabled()),
        ] {
            assert_eq!(pi.contains(flag), theirs, "{name}: {flag:?}");
        }
        assert_eq!(
            ours.key_info.author_key_en,
            theirs.key_info.author_key_en(),
            "{name}"
        );
        assert_eq!(
            ours.key_info.mask_chip_key,
            theirs.key_info.mask_chip_key(),
            "{name}"
        );
        let key = match theirs.key_info.signing_key() {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            _ => SigningKey::None,
        };
        assert_eq!(ours.key_info.signing_key, key, "{name}");
        assert_eq!(x.report_data, theirs.report_data, "{name}");
        assert_eq!(x.measurement, theirs.measurement, "{name}");
        assert_eq!(x.host_data, theirs.host_data, "{name}");
        assert_eq!(x.id_key_digest, theirs.id_key_digest, "{name}");
        assert_eq!(x.author_key_digest, theirs.author_key_digest, "{name}");
        assert_eq!(x.report_id, theirs.report_id, "{name}");
        assert_eq!(x.report_id_ma, theirs.report_id_ma, "{name}");
        assert_eq!(x.chip_id, theirs.chip_id, "{name}");
        // The sev crate reads a version 2 report's TCBs as Genoa (or as Turin when the chip
        // ID looks like one): Milan and Genoa share the layout.
        tcb_eq(&ours.current_tcb, &theirs.current_tcb, name);
        tcb_eq(&ours.reported_tcb, &theirs.reported_tcb, name);
        tcb_eq(&ours.committed_tcb, &theirs.committed_tcb, name);
        tcb_eq(&ours.launch_tcb, &theirs.launch_tcb, name);
        if x.version >= 3 {
            assert_eq!(
                (
                    Some(x.cpuid_fam_id),
                    Some(x.cpuid_mod_id),
                    Some(x.cpuid_step)
                ),
                (theirs.cpuid_fam_id, theirs.cpuid_mod_id, theirs.cpuid_step),
                "{name}"
            );
        }
        let v = ours.current_version();
        assert_eq!(
            (v.major, v.minor, v.build),
            (
                theirs.current.major,
                theirs.current.minor,
                theirs.current.build
            ),
            "{name}"
        );
        let v = ours.committed_version();
        assert_eq!(
            (v.major, v.minor, v.build),
            (
                theirs.committed.major,
                theirs.committed.minor,
                theirs.committed.build
            ),
            "{name}"
        );
        if x.version >= 5 {
            assert_eq!(
                Some(x.launch_mit_vector),
                theirs.launch_mit_vector,
                "{name}"
            );
            assert_eq!(
                Some(x.current_mit_vector),
                theirs.current_mit_vector,
                "{name}"
            );
        }
        assert_eq!(&x.signature_r, theirs.signature.r(), "{name}");
        assert_eq!(&x.signature_s, theirs.signature.s(), "{name}");
    }
}

/// REPORTED_TCB against the SPL extensions of each report's own VCEK/VLEK (values read from the
/// certificates with `openssl x509 -text`; the Turin layout puts FMC first).
#[test]
fn reported_tcb_is_the_signing_keys_spl() {
    type Spl = (&'static str, Option<u8>, u8, u8, u8, u8);
    let want: &[Spl] = &[
        ("milan-v2-virtee.report.bin", None, 3, 0, 8, 115),
        ("milan-v3-trustee-vlek.report.bin", None, 4, 0, 24, 217),
        ("genoa-v5-oak.report.bin", None, 10, 0, 25, 84),
        ("turin-v5-oak.report.bin", Some(0), 1, 0, 2, 71),
    ];
    for &(name, fmc, bl, tee, snp, ucode) in want {
        let product = REPORTS.iter().find(|r| r.0 == name).unwrap().1;
        let r = Report::parse(&read(name), Some(product)).unwrap();
        assert_eq!(
            r.reported_tcb,
            TcbVersion {
                fmc,
                bootloader: bl,
                tee,
                snp,
                microcode: ucode
            },
            "{name}"
        );
    }
}

/// Known answers by hand, from the bytes of the Turin report (`xxd -s 0x180 -l 0x80`): the
/// fields a Turin-aware reader must get right and a Milan-layout one gets wrong.
#[test]
fn turin_known_answers() {
    let bytes = read("turin-v5-oak.report.bin");
    // REPORTED_TCB at 0x180 is 00 01 00 02 00 00 00 47: fmc 0, bl 1, tee 0, snp 2, ucode 0x47.
    assert_eq!(&bytes[0x180..0x188], &[0, 1, 0, 2, 0, 0, 0, 0x47]);
    let r = Report::parse(&bytes, None).unwrap();
    assert_eq!(r.product, Product::Turin);
    assert_eq!(
        (r.raw.cpuid_fam_id, r.raw.cpuid_mod_id, r.raw.cpuid_step),
        (0x1a, 0x02, 0x01)
    );
    assert_eq!(
        r.reported_tcb.to_string(),
        "fmc 0, boot loader 1, tee 0, snp 2, microcode 71"
    );
    // CHIP_ID: 8 bytes, then zeros.
    assert_eq!(
        r.chip_id(),
        [0x3b, 0x42, 0x09, 0x2f, 0x69, 0xc6, 0x56, 0xd3]
    );
    assert_eq!(r.current_version().to_string(), "1.55.61");
    // Read with Milan's layout the same bytes are not a TCB (bytes 2..6 are reserved there).
    assert_eq!(TcbVersion::decode(r.raw.reported_tcb, Product::Milan), None);
    // The signature is in the top half of the 72 bytes' low 48, little-endian.
    let (r_be, _) = r.signature_be().unwrap();
    assert_eq!(r_be[47], bytes[0x2a0]);
    assert_eq!(r_be[0], bytes[0x2a0 + 47]);
}

#[test]
fn version_2_needs_a_product_and_unknown_cpus_are_named() {
    let bytes = read("milan-v2-virtee.report.bin");
    assert_eq!(
        Report::parse(&bytes, None),
        Err(ReportError::ProductNeeded(2))
    );
    let mut b = read("genoa-v3-azure.report.bin");
    b[0x188] = 0x17; // Zen 2: no SNP
    assert_eq!(
        Report::parse(&b, None),
        Err(ReportError::UnknownProduct {
            family: 0x17,
            model: 0x11
        })
    );
    // Named, it reads.
    assert_eq!(
        Report::parse(&b, Some(Product::Genoa)).unwrap().product,
        Product::Genoa
    );
}

#[test]
fn malformed_reports_are_typed_errors() {
    let good = read("genoa-v5-oak.report.bin");
    assert_eq!(
        Report::parse(&good[..100], None),
        Err(ReportError::Length(100))
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        Report::parse(&long, None),
        Err(ReportError::Length(REPORT_LEN + 1))
    );
    for (version, ok) in [
        (0u32, false),
        (1, false),
        (2, true),
        (3, true),
        (4, true),
        (5, true),
        (6, false),
    ] {
        let mut b = good.clone();
        b[..4].copy_from_slice(&version.to_le_bytes());
        if version < 5 {
            // The mitigation vectors are reserved before version 5, the CPUID bytes before 3.
            b[0x1f8..0x208].fill(0);
        }
        if version < 3 {
            b[0x188..0x18b].fill(0);
        }
        let r = Report::parse(&b, Some(Product::Genoa));
        assert_eq!(r.is_ok(), ok, "version {version}: {r:?}");
        if !ok {
            assert_eq!(r, Err(ReportError::UnknownVersion(version)));
        }
    }
    // Each reserved range, one byte at a time.
    for offset in [0x4c, 0x18b, 0x19f, 0x1eb, 0x1ef, 0x208, 0x29f, 0x330, 0x49f] {
        let mut b = good.clone();
        b[offset] = 0x5a;
        assert_eq!(
            Report::parse(&b, None),
            Err(ReportError::ReservedNotZero {
                offset,
                value: 0x5a
            }),
            "{offset:#x}"
        );
    }
    // Before version 3 the CPUID bytes are reserved; before 5 the mitigation vectors.
    let mut b = read("milan-v2-virtee.report.bin");
    b[0x188] = 0x19;
    assert_eq!(
        Report::parse(&b, Some(Product::Milan)),
        Err(ReportError::ReservedNotZero {
            offset: 0x188,
            value: 0x19
        })
    );
    // Reserved KEY_INFO bits and signing keys.
    let mut b = good.clone();
    b[0x48] = 2 << 2;
    assert_eq!(Report::parse(&b, None), Err(ReportError::SigningKey(2)));
    let mut b = good.clone();
    b[0x49] = 1;
    assert_eq!(
        Report::parse(&b, None),
        Err(ReportError::ReservedNotZero {
            offset: 0x49,
            value: 1
        })
    );
    // A TCB with a byte its generation reserves.
    let mut b = good.clone();
    b[0x180 + 3] = 1;
    assert!(matches!(
        Report::parse(&b, None),
        Err(ReportError::TcbReserved {
            field: "REPORTED_TCB",
            ..
        })
    ));
}

fn any_tcb(product: Product) -> impl Strategy<Value = TcbVersion> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(move |(f, b, t, s, m)| TcbVersion {
            fmc: (product == Product::Turin).then_some(f),
            bootloader: b,
            tee: t,
            snp: s,
            microcode: m,
        })
}

fn any_product() -> impl Strategy<Value = Product> {
    prop_oneof![
        Just(Product::Milan),
        Just(Product::Genoa),
        Just(Product::Turin)
    ]
}

proptest! {
    /// decode ∘ encode: any TCB of any product encodes to bytes that decode to it.
    #[test]
    fn tcb_round_trips((product, tcb) in any_product().prop_flat_map(|p| (Just(p), any_tcb(p)))) {
        prop_assert_eq!(TcbVersion::decode(tcb.encode(product), product), Some(tcb));
    }

    /// decode ∘ encode: any KEY_INFO the ABI defines.
    #[test]
    fn key_info_round_trips(author in any::<bool>(), mask in any::<bool>(), key in 0usize..3) {
        let k = KeyInfo {
            author_key_en: author,
            mask_chip_key: mask,
            signing_key: [SigningKey::Vcek, SigningKey::Vlek, SigningKey::None][key],
        };
        prop_assert_eq!(KeyInfo::decode(k.encode()), Ok(k));
    }

    /// A report built field by field from decoded values parses back to them, and its bytes
    /// are the struct's (encode = the typed struct's bytes).
    #[test]
    fn report_round_trips(
        (product, tcbs) in any_product().prop_flat_map(|p| (Just(p), [any_tcb(p), any_tcb(p), any_tcb(p), any_tcb(p)])),
        version in 3u32..=5,
        policy in any::<u64>(),
        measurement in any::<[u8; 48]>(),
        report_data in any::<[u8; 32]>(),
        key in 0usize..3,
    ) {
        let mut raw = AttestationReport::new_zeroed();
        raw.version = version;
        raw.policy = policy;
        raw.measurement = measurement;
        raw.report_data[..32].copy_from_slice(&report_data);
        let (fam, model) = match product {
            Product::Milan => (0x19, 0x01),
            Product::Genoa => (0x19, 0x11),
            Product::Turin => (0x1a, 0x02),
        };
        raw.cpuid_fam_id = fam;
        raw.cpuid_mod_id = model;
        raw.current_tcb = tcbs[0].encode(product);
        raw.reported_tcb = tcbs[1].encode(product);
        raw.committed_tcb = tcbs[2].encode(product);
        raw.launch_tcb = tcbs[3].encode(product);
        let ki = KeyInfo { author_key_en: false, mask_chip_key: false, signing_key: [SigningKey::Vcek, SigningKey::Vlek, SigningKey::None][key] };
        raw.key_info = ki.encode();
        let r = Report::parse(raw.as_bytes(), None).unwrap();
        prop_assert_eq!(r.product, product);
        prop_assert_eq!([r.current_tcb, r.reported_tcb, r.committed_tcb, r.launch_tcb], tcbs);
        prop_assert_eq!(r.key_info, ki);
        prop_assert_eq!(r.raw.as_bytes(), raw.as_bytes());
        prop_assert_eq!(r.policy().0, policy);
        prop_assert!(AttestationReport::read_from_bytes(r.raw.as_bytes()).is_ok());
    }

    /// Any 1184 bytes: a report or a typed error, never a panic.
    #[test]
    fn any_bytes_decode_or_refuse(bytes in proptest::collection::vec(any::<u8>(), REPORT_LEN)) {
        let _ = Report::parse(&bytes, Some(Product::Milan));
    }
}
