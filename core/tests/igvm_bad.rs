//! The bad-input corpus: each malformed IGVM file and the typed error `vmsa_core::igvm`
//! must give for it, with header index and offset. Inputs on which `igvm` 0.5 panics are
//! marked; the reader here must return an error instead.

mod igvm_common;

use igvm_common::*;
use igvm_defs::IgvmVariableHeaderType as T;
use igvm_defs::*;
use vmsa_core::igvm::{At, IgvmError as E, IgvmFile, ParameterAreaProblem, Section};
use zerocopy::IntoBytes;

fn err(bytes: &[u8]) -> E {
    IgvmFile::parse(bytes).expect_err("the file must be refused")
}

/// The n-th header of a file whose headers start at 24, given the sizes of the ones before.
fn at(index: u32, offset: u32) -> At {
    At { index, offset }
}

/// The SUPPORTED_PLATFORM header for SNP with mask 1 (24 bytes with its type and length).
fn snp() -> RawHeader<'static> {
    h(
        T::IGVM_VHT_SUPPORTED_PLATFORM,
        sp(SNP, IgvmPlatformType::SEV_SNP),
    )
}

/// The SUPPORTED_PLATFORM header for VBS (VSM isolation) with mask 1.
fn vbs() -> RawHeader<'static> {
    h(
        T::IGVM_VHT_SUPPORTED_PLATFORM,
        sp(1, IgvmPlatformType::VSM_ISOLATION),
    )
}

fn page_data(gpa: u64, mask: u32, file_offset: u32) -> IGVM_VHS_PAGE_DATA {
    IGVM_VHS_PAGE_DATA {
        gpa,
        compatibility_mask: mask,
        file_offset,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        reserved: 0,
    }
}

fn vp_context(gpa: u64, mask: u32, file_offset: u32, vp_index: u16) -> IGVM_VHS_VP_CONTEXT {
    IGVM_VHS_VP_CONTEXT {
        gpa: gpa.into(),
        compatibility_mask: mask,
        file_offset,
        vp_index,
        reserved: 0,
    }
}

/// A RELOCATABLE_REGION for VP 0, VTL 0 (mask 1), relocatable within 0..0x1000_0000.
fn region(gpa: u64, size: u64, alignment: u64) -> IGVM_VHS_RELOCATABLE_REGION {
    IGVM_VHS_RELOCATABLE_REGION {
        compatibility_mask: 1,
        vp_index: 0,
        vtl: 0,
        flags: 0,
        relocation_alignment: alignment,
        relocation_region_gpa: gpa,
        relocation_region_size: size,
        minimum_relocation_gpa: 0,
        maximum_relocation_gpa: 0x1000_0000,
    }
}

/// A valid SNP file: platform (#0 at 24), page data (#1 at 48), VP context (#2 at 80); data
/// at 112: one 4 KiB page then one 4 KiB VMSA.
fn valid() -> Vec<u8> {
    let mut data = vec![0x5a; 4096];
    data.extend_from_slice(&[0u8; 4096]);
    raw_file(
        &[
            snp(),
            hd(T::IGVM_VHT_PAGE_DATA, |ds| page_data(0xffff_f000, SNP, ds)),
            hd(T::IGVM_VHT_VP_CONTEXT, |ds| {
                vp_context(0xffff_ffff_f000, SNP, ds + 4096, 0)
            }),
        ],
        &data,
    )
}

#[test]
fn the_base_file_is_valid_for_both_readers() {
    let bytes = valid();
    let f = IgvmFile::parse(&bytes).unwrap();
    assert_eq!(f.header_count(), 3);
    assert_same(&bytes);
}

#[test]
fn truncated() {
    let bytes = valid();
    assert_eq!(
        err(&bytes[..10]),
        E::TooShort {
            len: 10,
            needed: 24
        }
    );
    assert_eq!(
        err(&bytes[..200]),
        E::SizeMismatch {
            header: bytes.len() as u32,
            actual: 200
        }
    );
    assert_eq!(err(&[]), E::TooShort { len: 0, needed: 24 });
}

