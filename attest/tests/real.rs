//! Real reports signed by AMD processors (`tests/data/reports`, TESTING.md names the source of
//! each) verified with their own VCEK or VLEK and AMD's chain; then tampered copies,
//! mismatched certificates and a forged chain, each failing exactly the check it must.
//! (Every pair was also verified with `openssl dgst -sha384 -verify` and `openssl verify`
//! when it was collected; see TESTING.md.)

use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use vmsa_attest::{Cert, CertKind, Options, Verdict, builtin, verify};
use vmsa_core::report::{Product, Report};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/reports")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (report, its signing key, product for version 2, the key's kind).
const PAIRS: &[(&str, &str, Product, CertKind)] = &[
    (
        "milan-v2-virtee.report.bin",
        "milan-v2-virtee.vcek.der",
        Product::Milan,
        CertKind::Vcek,
    ),
    (
        "milan-v2-go-sev-guest.report.bin",
        "milan-v2-go-sev-guest.vcek.der",
        Product::Milan,
        CertKind::Vcek,
    ),
    (
        "milan-v2-trustee.report.bin",
        "milan-v2-trustee.vcek.der",
        Product::Milan,
        CertKind::Vcek,
    ),
    (
        "milan-v2-azure.report.bin",
        "milan-v2-azure.vcek.der",
        Product::Milan,
        CertKind::Vcek,
    ),
    (
        "milan-v3-trustee-vlek.report.bin",
        "milan-v3-trustee-vlek.vlek.der",
        Product::Milan,
        CertKind::Vlek,
    ),
    (
        "milan-v3-oak.report.bin",
        "milan-v3-oak.vcek.der",
        Product::Milan,
        CertKind::Vcek,
    ),
    (
        "genoa-v3-azure.report.bin",
        "genoa-v3-azure.vcek.pem",
        Product::Genoa,
        CertKind::Vcek,
    ),
    (
        "genoa-v5-oak.report.bin",
        "genoa-v5-oak.vcek.der",
        Product::Genoa,
        CertKind::Vcek,
    ),
    (
        "turin-v5-oak.report.bin",
        "turin-v5-oak.vcek.der",
        Product::Turin,
        CertKind::Vcek,
    ),
];

/// 2026-12-01: inside every VCEK's and AMD certificate's validity; the VLEK (2024-12-10 to
/// 2025-12-10) has expired by then.
fn december_2026() -> Options {
    Options {
        now: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)),
    }
}

fn failed(v: &Verdict) -> Vec<(&'static str, String)> {
    v.checks
        .iter()
        .filter_map(|c| c.result.as_ref().err().map(|e| (c.name, e.clone())))
        .collect()
}

#[test]
fn every_real_report_verifies_with_its_key_and_amds_chain() {
    for &(report, key, product, kind) in PAIRS {
        let r = Report::parse(&read(report), Some(product)).unwrap();
        let k = Cert::parse(&read(key)).unwrap();
        assert_eq!(k.kind(), kind, "{key}");
        assert_eq!(k.product(), Some(product), "{key}");
        let opts = if kind == CertKind::Vlek {
            Options { now: None }
        } else {
            december_2026()
        };
        let v = verify(&r, &k, &[], opts);
        assert!(v.passed(), "{report}: {:?}", failed(&v));
        assert!(v.checks.len() >= 8, "{report}: {:?}", v.checks);
    }
}

#[test]
fn the_expired_vlek_fails_only_its_validity() {
    let r = Report::parse(&read("milan-v3-trustee-vlek.report.bin"), None).unwrap();
    let k = Cert::parse(&read("milan-v3-trustee-vlek.vlek.der")).unwrap();
    assert_eq!(
        k.extensions().csp_id.as_deref(),
        Some("CN=cc-us-east-2.amazonaws.com")
    );
    let v = verify(&r, &k, &[], december_2026());
    let f = failed(&v);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "validity");
    assert!(
        f[0].1
            .contains("SEV-VLEK is valid from 2024-12-10 to 2025-12-10"),
        "{f:?}"
    );
}

#[test]
fn a_chain_as_amd_serves_it_is_used_and_its_ark_must_be_amds() {
    let r = Report::parse(&read("turin-v5-oak.report.bin"), None).unwrap();
    let k = Cert::parse(&read("turin-v5-oak.vcek.der")).unwrap();
    let chain = Cert::bundle(&read("cert_chain_turin.pem")).unwrap();
    assert_eq!(
        chain.iter().map(Cert::kind).collect::<Vec<_>>(),
        [CertKind::Ask, CertKind::Ark]
    );
    let v = verify(&r, &k, &chain, december_2026());
    assert!(v.passed(), "{:?}", failed(&v));
    assert!(v.checks.iter().any(|c| c.name == "ARK is AMD's"));
    // Milan's chain for a Turin report: the ARK is not Turin's, the ASK did not sign the VCEK.
    let milan = Cert::bundle(&read("cert_chain_milan.pem")).unwrap();
    let v = verify(&r, &k, &milan, december_2026());
    let names: Vec<_> = failed(&v).into_iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        ["ARK is AMD's", "ARK signs ASK", "ASK signs key"],
        "{:?}",
        failed(&v)
    );
}

