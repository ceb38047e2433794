//! The OVMF footer-table and `ASEV` parser on the sev-snp-measure fixtures, the Debian `ovmf`
//! images, synthetic images for every malformation, and the round-trip properties.
mod common;

use proptest::prelude::*;
use std::path::Path;
use vmsa_core::Guid;
use vmsa_core::ovmf::{
    self, GpaRange, OvmfBuilder, OvmfError, OvmfImage, Section, SectionType, TableEntry,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sev-snp-measure");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

fn debian(path: &str) -> Option<Vec<u8>> {
    if !common::require::file("ovmf", path) {
        return None;
    }
    Some(std::fs::read(path).unwrap())
}

fn sections(fw: &OvmfImage<'_>) -> Vec<(u32, u32, u32)> {
    fw.sev_metadata()
        .map(|m| {
            m.sections()
                .map(|s| (s.gpa, s.size, s.section_type.0))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn amdsev_fixture() {
    let b = fixture("ovmf_AmdSev_suffix.bin");
    let fw = OvmfImage::parse(&b).unwrap();
    assert_eq!(fw.sev_es_reset_addr(), Some(0x80b004));
    assert_eq!(
        fw.sev_hash_table(),
        Some(GpaRange {
            base: 0x810c00,
            size: 0x400
        })
    );
    assert_eq!(
        fw.sev_secret_area(),
        Some(GpaRange {
            base: 0x810000,
            size: 0xc00
        })
    );
    assert!(fw.supports_kernel_hashes());
    assert_eq!(fw.gpa(), 0xffff_f000);
    assert_eq!(fw.table_len(), 0x88);
    assert_eq!(fw.tdx_metadata_offset(), Some(0x9d0));
    let names: Vec<_> = fw.entries().map(|e| e.entry.name()).collect();
    assert_eq!(
        names,
        [
            "SEV-ES reset block",
            "SEV secret area",
            "SEV hash table",
            "OVMF SEV metadata offset",
            "TDX metadata offset"
        ]
    );
    let md = fw.sev_metadata().unwrap();
    assert_eq!(md.offset(), 4096 - 0x554);
    assert_eq!(
        sections(&fw),
        [
            (0x800000, 0x9000, 1),
            (0x80a000, 0x3000, 1),
            (0x80d000, 0x1000, 2),
            (0x80e000, 0x1000, 3),
            (0x80f000, 0x1000, 4),
            (0x810000, 0x1000, 0x10),
            (0x811000, 0xf000, 1)
        ]
    );
    assert_eq!(
        md.find(SectionType::SNP_KERNEL_HASHES),
        Some(Section::new(0x810000, 0x1000, SectionType(0x10)))
    );
}

#[test]
fn ovmfx64_fixture() {
    let b = fixture("ovmf_OvmfX64_suffix.bin");
    let fw = OvmfImage::parse(&b).unwrap();
    assert_eq!(fw.sev_es_reset_addr(), Some(0x80b004));
    assert!(!fw.supports_kernel_hashes(), "hash table gpa is 0");
    assert_eq!(
        sections(&fw),
        [
            (0x800000, 0x9000, 1),
            (0x80a000, 0x3000, 1),
            (0x80d000, 0x1000, 2),
            (0x80e000, 0x1000, 3),
            (0x80f000, 0x1000, 4),
            (0x810000, 0x10000, 1)
        ]
    );
}

#[test]
fn debian_images() {
    for path in [
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_CODE.secboot.fd",
        "/usr/share/ovmf/OVMF.fd",
    ] {
        let Some(b) = debian(path) else { continue };
        let fw = OvmfImage::parse(&b).unwrap();
        assert_eq!(fw.sev_es_reset_addr(), Some(0x80b004), "{path}");
        assert_eq!(
            sections(&fw),
            [
                (0x800000, 0x9000, 1),
                (0x80a000, 0x3000, 1),
                (0x80d000, 0x1000, 2),
                (0x80e000, 0x1000, 3),
                (0x80f000, 0x11000, 1)
            ],
            "{path}"
        );
    }
    for path in [
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    ] {
        let Some(b) = debian(path) else { continue };
        let fw = OvmfImage::parse(&b).unwrap();
        assert_eq!(fw.sev_es_reset_addr(), Some(0x808004), "{path}");
        assert!(
            fw.sev_metadata().is_none(),
            "{path}: the 32-bit-PEI build has no ASEV"
        );
    }
    if let Some(b) = debian("/usr/share/OVMF/OVMF_VARS.fd") {
        assert!(matches!(
            OvmfImage::parse(&b),
            Err(OvmfError::NoFooter { .. })
        ));
        assert!(!OvmfImage::has_footer(&b));
    }
}

/// `build(parse(b)) == b` on the real fixtures: clear the table and the ASEV block, write them
/// again from what the parser read, and get the same bytes.
#[test]
fn rebuilding_the_fixtures_gives_the_same_bytes() {
    for name in ["ovmf_AmdSev_suffix.bin", "ovmf_OvmfX64_suffix.bin"] {
        let original = fixture(name);
        let fw = OvmfImage::parse(&original).unwrap();
        let md = fw.sev_metadata().unwrap();
        let secs: Vec<Section> = md.sections().collect();
        let md_range = md.offset()..md.offset() + md.len() as usize;
        let mut copy = original.clone();
        copy[fw.table_offset()..original.len() - 32].fill(0);
        copy[md_range].fill(0);
        assert_ne!(copy, original);
        let mut b = OvmfBuilder::new(&mut copy).unwrap();
        for e in fw.entries() {
            b.entry(&e.entry).unwrap();
        }
        b.finish().unwrap();
        ovmf::write_sev_metadata(&mut copy, original.len() - md.offset(), &secs).unwrap();
        assert_eq!(copy, original, "{name}");
    }
}

// ---- malformed images: one typed error each, never a panic -------------------------------

const G_TEST: Guid = Guid::from_fields(0x12345678, 0x9abc, 0xdef0, [1, 2, 3, 4, 5, 6, 7, 8]);

fn image_with(entries: &[TableEntry<'_>], md: Option<&[Section]>) -> Vec<u8> {
    let mut img = vec![0u8; 4096];
    ovmf::build(&mut img, entries, md).unwrap();
    img
}

/// Offset of the footer's u16 length field.
const FOOTER_LEN_AT: usize = 4096 - 50;

#[test]
fn too_short_and_no_footer() {
    assert_eq!(
        OvmfImage::parse(&[0; 49]),
        Err(OvmfError::TooShort { len: 49 })
    );
    assert_eq!(OvmfImage::parse(&[]), Err(OvmfError::TooShort { len: 0 }));
    let e = OvmfImage::parse(&[0; 4096]).unwrap_err();
    assert_eq!(
        e,
        OvmfError::NoFooter {
            offset: 4096 - 48,
            found: Guid([0; 16])
        }
    );
    assert!(e.to_string().contains("0xfd0"), "{e}");
}

#[test]
fn table_length_errors() {
    let mut img = image_with(&[], None);
    img[FOOTER_LEN_AT..FOOTER_LEN_AT + 2].copy_from_slice(&17u16.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img),
        Err(OvmfError::TableLengthTooSmall {
            offset: FOOTER_LEN_AT,
            len: 17
        })
    );
    let mut small = image_with(&[], None);
    small.drain(..4000); // 96 bytes left, footer intact
    small[96 - 50..96 - 48].copy_from_slice(&200u16.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&small),
        Err(OvmfError::TableOverrunsImage {
            offset: 46,
            len: 200,
            available: 64
        })
    );
}

#[test]
fn entry_length_errors() {
    let img = image_with(
        &[TableEntry::SevEsResetBlock {
            reset_addr: 0x80b004,
        }],
        None,
    );
    let entry_len_at = FOOTER_LEN_AT - 18;
    let mut short = img.clone();
    short[entry_len_at..entry_len_at + 2].copy_from_slice(&5u16.to_le_bytes());
    assert!(matches!(
        OvmfImage::parse(&short),
        Err(OvmfError::EntryTooShort { index: 0, len: 5, offset, .. }) if offset == entry_len_at
    ));
    let mut long = img.clone();
    long[entry_len_at..entry_len_at + 2].copy_from_slice(&30u16.to_le_bytes());
    assert!(matches!(
        OvmfImage::parse(&long),
        Err(OvmfError::EntryOverrunsTable {
            index: 0,
            len: 30,
            remaining: 22,
            ..
        })
    ));
    // Footer claims 5 more bytes than the entries use: stray bytes at the table start.
    let mut stray = img.clone();
    stray[FOOTER_LEN_AT..FOOTER_LEN_AT + 2].copy_from_slice(&(18u16 + 22 + 5).to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&stray),
        Err(OvmfError::TrailingTableBytes {
            offset: FOOTER_LEN_AT - 22 - 5,
            len: 5
        })
    );
}

#[test]
fn reset_block_of_the_wrong_size() {
    let img = image_with(
        &[TableEntry::Unknown {
            guid: ovmf::SEV_ES_RESET_BLOCK_GUID,
            data: &[4, 0xb0, 0x80],
        }],
        None,
    );
    let e = OvmfImage::parse(&img).unwrap_err();
    assert!(matches!(
        e,
        OvmfError::EntryWrongSize {
            index: 0,
            len: 3,
            name: "SEV-ES reset block",
            ..
        }
    ));
    assert!(
        e.to_string()
            .contains("00f771de-1a7e-4fcb-890e-68c77e2fb44e"),
        "{e}"
    );
}

#[test]
fn duplicate_known_entries() {
    let img = image_with(
        &[
            TableEntry::SevEsResetBlock { reset_addr: 1 },
            TableEntry::Unknown {
                guid: G_TEST,
                data: b"x",
            },
            TableEntry::SevEsResetBlock { reset_addr: 2 },
        ],
        None,
    );
    assert!(matches!(
        OvmfImage::parse(&img),
        Err(OvmfError::DuplicateEntry {
            first: 0,
            second: 2,
            ..
        })
    ));
}

#[test]
fn unknown_entries_are_listed() {
    let img = image_with(
        &[
            TableEntry::Unknown {
                guid: G_TEST,
                data: b"hello",
            },
            TableEntry::SvsmInfo(&[0x10, 0, 0, 0, 9, 9]),
            TableEntry::Unknown {
                guid: G_TEST,
                data: b"",
            },
        ],
        None,
    );
    let fw = OvmfImage::parse(&img).unwrap();
    let got: Vec<_> = fw.entries().map(|e| e.entry).collect();
    assert_eq!(
        got,
        [
            TableEntry::Unknown {
                guid: G_TEST,
                data: b"hello"
            },
            TableEntry::SvsmInfo(&[0x10, 0, 0, 0, 9, 9]),
            TableEntry::Unknown {
                guid: G_TEST,
                data: b""
            },
        ]
    );
    assert_eq!(fw.svsm_info(), Some(&[0x10u8, 0, 0, 0, 9, 9][..]));
}

fn with_metadata_offset(offset_from_end: u32) -> Vec<u8> {
    image_with(&[TableEntry::SevMetadataOffset { offset_from_end }], None)
}

#[test]
fn metadata_offset_outside_the_image() {
    for off in [0u32, 8, 4097, u32::MAX] {
        assert_eq!(
            OvmfImage::parse(&with_metadata_offset(off)),
            Err(OvmfError::MetadataOutsideImage {
                offset_from_end: off,
                image_len: 4096
            }),
            "{off}"
        );
    }
}

fn metadata_image(header: [u32; 3], descs: &[[u32; 3]]) -> Vec<u8> {
    let mut img = with_metadata_offset(1024);
    let at = 4096 - 1024;
    img[at..at + 4].copy_from_slice(b"ASEV");
    for (i, v) in header.iter().enumerate() {
        img[at + 4 + 4 * i..at + 8 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    for (i, d) in descs.iter().enumerate() {
        for (j, v) in d.iter().enumerate() {
            let o = at + 16 + 12 * i + 4 * j;
            img[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    img
}

#[test]
fn metadata_header_errors() {
    let at = 4096 - 1024;
    let mut sig = metadata_image([16, 1, 0], &[]);
    sig[at..at + 4].copy_from_slice(b"TDVF");
    assert_eq!(
        OvmfImage::parse(&sig),
        Err(OvmfError::BadMetadataSignature {
            offset: at,
            found: *b"TDVF"
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([16, 2, 0], &[])),
        Err(OvmfError::BadMetadataVersion {
            offset: at,
            version: 2
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([15, 1, 0], &[])),
        Err(OvmfError::BadMetadataLength {
            offset: at,
            len: 15,
            available: 1024
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([1025, 1, 0], &[])),
        Err(OvmfError::BadMetadataLength {
            offset: at,
            len: 1025,
            available: 1024
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([28, 1, 2], &[[0, 1, 1]])),
        Err(OvmfError::DescriptorsPastEnd {
            offset: at,
            count: 2,
            needed: 40,
            len: 28
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([28, 1, u32::MAX], &[])),
        Err(OvmfError::DescriptorsPastEnd {
            offset: at,
            count: u32::MAX,
            needed: 16 + 12 * u64::from(u32::MAX),
            len: 28
        })
    );
}

#[test]
fn too_many_sections() {
    let mut img = vec![0u8; 8192];
    let secs: Vec<Section> = (0..257)
        .map(|i| Section::new(i * 0x1000, 0x1000, SectionType::SNP_SEC_MEM))
        .collect();
    assert!(matches!(
        ovmf::build(&mut img, &[], Some(&secs)),
        Err(ovmf::BuildError::TooManySections { count: 257 })
    ));
    // Write it by hand.
    let mut img = vec![0u8; 8192];
    ovmf::build(
        &mut img,
        &[TableEntry::SevMetadataOffset {
            offset_from_end: 6000,
        }],
        None,
    )
    .unwrap();
    let at = 8192 - 6000;
    img[at..at + 4].copy_from_slice(b"ASEV");
    img[at + 4..at + 8].copy_from_slice(&(16u32 + 12 * 257).to_le_bytes());
    img[at + 8..at + 12].copy_from_slice(&1u32.to_le_bytes());
    img[at + 12..at + 16].copy_from_slice(&257u32.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img),
        Err(OvmfError::TooManySections {
            offset: at,
            count: 257
        })
    );
}

#[test]
fn section_errors() {
    let at = 4096 - 1024;
    assert_eq!(
        OvmfImage::parse(&metadata_image(
            [40, 1, 2],
            &[[0x1000, 0x1000, 1], [0x800000, 0, 2]]
        )),
        Err(OvmfError::ZeroSizedSection {
            index: 1,
            offset: at + 28,
            gpa: 0x800000,
            section_type: SectionType::SNP_SECRETS
        })
    );
    assert_eq!(
        OvmfImage::parse(&metadata_image([28, 1, 1], &[[0xffff_f000, 0x2000, 1]])),
        Err(OvmfError::SectionPast4G {
            index: 0,
            offset: at + 16,
            gpa: 0xffff_f000,
            size: 0x2000
        })
    );
    assert!(OvmfImage::parse(&metadata_image([28, 1, 1], &[[0xffff_f000, 0x1000, 1]])).is_ok());
    assert_eq!(
        OvmfImage::parse(&metadata_image(
            [52, 1, 3],
            &[
                [0x800000, 0x9000, 1],
                [0x80a000, 0x1000, 2],
                [0x808000, 0x1000, 3]
            ]
        )),
        Err(OvmfError::OverlappingSections {
            first: 0,
            first_gpa: 0x800000,
            first_size: 0x9000,
            second: 2,
            second_gpa: 0x808000,
            second_size: 0x1000
        })
    );
    // Unknown types parse (they are listed) but are reported.
    let img = metadata_image([28, 1, 1], &[[0x800000, 0x1000, 0x77]]);
    let fw = OvmfImage::parse(&img).unwrap();
    let md = fw.sev_metadata().unwrap();
    assert_eq!(
        md.sections().next().unwrap().section_type.to_string(),
        "unknown(0x77)"
    );
    assert_eq!(
        md.check_known_types(),
        Err(OvmfError::UnknownSectionType {
            index: 0,
            offset: at + 16,
            section_type: 0x77
        })
    );
}

// ---- properties -------------------------------------------------------------------------------

fn guid() -> impl Strategy<Value = Guid> {
    any::<[u8; 16]>().prop_map(Guid)
}

/// Owned form of a table entry for strategies.
#[derive(Debug, Clone)]
enum OwnedEntry {
    Reset(u32),
    Hash(u32, u32),
    Secret(u32, u32),
    Tdx(u32),
    Svsm(Vec<u8>),
    Unknown(Guid, Vec<u8>),
}

impl OwnedEntry {
    fn entry(&self) -> TableEntry<'_> {
        match self {
            Self::Reset(a) => TableEntry::SevEsResetBlock { reset_addr: *a },
            Self::Hash(b, s) => TableEntry::SevHashTable(GpaRange { base: *b, size: *s }),
            Self::Secret(b, s) => TableEntry::SevSecretArea(GpaRange { base: *b, size: *s }),
            Self::Tdx(o) => TableEntry::TdxMetadataOffset {
                offset_from_end: *o,
            },
            Self::Svsm(d) => TableEntry::SvsmInfo(d),
            Self::Unknown(g, d) => TableEntry::Unknown { guid: *g, data: d },
        }
    }
    fn slot(&self) -> Option<u8> {
        match self {
            Self::Reset(_) => Some(0),
            Self::Hash(..) => Some(1),
            Self::Secret(..) => Some(2),
            Self::Tdx(_) => Some(3),
            Self::Svsm(_) => Some(4),
            Self::Unknown(..) => None,
        }
    }
}

fn owned_entry() -> impl Strategy<Value = OwnedEntry> {
    prop_oneof![
        any::<u32>().prop_map(OwnedEntry::Reset),
        (any::<u32>(), any::<u32>()).prop_map(|(b, s)| OwnedEntry::Hash(b, s)),
        (any::<u32>(), any::<u32>()).prop_map(|(b, s)| OwnedEntry::Secret(b, s)),
        any::<u32>().prop_map(OwnedEntry::Tdx),
        proptest::collection::vec(any::<u8>(), 4..40).prop_map(OwnedEntry::Svsm),
        (guid(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_filter("not a known GUID", |(g, _)| ovmf::guid_name(g) == "unknown")
            .prop_map(|(g, d)| OwnedEntry::Unknown(g, d)),
    ]
}

/// Entries with each known GUID at most once.
fn entries() -> impl Strategy<Value = Vec<OwnedEntry>> {
    proptest::collection::vec(owned_entry(), 0..10).prop_map(|v| {
        let mut seen = [false; 5];
        v.into_iter()
            .filter(|e| match e.slot() {
                Some(s) => !std::mem::replace(&mut seen[s as usize], true),
                None => true,
            })
            .collect()
    })
}

/// Non-overlapping, non-empty sections below 4 GiB, in any order.
fn sections_strategy() -> impl Strategy<Value = Vec<Section>> {
    proptest::collection::vec((1u32..0x40, 1u32..0x10, any::<u32>()), 0..20).prop_map(|v| {
        let mut base = 0x1000u32;
        let mut out: Vec<Section> = v
            .into_iter()
            .map(|(gap, pages, t)| {
                base += gap * 0x1000;
                let s = Section::new(base, pages * 0x1000, SectionType(t % 0x12));
                base += pages * 0x1000;
                s
            })
            .collect();
        out.reverse();
        out
    })
}

proptest! {
    #[test]
    fn parse_of_build_is_the_input(es in entries(), md in proptest::option::of(sections_strategy()), size in 1024usize..8192) {
        let mut img = vec![0u8; size];
        let typed: Vec<TableEntry<'_>> = es.iter().map(OwnedEntry::entry).collect();
        ovmf::build(&mut img, &typed, md.as_deref()).unwrap();
        let fw = OvmfImage::parse(&img).unwrap();
        let got: Vec<TableEntry<'_>> = fw.entries().map(|e| e.entry).collect();
        match &md {
            None => prop_assert_eq!(&got, &typed),
            Some(secs) => {
                prop_assert_eq!(&got[..typed.len()], &typed[..]);
                let last_is_offset = matches!(got.last(), Some(TableEntry::SevMetadataOffset { .. }));
                prop_assert!(last_is_offset);
                prop_assert_eq!(got.len(), typed.len() + 1);
                let parsed: Vec<Section> = fw.sev_metadata().unwrap().sections().collect();
                prop_assert_eq!(&parsed, secs);
            }
        }
        let reset = es.iter().find_map(|e| match e { OwnedEntry::Reset(a) => Some(*a), _ => None });
        prop_assert_eq!(fw.sev_es_reset_addr(), reset);
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = OvmfImage::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_fixtures(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..12), which in any::<bool>()) {
        let mut b = fixture(if which { "ovmf_AmdSev_suffix.bin" } else { "ovmf_OvmfX64_suffix.bin" });
        for (at, v) in flips {
            b[at] = v;
        }
        if let Ok(fw) = OvmfImage::parse(&b) {
            // Whatever parses is walkable and consistent.
            prop_assert!(fw.entries().count() <= fw.table_len() / 18);
        }
    }
}