#[test]
fn bad_magic_version_architecture_page_size() {
    let mut b = valid();
    b[0] = b'X';
    assert!(matches!(err(&b), E::BadMagic { .. }));
    let mut b = valid();
    b[4] = 3;
    assert_eq!(err(&b), E::UnsupportedVersion { version: 3 });
    // A version 2 header needs 32 bytes: architecture and page size at 24 and 28.
    let mut b = valid();
    b[4] = 2;
    b[24..28].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(err(&b), E::UnknownArchitecture { value: 5 });
    let mut b = valid();
    b[4] = 2;
    b[24..28].copy_from_slice(&0u32.to_le_bytes());
    b[28..32].copy_from_slice(&0x2000u32.to_le_bytes());
    assert_eq!(err(&b), E::UnsupportedPageSize { page_size: 0x2000 });
}

#[test]
fn bad_checksum() {
    let mut b = valid();
    let stored = u32::from_le_bytes(b[20..24].try_into().unwrap());
    b[60] ^= 1; // the page data GPA, inside the checksummed headers
    let E::BadChecksum {
        stored: s,
        computed,
    } = err(&b)
    else {
        panic!("wrong error")
    };
    assert_eq!(s, stored);
    assert_ne!(computed, stored);
    // File data is not covered by the checksum.
    let mut b = valid();
    b[200] ^= 1;
    assert!(IgvmFile::parse(&b).is_ok());
}