#[test]
fn tampered_reports_fail_the_signature_only() {
    let bytes = read("genoa-v5-oak.report.bin");
    let k = Cert::parse(&read("genoa-v5-oak.vcek.der")).unwrap();
    // One bit of REPORT_DATA, of MEASUREMENT, of the policy; and one bit of s.
    for (offset, bit) in [(0x50, 0x01), (0x90, 0x80), (0x08, 0x04), (0x2e8, 0x01)] {
        let mut b = bytes.clone();
        b[offset] ^= bit;
        let r = Report::parse(&b, None).unwrap();
        let v = verify(&r, &k, &[], december_2026());
        let f = failed(&v);
        assert_eq!(f.len(), 1, "{offset:#x}: {f:?}");
        assert_eq!(f[0].0, "report signature", "{offset:#x}");
    }
}

#[test]
fn another_chips_vcek_fails_signature_tcb_and_chip_id() {
    // Milan's go-sev-guest report with the virtee VCEK (both Milan, different chips and TCBs).
    let r = Report::parse(
        &read("milan-v2-go-sev-guest.report.bin"),
        Some(Product::Milan),
    )
    .unwrap();
    let k = Cert::parse(&read("milan-v2-virtee.vcek.der")).unwrap();
    let v = verify(&r, &k, &[], december_2026());
    let names: Vec<_> = failed(&v).into_iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        ["report signature", "TCB", "chip ID"],
        "{:?}",
        failed(&v)
    );
    // A Genoa VCEK for a Milan report: also the product and the chain.
    let k = Cert::parse(&read("genoa-v5-oak.vcek.der")).unwrap();
    let v = verify(&r, &k, &[], december_2026());
    let names: Vec<_> = failed(&v).into_iter().map(|f| f.0).collect();
    assert!(
        names.contains(&"ASK signs key") && names.contains(&"product"),
        "{names:?}"
    );
    // A VCEK for a VLEK-signed report: the key kind.
    let r = Report::parse(&read("milan-v3-trustee-vlek.report.bin"), None).unwrap();
    let k = Cert::parse(&read("milan-v3-oak.vcek.der")).unwrap();
    let v = verify(&r, &k, &[], Options { now: None });
    assert!(
        failed(&v).iter().any(|f| f.0 == "signing key kind"),
        "{:?}",
        failed(&v)
    );
}

#[test]
fn trustees_deliberately_broken_vcek_fails() {
    let r = Report::parse(&read("milan-v2-trustee.report.bin"), Some(Product::Milan)).unwrap();
    let k = Cert::parse(&read("invalid-legacy.vcek.der")).unwrap();
    let v = verify(&r, &k, &[], december_2026());
    assert!(!v.passed());
    assert!(
        failed(&v).iter().any(|f| f.0 == "ASK signs key"),
        "{:?}",
        failed(&v)
    );
}

#[test]
fn builtin_chains_verify_for_every_product() {
    for p in Product::ALL {
        let ark = builtin::ark(p);
        assert_eq!(ark.kind(), CertKind::Ark);
        assert_eq!(ark.product(), Some(p));
        ark.signed_by(&ark).unwrap();
        builtin::ask(p).signed_by(&ark).unwrap();
        builtin::asvk(p).signed_by(&ark).unwrap();
        assert_eq!(builtin::asvk(p).kind(), CertKind::Asvk);
        // And one product's ASK is not signed by another's ARK.
        let other = Product::ALL[(p as usize + 1) % 3];
        assert!(builtin::ask(other).signed_by(&ark).is_err());
    }
}

#[test]
fn vcek_extensions_are_the_reports_tcb_and_chip() {
    let k = Cert::parse(&read("turin-v5-oak.vcek.der")).unwrap();
    let e = k.extensions();
    assert_eq!(e.product_name.as_deref(), Some("Turin"));
    assert_eq!(
        (e.fmc, e.bootloader, e.tee, e.snp, e.microcode),
        (Some(0), Some(1), Some(0), Some(2), Some(71))
    );
    assert_eq!(
        e.hwid.as_deref(),
        Some(&[0x3b, 0x42, 0x09, 0x2f, 0x69, 0xc6, 0x56, 0xd3][..])
    );
    let k = Cert::parse(&read("milan-v3-trustee-vlek.vlek.der")).unwrap();
    // A microcode SPL above 127 takes two DER content bytes (02 02 00 d9).
    assert_eq!(k.extensions().microcode, Some(217));
}
