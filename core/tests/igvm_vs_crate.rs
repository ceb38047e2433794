//! `vmsa_core::igvm` reads exactly what `igvm` 0.5 `IgvmFile::new_from_binary` reads, on files
//! the `igvm` crate writes: every header type, every platform, filtered by each platform, and
//! random valid files (proptest). Rebuilding from our view gives the same bytes.

mod igvm_common;

use igvm::hv_defs::Vtl;
use igvm::registers::{AArch64Register, SegmentRegister, TableRegister, X86Register};
use igvm::{Arch, IgvmDirectiveHeader as D, IgvmInitializationHeader as I, IgvmRevision};
use igvm_common::*;
use igvm_defs::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use vmsa_core::igvm::{Header, IgvmFile, PlatformChoice, VpContextData};

const NATIVE: u32 = 0x1;
const VBS: u32 = 0x2;
const SNP: u32 = 0x4;
const TDX: u32 = 0x8;
const SEV: u32 = 0x10;
const SEV_ES: u32 = 0x20;

fn param(index: u32, byte_offset: u32) -> IGVM_VHS_PARAMETER {
    IGVM_VHS_PARAMETER {
        parameter_area_index: index,
        byte_offset,
    }
}

fn native_context(rip: u64) -> Box<IgvmNativeVpContextX64> {
    let mut c: IgvmNativeVpContextX64 = zerocopy::FromZeros::new_zeroed();
    c.rip = rip;
    c.cr0 = 0x11;
    c.code_selector = 0x8;
    c.code_attributes = 0xc09b;
    c.data_attributes = 0xc093;
    c.code_limit = 0xffff_ffff;
    c.gdtr_limit = 0x17;
    Box::new(c)
}