#[test]
fn variable_headers_overflow_u32_igvm_panics() {
    let mut b = valid();
    b[12..16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert_eq!(
        err(&b),
        E::VariableHeadersOutOfBounds {
            offset: 24,
            size: 0xffff_fff0,
            file_len: b.len()
        }
    );
    assert!(
        igvm_panics(&b),
        "igvm 0.5 panics on offset + size overflowing u32"
    );
}

#[test]
fn variable_headers_overlapping_the_fixed_header_or_unaligned() {
    for offset in [16u32, 28] {
        let mut b = valid();
        b[8..12].copy_from_slice(&offset.to_le_bytes());
        assert_eq!(
            err(&b),
            E::VariableHeadersMisplaced {
                offset,
                fixed_size: 24
            }
        );
    }
}

#[test]
fn file_offset_inside_the_headers_igvm_panics() {
    // PAGE_DATA whose file data starts at offset 40, inside the variable headers.
    let b = raw_file(
        &[snp(), h(T::IGVM_VHT_PAGE_DATA, page_data(0, SNP, 40))],
        &[0u8; 8192],
    );
    assert_eq!(
        err(&b),
        E::FileDataOutOfRange {
            at: at(1, 48),
            file_offset: 40,
            size: 4096,
            data_start: 80,
            file_len: b.len()
        }
    );
    assert!(
        igvm_panics(&b),
        "igvm 0.5 subtracts the data start from the offset without a check"
    );
}

#[test]
fn file_data_out_of_range() {
    // The page needs 4 KiB at data_start + 100, but only 4 KiB of data follow.
    let b = raw_file(
        &[
            snp(),
            hd(T::IGVM_VHT_PAGE_DATA, |ds| page_data(0, SNP, ds + 100)),
        ],
        &[0u8; 4096],
    );
    assert_eq!(
        err(&b),
        E::FileDataOutOfRange {
            at: at(1, 48),
            file_offset: 180,
            size: 4096,
            data_start: 80,
            file_len: b.len()
        }
    );
    // A parameter area whose size runs past the end of the file.
    let b = raw_file(
        &[
            snp(),
            hd(T::IGVM_VHT_PARAMETER_AREA, |ds| IGVM_VHS_PARAMETER_AREA {
                number_of_bytes: 0xffff_ffff_ffff_f000,
                parameter_area_index: 0,
                file_offset: ds,
            }),
        ],
        &[0u8; 4096],
    );
    assert!(matches!(
        err(&b),
        E::FileDataOutOfRange {
            at: At {
                index: 1,
                offset: 48
            },
            ..
        }
    ));
}

#[test]
fn vp_context_without_file_data_igvm_panics() {
    let b = raw_file(
        &[snp(), h(T::IGVM_VHT_VP_CONTEXT, vp_context(0, SNP, 0, 0))],
        &[0u8; 4096],
    );
    assert_eq!(err(&b), E::MissingFileData { at: at(1, 48) });
    assert!(igvm_panics(&b));
}

#[test]
fn relocation_alignment_zero_igvm_panics() {
    let b = raw_file(
        &[
            vbs(),
            h(T::IGVM_VHT_RELOCATABLE_REGION, region(0x10_0000, 0x1000, 0)),
        ],
        &[0u8; 16],
    );
    assert!(matches!(
        err(&b),
        E::InvalidField {
            at: At {
                index: 1,
                offset: 48
            },
            value: 0,
            ..
        }
    ));
    assert!(igvm_panics(&b), "igvm 0.5 computes gpa % alignment");
}

#[test]
fn vbs_context_for_vp_1_igvm_panics() {
    let regs = [1u32.as_bytes(), &[0u8; 32][..]].concat(); // one zeroed register, VTL 0
    let b = raw_file(
        &[
            vbs(),
            hd(T::IGVM_VHT_VP_CONTEXT, |ds| vp_context(0, 1, ds, 1)),
        ],
        &regs,
    );
    assert!(matches!(
        err(&b),
        E::InvalidField {
            at: At {
                index: 1,
                offset: 48
            },
            value: 1,
            ..
        }
    ));
    assert!(igvm_panics(&b), "igvm 0.5 assert_eq!s the VBS vp_index");
}

#[test]
fn unknown_required_header_is_an_error_optional_is_skipped() {
    for typ in [0x108u32, 0x250, 0x3ff, 0x306] {
        let b = raw_file(&[snp(), h(T(typ), [0u8; 8])], &[0u8; 16]);
        assert_eq!(
            err(&b),
            E::UnknownHeaderType { at: at(1, 48), typ },
            "type {typ:#x}"
        );
    }
    let b = raw_file(
        &[
            snp(),
            h(T(0x8000_0250), [7u8; 12]),
            h(T::IGVM_VHT_PAGE_DATA, page_data(0, SNP, 0)),
        ],
        &[0u8; 16],
    );
    let f = IgvmFile::parse(&b).expect("an unknown optional header is skipped");
    assert_eq!(f.skipped_count(), 1);
    let skipped: Vec<_> = f.skipped().map(|e| (e.at, e.header.typ().0)).collect();
    assert_eq!(skipped, [(at(1, 48), 0x8000_0250)]);
    assert_eq!(f.directives(SNP).count(), 1);
    assert!(
        igvm::IgvmFile::new_from_binary(&b, None).is_err(),
        "igvm 0.5 refuses optional headers"
    );
}

#[test]
fn wrong_length_and_truncated_header() {
    let b = raw_file(&[snp(), h(T::IGVM_VHT_PAGE_DATA, [0u8; 20])], &[0u8; 16]);
    assert_eq!(
        err(&b),
        E::WrongHeaderLength {
            at: at(1, 48),
            typ: 0x302,
            expected: 24,
            actual: 20
        }
    );
    // A length that runs past the section end.
    let mut b = valid();
    b[52..56].copy_from_slice(&0x1000u32.to_le_bytes());
    fix_checksum(&mut b);
    assert_eq!(err(&b), E::HeaderTruncated { at: at(1, 48) });
}

#[test]
fn non_zero_padding() {
    // The VP context is 20 bytes: 4 bytes of padding follow it (file offsets 108..112).
    let mut b = valid();
    b[110] = 1;
    fix_checksum(&mut b);
    assert_eq!(err(&b), E::NonZeroPadding { at: at(2, 80) });
    assert!(
        igvm::IgvmFile::new_from_binary(&b, None).is_ok(),
        "igvm 0.5 does not check padding"
    );
}

#[test]
fn sections_out_of_order_and_no_platform() {
    let b = raw_file(
        &[
            snp(),
            h(T::IGVM_VHT_PAGE_DATA, page_data(0, SNP, 0)),
            h(
                T::IGVM_VHT_GUEST_POLICY,
                IGVM_VHS_GUEST_POLICY {
                    policy: 0x30000,
                    compatibility_mask: SNP,
                    reserved: 0,
                },
            ),
        ],
        &[0u8; 16],
    );
    assert_eq!(
        err(&b),
        E::OutOfOrder {
            at: at(2, 80),
            typ: 0x101,
            section: Section::Initialization,
            after: Section::Directive
        }
    );
    let b = raw_file(&[], &[0u8; 16]);
    assert_eq!(err(&b), E::NoPlatform);
}

#[test]
fn bad_platforms() {
    let one = |p: IGVM_VHS_SUPPORTED_PLATFORM| {
        raw_file(&[h(T::IGVM_VHT_SUPPORTED_PLATFORM, p)], &[0u8; 16])
    };
    assert_eq!(
        err(&one(sp(3, IgvmPlatformType::SEV_SNP))),
        E::PlatformMask {
            at: at(0, 24),
            mask: 3
        }
    );
    assert_eq!(
        err(&one(sp(1, IgvmPlatformType(9)))),
        E::UnknownPlatformType {
            at: at(0, 24),
            value: 9
        }
    );
    let mut v2 = sp(1, IgvmPlatformType::SEV_SNP);
    v2.platform_version = 2;
    assert!(matches!(
        err(&one(v2)),
        E::InvalidPlatform {
            field: "platform_version",
            value: 2,
            ..
        }
    ));
    let mut vtl = sp(1, IgvmPlatformType::SEV_SNP);
    vtl.highest_vtl = 1;
    assert!(matches!(
        err(&one(vtl)),
        E::InvalidPlatform {
            field: "highest_vtl",
            value: 1,
            ..
        }
    ));
    assert!(matches!(
        err(&one(sp(1, IgvmPlatformType::CCA))),
        E::WrongArchitecture { .. }
    ));
    let two = |a, b| {
        raw_file(
            &[
                h(T::IGVM_VHT_SUPPORTED_PLATFORM, a),
                h(T::IGVM_VHT_SUPPORTED_PLATFORM, b),
            ],
            &[0u8; 16],
        )
    };
    assert_eq!(
        err(&two(
            sp(1, IgvmPlatformType::SEV_SNP),
            sp(1, IgvmPlatformType::SEV_ES)
        )),
        E::PlatformMask {
            at: at(1, 48),
            mask: 1
        }
    );
    assert_eq!(
        err(&two(
            sp(1, IgvmPlatformType::SEV_SNP),
            sp(2, IgvmPlatformType::SEV_SNP)
        )),
        E::DuplicatePlatform {
            at: at(1, 48),
            platform: IgvmPlatformType::SEV_SNP
        }
    );
}

#[test]
fn masks_alignment_reserved_types_flags() {
    let with = |p: IGVM_VHS_PAGE_DATA| raw_file(&[snp(), h(T::IGVM_VHT_PAGE_DATA, p)], &[0u8; 16]);
    assert_eq!(
        err(&with(page_data(0, 2, 0))),
        E::UndeclaredMask {
            at: at(1, 48),
            mask: 2,
            declared: 1
        }
    );
    assert_eq!(
        err(&with(page_data(0, 0, 0))),
        E::UndeclaredMask {
            at: at(1, 48),
            mask: 0,
            declared: 1
        }
    );
    assert_eq!(
        err(&with(page_data(0x1234, 1, 0))),
        E::Unaligned {
            at: at(1, 48),
            field: "gpa",
            value: 0x1234,
            alignment: 0x1000
        }
    );
    let mut big = page_data(0x1000, 1, 0);
    big.flags = IgvmPageDataFlags::new().with_is_2mb_page(true);
    assert_eq!(
        err(&with(big)),
        E::Unaligned {
            at: at(1, 48),
            field: "gpa",
            value: 0x1000,
            alignment: 0x20_0000
        }
    );
    let mut t = page_data(0, 1, 0);
    t.data_type = IgvmPageDataType(7);
    assert_eq!(
        err(&with(t)),
        E::UnknownPageDataType {
            at: at(1, 48),
            value: 7
        }
    );
    let mut f = page_data(0, 1, 0);
    f.flags = IgvmPageDataFlags::from_bits(1 << 5);
    assert_eq!(
        err(&with(f)),
        E::UnknownFlags {
            at: at(1, 48),
            field: "flags",
            value: 1 << 5
        }
    );
    let mut r = page_data(0, 1, 0);
    r.reserved = 1;
    assert_eq!(
        err(&with(r)),
        E::ReservedNotZero {
            at: at(1, 48),
            field: "reserved"
        }
    );
}

#[test]
fn parameter_area_misuse() {
    let area = |i| {
        h(
            T::IGVM_VHT_PARAMETER_AREA,
            IGVM_VHS_PARAMETER_AREA {
                number_of_bytes: 0x1000,
                parameter_area_index: i,
                file_offset: 0,
            },
        )
    };
    let use_ = |i, off| {
        h(
            T::IGVM_VHT_VP_COUNT_PARAMETER,
            IGVM_VHS_PARAMETER {
                parameter_area_index: i,
                byte_offset: off,
            },
        )
    };
    let insert = |i| {
        h(
            T::IGVM_VHT_PARAMETER_INSERT,
            IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x1000,
                compatibility_mask: SNP,
                parameter_area_index: i,
            },
        )
    };
    let problem = |p| {
        move |at| E::ParameterArea {
            at,
            area: 0,
            problem: p,
        }
    };
    // Used before declared; declared twice; used after insert; inserted twice.
    assert_eq!(
        err(&raw_file(&[snp(), use_(0, 0)], &[0; 8])),
        problem(ParameterAreaProblem::Undeclared)(at(1, 48))
    );
    assert_eq!(
        err(&raw_file(&[snp(), area(0), area(0)], &[0; 8])),
        problem(ParameterAreaProblem::DeclaredTwice)(at(2, 72))
    );
    assert_eq!(
        err(&raw_file(&[snp(), area(0), insert(0), use_(0, 0)], &[0; 8])),
        problem(ParameterAreaProblem::AlreadyInserted)(at(3, 96))
    );
    assert_eq!(
        err(&raw_file(&[snp(), area(0), insert(0), insert(0)], &[0; 8])),
        problem(ParameterAreaProblem::AlreadyInserted)(at(3, 96))
    );
    // A u32 VP count at byte 0xffe of a 4 KiB area does not fit (QEMU writes it unchecked).
    assert_eq!(
        err(&raw_file(&[snp(), area(0), use_(0, 0xffe)], &[0; 8])),
        E::ParameterOutsideArea {
            at: at(2, 72),
            area: 0,
            byte_offset: 0xffe,
            size: 4,
            area_size: 0x1000
        }
    );
}

