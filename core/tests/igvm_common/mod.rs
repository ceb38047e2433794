//! Shared by the IGVM integration tests: build files with the `igvm` crate, and map what
//! `vmsa_core::igvm` reads into the `igvm` crate's types so the two readers can be compared.
#![allow(dead_code)]

use igvm::registers::{AArch64Register, X86Register};
use igvm::snp_defs::SevVmsa;
use igvm::{
    Arch, IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader,
    IgvmRevision, IsolationType,
};
use igvm_defs::*;
use vmsa_core::igvm::{self as ours, Header, VpContextData};
use zerocopy::{FromBytes, FromZeros};

/// Serializes headers with the `igvm` crate (`IgvmFile::new` then `serialize`).
pub fn build(
    revision: IgvmRevision,
    platforms: Vec<IgvmPlatformHeader>,
    inits: Vec<IgvmInitializationHeader>,
    directives: Vec<IgvmDirectiveHeader>,
) -> Vec<u8> {
    let file =
        IgvmFile::new(revision, platforms, inits, directives).expect("igvm accepts the headers");
    let mut out = Vec::new();
    file.serialize(&mut out).expect("igvm serializes");
    out
}

/// The compatibility masks of [`snp_and_sev_es`].
pub const SNP: u32 = 0x1;
pub const SEV_ES: u32 = 0x2;

/// SUPPORTED_PLATFORM headers for SNP (mask [`SNP`]) and SEV-ES (mask [`SEV_ES`]).
pub fn snp_and_sev_es() -> Vec<IgvmPlatformHeader> {
    vec![
        platform(SNP, IgvmPlatformType::SEV_SNP, 0),
        platform(SEV_ES, IgvmPlatformType::SEV_ES, 0),
    ]
}

/// A PAGE_DATA directive.
pub fn page(
    gpa: u64,
    mask: u32,
    data: Vec<u8>,
    data_type: IgvmPageDataType,
    flags: IgvmPageDataFlags,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: mask,
        flags,
        data_type,
        data,
    }
}

/// Every measured directive kind but VP contexts, for [`snp_and_sev_es`]: a parameter area of
/// `area_bytes` with the VP count, inserted at 0x10_0000; normal and empty pages for both; for
/// SNP an unmeasured page with `unmeasured_len` bytes, SECRETS, CPUID_DATA (then CPUID_XF if
/// `cpuid_xf`) and a shared page; a page for SEV-ES only.
pub fn every_kind_pages(
    area_bytes: u64,
    unmeasured_len: usize,
    cpuid_xf: bool,
) -> Vec<IgvmDirectiveHeader> {
    use IgvmDirectiveHeader as D;
    use IgvmPageDataType as T;
    let normal = IgvmPageDataFlags::new();
    let mut d = vec![
        D::ParameterArea {
            number_of_bytes: area_bytes,
            parameter_area_index: 0,
            initial_data: vec![],
        },
        D::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 0,
        }),
        D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x10_0000,
            compatibility_mask: SNP | SEV_ES,
            parameter_area_index: 0,
        }),
        page(
            0x20_0000,
            SNP | SEV_ES,
            (0..4096).map(|i| (i * 7) as u8).collect(),
            T::NORMAL,
            normal,
        ),
        page(0x20_1000, SNP | SEV_ES, vec![], T::NORMAL, normal),
        page(
            0x20_2000,
            SNP,
            vec![1; unmeasured_len],
            T::NORMAL,
            normal.with_unmeasured(true),
        ),
        page(0x20_3000, SNP, vec![], T::SECRETS, normal),
        page(0x20_4000, SNP, vec![], T::CPUID_DATA, normal),
    ];
    if cpuid_xf {
        d.push(page(0x20_5000, SNP, vec![], T::CPUID_XF, normal));
    }
    d.push(page(
        0x20_6000,
        SNP,
        vec![9; 4096],
        T::NORMAL,
        normal.with_shared(true),
    ));
    d.push(page(0x30_0000, SEV_ES, vec![5; 4096], T::NORMAL, normal));
    d
}

/// A SUPPORTED_PLATFORM header.
pub fn platform(mask: u32, t: IgvmPlatformType, highest_vtl: u8) -> IgvmPlatformHeader {
    IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: mask,
        highest_vtl,
        platform_type: t,
        platform_version: 1,
        shared_gpa_boundary: 0,
    })
}

