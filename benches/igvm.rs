//! Parse a 64 MiB IGVM file and extract its VP contexts: `vmsa_core::igvm` against `igvm` 0.5
//! `IgvmFile::new_from_binary`, on the same bytes.
//!
//! The file is written by the `igvm` crate: an SNP platform, 16 380 distinct 4 KiB pages of
//! page data and four SNP VP contexts (64 MiB of file data in all). The core path borrows the
//! input and allocates nothing (it builds for `x86_64-unknown-none` without `alloc`).
//!
//! Run: `cargo bench --bench igvm`.

use criterion::{Criterion, criterion_group, criterion_main};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision, IsolationType};
use igvm_defs::{
    IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use std::hint::black_box;
use vmsa_core::igvm::{IgvmFile as Ours, PlatformChoice, VpContextData};
use zerocopy::FromZeros;

const PAGES: u64 = 16_380;
const VCPUS: u16 = 4;

fn big_file() -> Vec<u8> {
    let platform = IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: 1,
        highest_vtl: 0,
        platform_type: IgvmPlatformType::SEV_SNP,
        platform_version: 1,
        shared_gpa_boundary: 0,
    });
    let mut directives = Vec::new();
    for i in 0..PAGES {
        let mut data = vec![0u8; 4096];
        data[..8].copy_from_slice(&i.to_le_bytes());
        data[4088..].copy_from_slice(&(!i).to_le_bytes());
        directives.push(IgvmDirectiveHeader::PageData {
            gpa: 0x10_0000 + i * 4096,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data,
        });
    }
    for vp in 0..VCPUS {
        let mut vmsa = SevVmsa::new_box_zeroed().expect("alloc");
        vmsa.rip = 0xfff0 + u64::from(vp);
        directives.push(IgvmDirectiveHeader::SnpVpContext {
            gpa: 0xffff_ffff_f000,
            compatibility_mask: 1,
            vp_index: vp,
            vmsa,
        });
    }
    let file = IgvmFile::new(IgvmRevision::V1, vec![platform], vec![], directives).expect("valid");
    let mut out = Vec::new();
    file.serialize(&mut out).expect("serializes");
    out
}

/// vmsa-core: parse (all checks) and return the sum of the VMSA RIPs, touching every VMSA.
fn ours(bytes: &[u8]) -> u64 {
    let f = Ours::parse(bytes).expect("parses");
    let p = f.select(PlatformChoice::Strongest).expect("snp");
    f.vp_contexts(p.compatibility_mask)
        .map(|(_, vp)| match vp.data {
            VpContextData::Vmsa(page) => {
                u64::from_le_bytes(page[0x178..0x180].try_into().unwrap_or_default())
            }
            _ => 0,
        })
        .sum()
}

/// igvm 0.5: the same.
fn theirs(bytes: &[u8]) -> u64 {
    let f = IgvmFile::new_from_binary(bytes, Some(IsolationType::Snp)).expect("parses");
    f.directives()
        .iter()
        .map(|d| match d {
            IgvmDirectiveHeader::SnpVpContext { vmsa, .. } => vmsa.rip,
            _ => 0,
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let bytes = big_file();
    assert!(bytes.len() > 64 << 20, "file is {} bytes", bytes.len());
    let expected: u64 = (0..u64::from(VCPUS)).map(|v| 0xfff0 + v).sum();
    assert_eq!(ours(&bytes), expected);
    assert_eq!(theirs(&bytes), expected);
    let mut g = c.benchmark_group("igvm_64MiB_parse_and_vp_contexts");
    g.sample_size(10);
    g.bench_function("vmsa-core", |b| b.iter(|| ours(black_box(&bytes))));
    g.bench_function("igvm-0.5", |b| b.iter(|| theirs(black_box(&bytes))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