#[test]
fn vp_context_problems() {
    let two = || {
        vec![
            snp(),
            h(
                T::IGVM_VHT_SUPPORTED_PLATFORM,
                sp(2, IgvmPlatformType::NATIVE),
            ),
        ]
    };
    let mut hs = two();
    hs.push(hd(T::IGVM_VHT_VP_CONTEXT, |ds| vp_context(0, 3, ds, 0)));
    assert_eq!(
        err(&raw_file(&hs, &[0; 4096])),
        E::VpContextMask {
            at: at(2, 72),
            mask: 3
        }
    );
    let mut hs = two();
    hs.push(hd(T::IGVM_VHT_VP_CONTEXT, |ds| vp_context(0x800, 1, ds, 0)));
    assert!(matches!(
        err(&raw_file(&hs, &[0; 4096])),
        E::Unaligned {
            field: "gpa",
            value: 0x800,
            ..
        }
    ));
    // A native context is 232 bytes; byte 300 of its page must be zero.
    let mut page = vec![0u8; 4096];
    page[300] = 1;
    let mut hs = two();
    hs.push(hd(T::IGVM_VHT_VP_CONTEXT, |ds| vp_context(0, 2, ds, 0)));
    assert_eq!(
        err(&raw_file(&hs, &page)),
        E::VpContextTrailingBytes {
            at: at(2, 72),
            used: 232
        }
    );
    let mut hs = two();
    hs.push(hd(T::IGVM_VHT_VP_CONTEXT, |ds| {
        vp_context(0x1000, 2, ds, 0)
    }));
    assert!(matches!(
        err(&raw_file(&hs, &[0; 4096])),
        E::InvalidField { value: 0x1000, .. }
    ));
}