const CORIM_DOCUMENT: [u8; 8] = [0xa1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
const CORIM_SIGNATURE: [u8; 12] = [
    0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x44, 0x01, 0x02, 0x03, 0x04,
];

/// A version 1 x64 file with every platform QEMU or Hyper-V knows and every directive type.
fn every_header_x64() -> Vec<u8> {
    let platforms = vec![
        platform(NATIVE, IgvmPlatformType::NATIVE, 0),
        platform(VBS, IgvmPlatformType::VSM_ISOLATION, 2),
        platform(SNP, IgvmPlatformType::SEV_SNP, 0),
        platform(TDX, IgvmPlatformType::TDX, 0),
        platform(SEV, IgvmPlatformType::SEV, 0),
        platform(SEV_ES, IgvmPlatformType::SEV_ES, 0),
    ];
    let inits = vec![
        I::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: SNP,
        },
        I::RelocatableRegion {
            compatibility_mask: VBS,
            relocation_alignment: 0x20_0000,
            relocation_region_gpa: 0x20_0000,
            relocation_region_size: 0x10_0000,
            minimum_relocation_gpa: 0x20_0000,
            maximum_relocation_gpa: 0x4000_0000,
            is_vtl2: true,
            apply_rip_offset: true,
            apply_gdtr_offset: false,
            vp_index: 0,
            vtl: Vtl::Vtl2,
        },
        I::PageTableRelocationRegion {
            compatibility_mask: VBS,
            gpa: 0x100_0000,
            size: 0x1_0000,
            used_size: 0x3000,
            vp_index: 0,
            vtl: Vtl::Vtl2,
        },
        // A CoRIM document (CBOR) and its COSE_Sign1 signature, of different lengths so that
        // each header's bytes are its own (the bytes of the igvm crate's own tests).
        I::CorimDocument {
            compatibility_mask: SNP,
            document: CORIM_DOCUMENT.to_vec(),
        },
        I::CorimSignature {
            compatibility_mask: SNP,
            signature: CORIM_SIGNATURE.to_vec(),
        },
    ];
    let all = NATIVE | VBS | SNP | TDX | SEV | SEV_ES;
    let normal = IgvmPageDataFlags::new();
    let mut directives = vec![
        D::ParameterArea {
            number_of_bytes: 0x2000,
            parameter_area_index: 0,
            initial_data: vec![0xaa; 100],
        },
        D::ParameterArea {
            number_of_bytes: 0x1000,
            parameter_area_index: 7,
            initial_data: vec![],
        },
        D::VpCount(param(0, 0)),
        D::EnvironmentInfo(param(0, 4)),
        D::Srat(param(0, 0x100)),
        D::Madt(param(0, 0x200)),
        D::Slit(param(0, 0x300)),
        D::Pptt(param(0, 0x400)),
        D::MmioRanges(param(0, 0x500)),
        D::MemoryMap(param(0, 0x600)),
        D::CommandLine(param(0, 0x800)),
        D::DeviceTree(param(7, 0)),
        D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x1_0000,
            compatibility_mask: all,
            parameter_area_index: 0,
        }),
        D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x3_0000,
            compatibility_mask: SNP | SEV_ES,
            parameter_area_index: 7,
        }),
        page(
            0x8_0000,
            all,
            (0..4096).map(|i| i as u8).collect(),
            IgvmPageDataType::NORMAL,
            normal,
        ),
        page(
            0x8_1000,
            SNP | SEV_ES | SEV,
            vec![],
            IgvmPageDataType::NORMAL,
            normal,
        ),
        page(
            0x8_2000,
            SNP,
            vec![1, 2, 3],
            IgvmPageDataType::SECRETS,
            normal,
        ),
        page(
            0x8_3000,
            SNP,
            vec![4; 4096],
            IgvmPageDataType::CPUID_DATA,
            normal,
        ),
        page(
            0x8_4000,
            SNP,
            vec![5; 10],
            IgvmPageDataType::CPUID_XF,
            normal,
        ),
        page(
            0x8_5000,
            all,
            vec![6; 4096],
            IgvmPageDataType::NORMAL,
            normal.with_unmeasured(true),
        ),
        page(
            0x8_6000,
            VBS,
            vec![7; 4096],
            IgvmPageDataType::NORMAL,
            normal.with_shared(true),
        ),
        // Same bytes as the first page: the serializer shares the file data.
        page(
            0x8_7000,
            all,
            (0..4096).map(|i| i as u8).collect(),
            IgvmPageDataType::NORMAL,
            normal,
        ),
        D::RequiredMemory {
            gpa: 0x100_0000,
            compatibility_mask: all,
            number_of_bytes: 0x10_0000,
            vtl2_protectable: true,
        },
        D::RequiredMemory {
            gpa: 0x200_0000,
            compatibility_mask: SNP,
            number_of_bytes: 0x1000,
            vtl2_protectable: false,
        },
        D::ErrorRange {
            gpa: 0x9_0000,
            compatibility_mask: VBS | SNP,
            size_bytes: 0x1000,
        },
        D::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 0,
            context: native_context(0xfff0),
        },
        D::X64NativeVpContext {
            compatibility_mask: SEV,
            vp_index: 0,
            context: native_context(0x1000),
        },
        D::X64VbsVpContext {
            vtl: Vtl::Vtl2,
            registers: vec![
                X86Register::Rip(0x20_1000),
                X86Register::Cr0(0x8000_0011),
                X86Register::Cr3(0x100_0000),
                X86Register::Cr4(0x20),
                X86Register::Efer(0xd00),
                X86Register::Gdtr(TableRegister {
                    base: 0x1000,
                    limit: 0x17,
                }),
                X86Register::Cs(SegmentRegister {
                    base: 0,
                    limit: 0xffff_ffff,
                    selector: 8,
                    attributes: 0xa09b,
                }),
                X86Register::Ss(SegmentRegister {
                    base: 0,
                    limit: 0xffff_ffff,
                    selector: 0x10,
                    attributes: 0xc093,
                }),
                X86Register::Pat(0x0007_0406_0007_0406),
            ],
            compatibility_mask: VBS,
        },
    ];
    for (vp, gpa) in [
        (0u16, 0xffff_ffff_f000u64),
        (1, 0xffff_ffff_f000),
        (3, 0x7000_0000),
    ] {
        directives.push(D::SnpVpContext {
            gpa,
            compatibility_mask: SNP,
            vp_index: vp,
            vmsa: vmsa_with(|i| (i as u8).wrapping_mul(vp as u8 + 3)),
        });
    }
    directives.push(D::SnpVpContext {
        gpa: 0xffff_ffff_f000,
        compatibility_mask: SEV_ES,
        vp_index: 0,
        vmsa: vmsa_with(|i| (i % 7) as u8),
    });
    directives.push(D::SnpIdBlock {
        compatibility_mask: SNP,
        author_key_enabled: 1,
        reserved: [0; 3],
        ld: [0x11; 48],
        family_id: [0x22; 16],
        image_id: [0x33; 16],
        version: 1,
        guest_svn: 7,
        id_key_algorithm: 1,
        author_key_algorithm: 1,
        id_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: [1; 72],
            s_comp: [2; 72],
        }),
        id_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: 2,
            reserved: 0,
            qx: [3; 72],
            qy: [4; 72],
        }),
        author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: [5; 72],
            s_comp: [6; 72],
        }),
        author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: 2,
            reserved: 0,
            qx: [7; 72],
            qy: [8; 72],
        }),
    });
    directives.push(D::VbsMeasurement {
        compatibility_mask: VBS,
        version: 1,
        product_id: 2,
        module_id: 3,
        security_version: 4,
        policy_flags: 5,
        boot_digest_algo: 1,
        signing_algo: 1,
        boot_measurement_digest: Box::new([9; 64]),
        signature: Box::new([10; 256]),
        public_key: Box::new([11; 512]),
    });
    build(IgvmRevision::V1, platforms, inits, directives)
}