/// A VMSA whose bytes are `f(offset)` over the 1648-byte save area (rest zero).
pub fn vmsa_with(f: impl Fn(usize) -> u8) -> Box<SevVmsa> {
    let mut page = [0u8; 4096];
    for (i, b) in page.iter_mut().enumerate().take(0x670) {
        *b = f(i);
    }
    Box::new(SevVmsa::read_from_bytes(&page).expect("4096 bytes"))
}

/// The isolation type `igvm` filters by, for a platform type.
pub fn isolation(t: IgvmPlatformType) -> IsolationType {
    match t {
        IgvmPlatformType::NATIVE => IsolationType::NotIsolated,
        IgvmPlatformType::VSM_ISOLATION => IsolationType::Vbs,
        IgvmPlatformType::SEV_SNP => IsolationType::Snp,
        IgvmPlatformType::TDX => IsolationType::Tdx,
        IgvmPlatformType::SEV => IsolationType::Sev,
        IgvmPlatformType::SEV_ES => IsolationType::SevEs,
        IgvmPlatformType::CCA => IsolationType::Cca,
        other => panic!("no isolation type for {other:?}"),
    }
}

/// Our platform header as the `igvm` crate represents it.
pub fn to_platform(h: &Header<'_>) -> Option<IgvmPlatformHeader> {
    match h {
        Header::SupportedPlatform(p) => Some(IgvmPlatformHeader::SupportedPlatform(*p)),
        _ => None,
    }
}

/// Our initialization header as the `igvm` crate represents it.
pub fn to_init(h: &Header<'_>) -> Option<IgvmInitializationHeader> {
    Some(match h {
        Header::GuestPolicy(p) => IgvmInitializationHeader::GuestPolicy {
            policy: p.policy,
            compatibility_mask: p.compatibility_mask,
        },
        Header::CcaPolicy(p) => IgvmInitializationHeader::CcaPolicy {
            compatibility_mask: p.compatibility_mask,
            attributes_required_zeroes: p.attributes_required_zeroes,
            attributes_required_ones: p.attributes_required_ones,
            hash_algorithm: p.hash_algorithm,
            lfa_policy: p.lfa_policy,
        },
        Header::RelocatableRegion(r) => IgvmInitializationHeader::RelocatableRegion {
            compatibility_mask: r.compatibility_mask,
            relocation_alignment: r.relocation_alignment,
            relocation_region_gpa: r.relocation_region_gpa,
            relocation_region_size: r.relocation_region_size,
            minimum_relocation_gpa: r.minimum_relocation_gpa,
            maximum_relocation_gpa: r.maximum_relocation_gpa,
            is_vtl2: r.flags & IGVM_VHF_RELOCATABLE_REGION_IS_VTL2 != 0,
            apply_rip_offset: r.flags & IGVM_VHF_RELOCATABLE_REGION_APPLY_RIP != 0,
            apply_gdtr_offset: r.flags & IGVM_VHF_RELOCATABLE_REGION_APPLY_GDTR != 0,
            vp_index: r.vp_index,
            vtl: r.vtl.try_into().expect("checked vtl"),
        },
        Header::PageTableRelocation(r) => IgvmInitializationHeader::PageTableRelocationRegion {
            compatibility_mask: r.compatibility_mask,
            gpa: r.gpa,
            size: r.size,
            used_size: r.used_size,
            vp_index: r.vp_index,
            vtl: r.vtl.try_into().expect("checked vtl"),
        },
        Header::CorimDocument(c) => IgvmInitializationHeader::CorimDocument {
            compatibility_mask: c.compatibility_mask,
            document: c.data.to_vec(),
        },
        Header::CorimSignature(c) => IgvmInitializationHeader::CorimSignature {
            compatibility_mask: c.compatibility_mask,
            signature: c.data.to_vec(),
        },
        _ => return None,
    })
}