#[test]
fn duplicates_and_regions() {
    let id = || {
        h(T::IGVM_VHT_SNP_ID_BLOCK, {
            let mut b = [0u8; size_of::<IGVM_VHS_SNP_ID_BLOCK>()];
            b[0] = SNP as u8;
            b
        })
    };
    assert_eq!(
        err(&raw_file(&[snp(), id(), id()], &[0; 8])),
        E::Duplicate {
            at: at(2, 752),
            what: "SNP_ID_BLOCK",
            mask: SNP
        }
    );
    let b = raw_file(
        &[
            vbs(),
            h(T::IGVM_VHT_RELOCATABLE_REGION, region(0x1000, 0, 0x1000)),
        ],
        &[0; 8],
    );
    assert!(matches!(
        err(&b),
        E::InvalidField {
            field: "relocation_region_size",
            value: 0,
            ..
        }
    ));
    let b = raw_file(
        &[
            vbs(),
            h(
                T::IGVM_VHT_RELOCATABLE_REGION,
                region(0x1000, 0x3000, 0x1000),
            ),
            h(
                T::IGVM_VHT_RELOCATABLE_REGION,
                region(0x3000, 0x1000, 0x1000),
            ),
        ],
        &[0; 8],
    );
    assert_eq!(
        err(&b),
        E::RegionsOverlap {
            at: at(2, 104),
            gpa: 0x3000,
            size: 0x1000
        }
    );
    // A region for VP 0 with no VP context.
    let b = raw_file(
        &[
            vbs(),
            h(
                T::IGVM_VHT_RELOCATABLE_REGION,
                region(0x1000, 0x1000, 0x1000),
            ),
        ],
        &[0; 8],
    );
    assert_eq!(
        err(&b),
        E::NoMatchingVpContext {
            at: at(1, 48),
            vp_index: 0,
            vtl: 0
        }
    );
}