/// A version 2 AArch64 file: VBS and CCA platforms, CCA policy, both kinds of VP context.
fn every_header_aarch64() -> Vec<u8> {
    let platforms = vec![
        platform(1, IgvmPlatformType::VSM_ISOLATION, 0),
        platform(2, IgvmPlatformType::CCA, 0),
    ];
    let inits = vec![I::CcaPolicy {
        compatibility_mask: 2,
        attributes_required_zeroes: 0x1,
        attributes_required_ones: 0x2,
        hash_algorithm: CcaHashAlgorithm::SHA384,
        lfa_policy: CcaLfaPolicy::LFA_ALLOW,
    }];
    let mut cca: IgvmVpContextAArch64Cca = zerocopy::FromZeros::new_zeroed();
    cca.pc = 0x8000_0000;
    cca.x0 = 0x4000_0000;
    let directives = vec![
        page(
            0x8000_0000,
            3,
            vec![0xd5; 4096],
            IgvmPageDataType::NORMAL,
            IgvmPageDataFlags::new(),
        ),
        D::AArch64VbsVpContext {
            vtl: Vtl::Vtl0,
            registers: vec![
                AArch64Register::Pc(0x8000_0000),
                AArch64Register::X0(0x1234),
            ],
            compatibility_mask: 1,
        },
        D::AArch64CcaVpContext {
            compatibility_mask: 2,
            vp_index: 0,
            context: Box::new(cca),
        },
    ];
    build(
        IgvmRevision::V2 {
            arch: Arch::AArch64,
            page_size: 4096,
        },
        platforms,
        inits,
        directives,
    )
}