fn param(p: &ours::Parameter) -> IgvmDirectiveHeader {
    let v = p.parameter;
    match p.kind {
        IgvmVariableHeaderType::IGVM_VHT_VP_COUNT_PARAMETER => IgvmDirectiveHeader::VpCount(v),
        IgvmVariableHeaderType::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER => {
            IgvmDirectiveHeader::EnvironmentInfo(v)
        }
        IgvmVariableHeaderType::IGVM_VHT_SRAT => IgvmDirectiveHeader::Srat(v),
        IgvmVariableHeaderType::IGVM_VHT_MADT => IgvmDirectiveHeader::Madt(v),
        IgvmVariableHeaderType::IGVM_VHT_SLIT => IgvmDirectiveHeader::Slit(v),
        IgvmVariableHeaderType::IGVM_VHT_PPTT => IgvmDirectiveHeader::Pptt(v),
        IgvmVariableHeaderType::IGVM_VHT_MMIO_RANGES => IgvmDirectiveHeader::MmioRanges(v),
        IgvmVariableHeaderType::IGVM_VHT_MEMORY_MAP => IgvmDirectiveHeader::MemoryMap(v),
        IgvmVariableHeaderType::IGVM_VHT_COMMAND_LINE => IgvmDirectiveHeader::CommandLine(v),
        IgvmVariableHeaderType::IGVM_VHT_DEVICE_TREE => IgvmDirectiveHeader::DeviceTree(v),
        other => panic!("not a parameter: {other:?}"),
    }
}

/// Our directive as the `igvm` crate represents it.
pub fn to_directive(h: &Header<'_>, arch: ours::Architecture) -> Option<IgvmDirectiveHeader> {
    Some(match h {
        Header::PageData(p) => IgvmDirectiveHeader::PageData {
            gpa: p.gpa,
            compatibility_mask: p.compatibility_mask,
            flags: p.flags,
            data_type: p.data_type,
            data: p.data.map(|d| d.to_vec()).unwrap_or_default(),
        },
        Header::ParameterArea(a) => IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: a.number_of_bytes,
            parameter_area_index: a.parameter_area_index,
            initial_data: a.initial_data.map(|d| d.to_vec()).unwrap_or_default(),
        },
        Header::Parameter(p) => param(p),
        Header::ParameterInsert(p) => IgvmDirectiveHeader::ParameterInsert(*p),
        Header::RequiredMemory(r) => IgvmDirectiveHeader::RequiredMemory {
            gpa: r.gpa,
            compatibility_mask: r.compatibility_mask,
            number_of_bytes: r.number_of_bytes,
            vtl2_protectable: r.flags.vtl2_protectable(),
        },
        Header::ErrorRange(e) => IgvmDirectiveHeader::ErrorRange {
            gpa: e.gpa,
            compatibility_mask: e.compatibility_mask,
            size_bytes: e.size_bytes,
        },
        Header::SnpIdBlock(b) => {
            let b = b.get();
            IgvmDirectiveHeader::SnpIdBlock {
                compatibility_mask: b.compatibility_mask,
                author_key_enabled: b.author_key_enabled,
                reserved: b.reserved,
                ld: b.ld,
                family_id: b.family_id,
                image_id: b.image_id,
                version: b.version,
                guest_svn: b.guest_svn,
                id_key_algorithm: b.id_key_algorithm,
                author_key_algorithm: b.author_key_algorithm,
                id_key_signature: Box::new(b.id_key_signature),
                id_public_key: Box::new(b.id_public_key),
                author_key_signature: Box::new(b.author_key_signature),
                author_public_key: Box::new(b.author_public_key),
            }
        }
        Header::VbsMeasurement(m) => {
            let m = m.get();
            IgvmDirectiveHeader::VbsMeasurement {
                compatibility_mask: m.compatibility_mask,
                version: m.version,
                product_id: m.product_id,
                module_id: m.module_id,
                security_version: m.security_version,
                policy_flags: m.policy_flags,
                boot_digest_algo: m.boot_digest_algo,
                signing_algo: m.signing_algo,
                boot_measurement_digest: Box::new(m.boot_measurement_digest),
                signature: Box::new(m.signature),
                public_key: Box::new(m.public_key),
            }
        }
        Header::VpContext(vp) => match vp.data {
            VpContextData::Vmsa(page) => IgvmDirectiveHeader::SnpVpContext {
                gpa: vp.gpa,
                compatibility_mask: vp.compatibility_mask,
                vp_index: vp.vp_index,
                vmsa: Box::new(SevVmsa::read_from_bytes(page).expect("4 KiB")),
            },
            VpContextData::NativeX64(c) => IgvmDirectiveHeader::X64NativeVpContext {
                compatibility_mask: vp.compatibility_mask,
                vp_index: vp.vp_index,
                context: Box::new(c.get()),
            },
            VpContextData::Cca(c) => IgvmDirectiveHeader::AArch64CcaVpContext {
                compatibility_mask: vp.compatibility_mask,
                vp_index: vp.vp_index,
                context: Box::new(c.get()),
            },
            VpContextData::Vbs(v) => match arch {
                ours::Architecture::X64 => IgvmDirectiveHeader::X64VbsVpContext {
                    vtl: v.vtl.try_into().expect("checked vtl"),
                    registers: v
                        .registers()
                        .map(|r| X86Register::try_from(r).expect("known register"))
                        .collect(),
                    compatibility_mask: vp.compatibility_mask,
                },
                ours::Architecture::AArch64 => IgvmDirectiveHeader::AArch64VbsVpContext {
                    vtl: v.vtl.try_into().expect("checked vtl"),
                    registers: v
                        .registers()
                        .map(|r| AArch64Register::try_from(r).expect("known register"))
                        .collect(),
                    compatibility_mask: vp.compatibility_mask,
                },
            },
        },
        _ => return None,
    })
}