#[test]
fn version_string_and_capacity() {
    let b = raw_file(&[snp(), h(T::IGVM_VHT_VERSION_STRING, *b"v1.2.3")], &[0; 8]);
    let f = IgvmFile::parse(&b).unwrap();
    assert!(
        f.headers()
            .any(|e| e.header == vmsa_core::igvm::Header::VersionString("v1.2.3"))
    );
    let b = raw_file(
        &[snp(), h(T::IGVM_VHT_VERSION_STRING, [0xffu8, 0xfe])],
        &[0; 8],
    );
    assert_eq!(err(&b), E::VersionStringNotUtf8 { at: at(1, 48) });
    let mut hs = vec![snp()];
    for i in 0..=vmsa_core::igvm::MAX_PARAMETER_AREAS as u32 {
        hs.push(h(
            T::IGVM_VHT_PARAMETER_AREA,
            IGVM_VHS_PARAMETER_AREA {
                number_of_bytes: 0x1000,
                parameter_area_index: i,
                file_offset: 0,
            },
        ));
    }
    let E::CapacityExceeded { at, what, capacity } = err(&raw_file(&hs, &[0; 8])) else {
        panic!("wrong error")
    };
    assert_eq!((at.index, what, capacity), (257, "parameter areas", 256));
}

#[test]
fn empty_data_section_is_read_igvm_refuses() {
    let b = raw_file(&[snp()], &[]);
    assert!(IgvmFile::parse(&b).is_ok());
    assert!(igvm::IgvmFile::new_from_binary(&b, None).is_err());
}