#[test]
fn every_header_type_and_platform_x64_v1() {
    let bytes = every_header_x64();
    assert_same(&bytes);
    let f = IgvmFile::parse(&bytes).unwrap();
    assert_eq!(f.platforms().len(), 6);
    assert_eq!(f.skipped_count(), 0);
    assert_eq!(
        f.select(PlatformChoice::Strongest)
            .unwrap()
            .compatibility_mask,
        SNP
    );
    let snp_vps: Vec<u16> = f.vp_contexts(SNP).map(|(_, v)| v.vp_index).collect();
    assert_eq!(snp_vps, [0, 1, 3]);
    // The SNP VMSA bytes are exactly what was serialized, zero-padded to 4 KiB.
    let (_, vp1) = f.vp_contexts(SNP).nth(1).unwrap();
    let VpContextData::Vmsa(page) = vp1.data else {
        panic!("SNP context is a VMSA")
    };
    assert_eq!(page[0x10], (0x10u8).wrapping_mul(4));
    assert!(page[0x670..].iter().all(|&b| b == 0));
    // The ID block's launch digest is exposed for issue 5.
    let ld = f.directives(SNP).find_map(|e| match e.header {
        Header::SnpIdBlock(b) => Some(b.ld()),
        _ => None,
    });
    assert_eq!(ld, Some([0x11; 48]));
    // The CoRIM headers, each with its own type and bytes.
    let corim: Vec<(&str, &[u8])> = f
        .initializations(SNP)
        .filter_map(|e| match e.header {
            Header::CorimDocument(c) => Some(("document", c.data)),
            Header::CorimSignature(c) => Some(("signature", c.data)),
            _ => None,
        })
        .collect();
    assert_eq!(
        corim,
        [
            ("document", &CORIM_DOCUMENT[..]),
            ("signature", &CORIM_SIGNATURE[..])
        ]
    );
}

#[test]
fn every_header_type_aarch64_v2() {
    let bytes = every_header_aarch64();
    assert_same(&bytes);
    let f = IgvmFile::parse(&bytes).unwrap();
    assert_eq!(f.fixed_header().format_version, 2);
    assert_eq!(
        f.select(PlatformChoice::Strongest),
        Err(vmsa_core::igvm::IgvmError::NoLaunchablePlatform)
    );
}

#[test]
fn x64_v2_file() {
    let bytes = build(
        IgvmRevision::V2 {
            arch: Arch::X64,
            page_size: 4096,
        },
        vec![
            platform(1, IgvmPlatformType::SEV_ES, 0),
            platform(2, IgvmPlatformType::SEV, 0),
        ],
        vec![],
        vec![
            page(
                0xffff_f000,
                3,
                vec![0x90; 4096],
                IgvmPageDataType::NORMAL,
                IgvmPageDataFlags::new(),
            ),
            D::SnpVpContext {
                gpa: 0xffff_ffff_f000,
                compatibility_mask: 1,
                vp_index: 0,
                vmsa: vmsa_with(|i| i as u8),
            },
        ],
    );
    assert_same(&bytes);
    let f = IgvmFile::parse(&bytes).unwrap();
    assert_eq!(
        f.select(PlatformChoice::Strongest).unwrap().platform_type,
        IgvmPlatformType::SEV_ES
    );
}

// ---- random valid files --------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Page {
        gpa_page: u32,
        mask: u32,
        len: u16,
        fill: u8,
        data_type: u8,
        flags: u8,
    },
    Required {
        gpa_page: u32,
        mask: u32,
        pages: u16,
        vtl2: bool,
    },
    Error {
        gpa_page: u32,
        mask: u32,
        pages: u8,
    },
    Vmsa {
        which: u8,
        vp: u16,
        gpa_page: u32,
        seed: u8,
    },
    Native {
        which: u8,
        vp: u16,
        rip: u64,
    },
    Params {
        pages: u8,
        fill: Option<u8>,
        kinds: Vec<u8>,
        insert_gpa_page: u32,
        mask: u32,
    },
    IdBlock {
        ld: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u32>(), 1u32..64, 0u16..=4096, any::<u8>(), 0u8..4, 0u8..3).prop_map(
            |(gpa_page, mask, len, fill, data_type, flags)| Op::Page { gpa_page, mask, len, fill, data_type, flags }
        ),
        1 => (any::<u32>(), 1u32..64, 1u16..64, any::<bool>())
            .prop_map(|(gpa_page, mask, pages, vtl2)| Op::Required { gpa_page, mask, pages, vtl2 }),
        1 => (any::<u32>(), 1u32..64, 1u8..4).prop_map(|(gpa_page, mask, pages)| Op::Error { gpa_page, mask, pages }),
        2 => (0u8..2, 0u16..8, any::<u32>(), any::<u8>())
            .prop_map(|(which, vp, gpa_page, seed)| Op::Vmsa { which, vp, gpa_page, seed }),
        1 => (0u8..2, 0u16..4, any::<u64>()).prop_map(|(which, vp, rip)| Op::Native { which, vp, rip }),
        1 => (1u8..4, proptest::option::of(any::<u8>()), proptest::collection::vec(0u8..10, 0..4), any::<u32>(), 1u32..64)
            .prop_map(|(pages, fill, kinds, insert_gpa_page, mask)| Op::Params { pages, fill, kinds, insert_gpa_page, mask }),
        1 => any::<u8>().prop_map(|ld| Op::IdBlock { ld }),
    ]
}