/// Everything a reader sees: platforms, initializations and directives, as `igvm` types.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub platforms: Vec<IgvmPlatformHeader>,
    pub inits: Vec<IgvmInitializationHeader>,
    pub directives: Vec<IgvmDirectiveHeader>,
}

/// What `igvm` 0.5 sees, optionally filtered to one isolation type.
pub fn seen_by_igvm(bytes: &[u8], filter: Option<IgvmPlatformType>) -> Seen {
    let f = IgvmFile::new_from_binary(bytes, filter.map(isolation))
        .expect("igvm parses its own output");
    Seen {
        platforms: f.platforms().to_vec(),
        inits: f.initializations().to_vec(),
        directives: f.directives().to_vec(),
    }
}

/// What `vmsa_core::igvm` sees, optionally filtered to one platform's mask.
pub fn seen_by_us(bytes: &[u8], filter: Option<IgvmPlatformType>) -> Seen {
    let f = ours::IgvmFile::parse(bytes).expect("vmsa-core parses igvm's output");
    let arch = f.fixed_header().architecture;
    let mask = match filter {
        Some(t) => f.platform(t).expect("platform declared").compatibility_mask,
        None => u32::MAX,
    };
    Seen {
        platforms: f.headers().filter_map(|e| to_platform(&e.header)).collect(),
        inits: f
            .initializations(mask)
            .map(|e| to_init(&e.header).expect("an init header"))
            .collect(),
        directives: f
            .directives(mask)
            .map(|e| to_directive(&e.header, arch).expect("a directive"))
            .collect(),
    }
}

/// Re-serializes what we read with the `igvm` crate.
pub fn rebuild(bytes: &[u8]) -> Vec<u8> {
    let f = ours::IgvmFile::parse(bytes).expect("parses");
    let h = f.fixed_header();
    let revision = match h.format_version {
        1 => IgvmRevision::V1,
        _ => IgvmRevision::V2 {
            arch: match h.architecture {
                ours::Architecture::X64 => Arch::X64,
                ours::Architecture::AArch64 => Arch::AArch64,
            },
            page_size: h.page_size,
        },
    };
    let seen = seen_by_us(bytes, None);
    build(revision, seen.platforms, seen.inits, seen.directives)
}

/// Asserts both readers see the same file, unfiltered and filtered by each platform, and
/// that rebuilding from our view gives the same bytes.
pub fn assert_same(bytes: &[u8]) {
    assert_eq!(
        seen_by_us(bytes, None),
        seen_by_igvm(bytes, None),
        "unfiltered"
    );
    let f = ours::IgvmFile::parse(bytes).expect("parses");
    for p in f.platforms() {
        let t = Some(p.platform_type);
        assert_eq!(
            seen_by_us(bytes, t),
            seen_by_igvm(bytes, t),
            "filtered by {:?}",
            p.platform_type
        );
    }
    assert_eq!(rebuild(bytes), bytes, "build(parse(b)) == b");
}