#[test]
fn every_truncation_and_bit_flip_of_a_valid_file_is_an_error_not_a_panic() {
    let good = valid();
    for len in 0..good.len().min(400) {
        let _ = IgvmFile::parse(&good[..len]);
    }
    for i in 0..112 {
        for bit in 0..8 {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            fix_checksum(&mut b);
            let _ = IgvmFile::parse(&b).map(|f| f.headers().count());
        }
    }
}

/// CoRIM headers: a signature needs a document before it for its mask, and each comes once per
/// mask (the IGVM specification's `IGVM_VHT_CORIM_*`; the igvm crate checks the same when it
/// builds a file, `MissingCorimDocument` and `MultipleCorim*`).
#[test]
fn corim_signature_without_document_and_duplicates() {
    let corim = |typ, off: u32| {
        hd(typ, move |ds| IGVM_VHS_CORIM_DATA {
            compatibility_mask: SNP,
            file_offset: ds + off,
            size_bytes: 8,
            reserved: 0,
        })
    };
    let data = [0xa1u8; 16];
    let b = raw_file(&[snp(), corim(T::IGVM_VHT_CORIM_SIGNATURE, 0)], &data);
    assert_eq!(
        err(&b),
        E::CorimSignatureWithoutDocument {
            at: at(1, 48),
            mask: SNP
        }
    );
    let b = raw_file(
        &[
            snp(),
            corim(T::IGVM_VHT_CORIM_DOCUMENT, 0),
            corim(T::IGVM_VHT_CORIM_DOCUMENT, 8),
        ],
        &data,
    );
    assert!(
        matches!(
            err(&b),
            E::Duplicate {
                what: "CORIM_DOCUMENT",
                mask: SNP,
                ..
            }
        ),
        "{:?}",
        err(&b)
    );
    // Document then signature: read, each with its own bytes.
    let mut data = [0u8; 16];
    data[8..].fill(0x5a);
    let b = raw_file(
        &[
            snp(),
            corim(T::IGVM_VHT_CORIM_DOCUMENT, 0),
            corim(T::IGVM_VHT_CORIM_SIGNATURE, 8),
        ],
        &data,
    );
    let f = IgvmFile::parse(&b).unwrap();
    let kinds: Vec<_> = f
        .headers()
        .filter_map(|e| match e.header {
            vmsa_core::igvm::Header::CorimDocument(c) => Some(("document", c.data[0])),
            vmsa_core::igvm::Header::CorimSignature(c) => Some(("signature", c.data[0])),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [("document", 0), ("signature", 0x5a)]);
}

/// Found by the `igvm_diff` fuzz target (`fuzz/seeds/igvm_diff/`): a relocatable region for
/// the native platform names VP 0 at VTL 2, and the native VP context is VTL 0's. Both readers
/// refuse it (the igvm crate: "no matching vp context for vp index and vtl"); this reader
/// once matched any non-VBS context whatever the VTL.
#[test]
fn region_naming_a_vtl_without_its_context_fuzz_regression() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/igvm_diff/region-vtl-without-its-context.igvm"
    ))
    .unwrap();
    assert_eq!(
        err(&b),
        E::NoMatchingVpContext {
            at: at(7, 0xc0),
            vp_index: 0,
            vtl: 2
        }
    );
    assert!(igvm::IgvmFile::new_from_binary(&b, None).is_err());
}