/// Platforms NATIVE 1, VBS 2, SNP 4, TDX 8, SEV 16, SEV-ES 32 (only those in `present`).
fn random_file(present: u32, policy: Option<u64>, ops: &[Op]) -> Vec<u8> {
    let kinds = [
        (NATIVE, IgvmPlatformType::NATIVE),
        (VBS, IgvmPlatformType::VSM_ISOLATION),
        (SNP, IgvmPlatformType::SEV_SNP),
        (TDX, IgvmPlatformType::TDX),
        (SEV, IgvmPlatformType::SEV),
        (SEV_ES, IgvmPlatformType::SEV_ES),
    ];
    let platforms: Vec<_> = kinds
        .iter()
        .filter(|(m, _)| present & m != 0)
        .map(|(m, t)| platform(*m, *t, 0))
        .collect();
    let mut inits = vec![];
    if let (Some(policy), true) = (policy, present & SNP != 0) {
        inits.push(I::GuestPolicy {
            policy,
            compatibility_mask: SNP,
        });
    }
    let mut directives = vec![];
    let mut next_area = 0u32;
    let mut id_block = false;
    for op in ops {
        match op.clone() {
            Op::Page {
                gpa_page,
                mask,
                len,
                fill,
                data_type,
                flags,
            } => {
                let mask = mask & present;
                if mask == 0 {
                    continue;
                }
                let flags = IgvmPageDataFlags::new()
                    .with_unmeasured(flags == 1)
                    .with_shared(flags == 2);
                directives.push(page(
                    u64::from(gpa_page) << 12,
                    mask,
                    vec![fill; len.into()],
                    IgvmPageDataType(data_type.into()),
                    flags,
                ));
            }
            Op::Required {
                gpa_page,
                mask,
                pages,
                vtl2,
            } if mask & present != 0 => directives.push(D::RequiredMemory {
                gpa: u64::from(gpa_page) << 12,
                compatibility_mask: mask & present,
                number_of_bytes: u32::from(pages) << 12,
                vtl2_protectable: vtl2,
            }),
            Op::Error {
                gpa_page,
                mask,
                pages,
            } if mask & present != 0 => directives.push(D::ErrorRange {
                gpa: u64::from(gpa_page) << 12,
                compatibility_mask: mask & present,
                size_bytes: u32::from(pages) << 12,
            }),
            Op::Vmsa {
                which,
                vp,
                gpa_page,
                seed,
            } => {
                let mask = if which == 0 { SNP } else { SEV_ES };
                if present & mask != 0 {
                    directives.push(D::SnpVpContext {
                        gpa: u64::from(gpa_page) << 12,
                        compatibility_mask: mask,
                        vp_index: vp,
                        vmsa: vmsa_with(|i| (i as u8).wrapping_add(seed)),
                    });
                }
            }
            Op::Native { which, vp, rip } => {
                let mask = if which == 0 { NATIVE } else { SEV };
                if present & mask != 0 {
                    directives.push(D::X64NativeVpContext {
                        compatibility_mask: mask,
                        vp_index: vp,
                        context: native_context(rip),
                    });
                }
            }
            Op::Params {
                pages,
                fill,
                kinds,
                insert_gpa_page,
                mask,
            } => {
                let index = next_area;
                next_area += 1;
                let size = u64::from(pages) << 12;
                directives.push(D::ParameterArea {
                    number_of_bytes: size,
                    parameter_area_index: index,
                    initial_data: fill.map(|f| vec![f; 64]).unwrap_or_default(),
                });
                for (i, k) in kinds.iter().enumerate() {
                    let p = param(index, i as u32 * 64);
                    directives.push(match k {
                        0 => D::VpCount(p),
                        1 => D::EnvironmentInfo(p),
                        2 => D::Srat(p),
                        3 => D::Madt(p),
                        4 => D::Slit(p),
                        5 => D::Pptt(p),
                        6 => D::MmioRanges(p),
                        7 => D::MemoryMap(p),
                        8 => D::CommandLine(p),
                        _ => D::DeviceTree(p),
                    });
                }
                if mask & present != 0 {
                    directives.push(D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                        gpa: u64::from(insert_gpa_page) << 12,
                        compatibility_mask: mask & present,
                        parameter_area_index: index,
                    }));
                }
            }
            Op::IdBlock { ld } if present & SNP != 0 && !id_block => {
                id_block = true;
                directives.push(D::SnpIdBlock {
                    compatibility_mask: SNP,
                    author_key_enabled: 0,
                    reserved: [0; 3],
                    ld: [ld; 48],
                    family_id: [1; 16],
                    image_id: [2; 16],
                    version: 1,
                    guest_svn: 0,
                    id_key_algorithm: 1,
                    author_key_algorithm: 0,
                    id_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
                        r_comp: [3; 72],
                        s_comp: [4; 72],
                    }),
                    id_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
                        curve: 2,
                        reserved: 0,
                        qx: [5; 72],
                        qy: [6; 72],
                    }),
                    author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
                        r_comp: [0; 72],
                        s_comp: [0; 72],
                    }),
                    author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
                        curve: 0,
                        reserved: 0,
                        qx: [0; 72],
                        qy: [0; 72],
                    }),
                });
            }
            _ => {}
        }
    }
    // igvm 0.5 cannot read back a file whose data section is empty; keep one data page.
    directives.push(page(
        0,
        present,
        vec![0xcc; 16],
        IgvmPageDataType::NORMAL,
        IgvmPageDataFlags::new(),
    ));
    build(IgvmRevision::V1, platforms, inits, directives)
}