/// Rewrites the checksum of a file after the test changed its headers.
pub fn fix_checksum(bytes: &mut [u8]) {
    let fixed_size = if u32::from_le_bytes(bytes[4..8].try_into().unwrap()) == 1 {
        24
    } else {
        32
    };
    let off = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let size = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let Some(var) = off.checked_add(size).and_then(|end| bytes.get(off..end)) else {
        return;
    };
    let crc = ours::fixed::checksum(&bytes[..fixed_size], var);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A header whose body may depend on where the file data starts.
pub type RawHeader<'a> = Box<dyn Fn(u32) -> (u32, Vec<u8>) + 'a>;

/// A header with a fixed body.
pub fn h<T: zerocopy::IntoBytes + zerocopy::Immutable>(
    typ: IgvmVariableHeaderType,
    body: T,
) -> RawHeader<'static> {
    let bytes = body.as_bytes().to_vec();
    Box::new(move |_| (typ.0, bytes.clone()))
}

/// A header whose body is computed from the start of the file data.
pub fn hd<'a, T: zerocopy::IntoBytes + zerocopy::Immutable>(
    typ: IgvmVariableHeaderType,
    body: impl Fn(u32) -> T + 'a,
) -> RawHeader<'a> {
    Box::new(move |ds| (typ.0, body(ds).as_bytes().to_vec()))
}

/// Assembles a version 1 file by hand: fixed header, the headers (each padded to 8 with
/// zeros), then `data`; sizes and checksum filled in.
pub fn raw_file(headers: &[RawHeader<'_>], data: &[u8]) -> Vec<u8> {
    let var_len: usize = headers
        .iter()
        .map(|f| 8 + f(0).1.len().div_ceil(8) * 8)
        .sum();
    let data_start = (24 + var_len) as u32;
    let mut var = Vec::new();
    for f in headers {
        let (typ, body) = f(data_start);
        var.extend_from_slice(&typ.to_le_bytes());
        var.extend_from_slice(&(body.len() as u32).to_le_bytes());
        var.extend_from_slice(&body);
        var.resize(var.len().div_ceil(8) * 8, 0);
    }
    let total = 24 + var.len() + data.len();
    let mut out = Vec::with_capacity(total);
    for v in [IGVM_MAGIC_VALUE, 1, 24, var.len() as u32, total as u32, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&var);
    out.extend_from_slice(data);
    fix_checksum(&mut out);
    out
}

/// SUPPORTED_PLATFORM body.
pub fn sp(mask: u32, t: IgvmPlatformType) -> IGVM_VHS_SUPPORTED_PLATFORM {
    IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: mask,
        highest_vtl: 0,
        platform_type: t,
        platform_version: 1,
        shared_gpa_boundary: 0,
    }
}

/// Whether `igvm` 0.5 panics on `bytes` (a peer bug, recorded by the tests).
pub fn igvm_panics(bytes: &[u8]) -> bool {
    let bytes = bytes.to_vec();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(move || {
        let _ = IgvmFile::new_from_binary(&bytes, None);
    });
    std::panic::set_hook(hook);
    r.is_err()
}

/// An SNP_ID_BLOCK for mask [`SNP`] that expects the digest `ld` (dummy signature and key).
pub fn id_block(ld: [u8; 48]) -> IgvmDirectiveHeader {
    let mut sig = IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed();
    sig.r_comp[0] = 1;
    let mut key = IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed();
    key.curve = 2;
    IgvmDirectiveHeader::SnpIdBlock {
        compatibility_mask: SNP,
        author_key_enabled: 0,
        reserved: [0; 3],
        ld,
        family_id: [0; 16],
        image_id: [0; 16],
        version: 1,
        guest_svn: 0,
        id_key_algorithm: 1,
        author_key_algorithm: 0,
        id_key_signature: Box::new(sig),
        id_public_key: Box::new(key),
        author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed()),
        author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed()),
    }
}

/// A file for the SNP platform alone (mask [`SNP`]) with guest policy 0x30000 (the `igvm`
/// crate's measurement needs one) and `directives`.
pub fn snp_only(directives: Vec<IgvmDirectiveHeader>) -> Vec<u8> {
    build(
        IgvmRevision::V1,
        vec![platform(SNP, IgvmPlatformType::SEV_SNP, 0)],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: SNP,
        }],
        directives,
    )
}