proptest! {
    // Failures are kept in proptest-regressions/ (committed), as the project asks.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proptest-regressions/igvm_vs_crate.txt"
        )))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_valid_files_read_the_same(
        present in 1u32..64,
        policy in proptest::option::of(any::<u64>()),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        let bytes = random_file(present, policy, &ops);
        assert_same(&bytes);
    }
}

/// Not a test: writes the files above as fuzz seeds into `IGVM_SEED_DIR` (how `fuzz/seeds/igvm/`
/// was made; see TESTING.md):
/// `IGVM_SEED_DIR=fuzz/seeds/igvm cargo test -p vmsa-core --test igvm_vs_crate -- --ignored`.
#[test]
#[ignore = "a generator, not a test: writes fuzz seeds into IGVM_SEED_DIR"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("IGVM_SEED_DIR").expect("IGVM_SEED_DIR names the directory");
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("every-header-x64.igvm"), every_header_x64()).unwrap();
    std::fs::write(
        dir.join("every-header-aarch64.igvm"),
        every_header_aarch64(),
    )
    .unwrap();
    let ops = [
        Op::Vmsa {
            which: 0,
            vp: 1,
            gpa_page: 0xffff_f000,
            seed: 3,
        },
        Op::Params {
            pages: 1,
            fill: Some(1),
            kinds: vec![0, 7],
            insert_gpa_page: 9,
            mask: 4,
        },
        Op::IdBlock { ld: 9 },
    ];
    std::fs::write(
        dir.join("snp-small.igvm"),
        random_file(SNP | SEV_ES, Some(0x30000), &ops),
    )
    .unwrap();
}
