//! Launch-digest benchmarks: the whole SNP digest of Debian's OVMF_CODE.fd with 4 vCPUs (in
//! process, through the core's one launch path with the `sha2` page hasher and with
//! `vmsa-pagehash` on 1 and 2 threads), and SHA-384 page hashing throughput with sha2 and with
//! the four-lane AVX2 hasher on 1 and 2 threads. Whole-process comparisons against
//! sev-snp-measure and `openssl speed`: scripts/bench-measure.sh.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
use vmsa_core::measure::{NoObserver, PageHasher, Sha2Pages};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use vmsa_pagehash::parallel::{sha384_pages, sha384_pages_with};
use vmsa_pagehash::{Backend, Parallel};

fn snp_digest(image: &[u8], hasher: &dyn PageHasher) -> Vec<u8> {
    let fw = Firmware::Ovmf(OvmfImage::parse(image).unwrap());
    let cfg = LaunchConfig::new(
        SevMode::Snp,
        4,
        CpuSignature::named("EPYC-v4").unwrap(),
        VmmType::Qemu,
    );
    let launch = Launch::new(&fw, &cfg).unwrap();
    let (d, NoObserver) = launch.digest(hasher, NoObserver).unwrap();
    d.bytes().to_vec()
}

fn bench(c: &mut Criterion) {
    if let Ok(image) = std::fs::read("/usr/share/OVMF/OVMF_CODE.fd") {
        let mut g = c.benchmark_group("snp_digest_ovmf_code_4vcpus");
        g.throughput(Throughput::Bytes(image.len() as u64));
        g.bench_function("sha2_1_thread", |b| {
            b.iter(|| snp_digest(black_box(&image), &Sha2Pages))
        });
        for threads in [1, 2] {
            let hasher = Parallel {
                threads,
                backend: Backend::detect(),
            };
            g.bench_function(format!("{threads}_threads"), |b| {
                b.iter(|| snp_digest(black_box(&image), &hasher))
            });
        }
        g.finish();
    } else {
        eprintln!("SKIPPED: /usr/share/OVMF/OVMF_CODE.fd not installed");
    }
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut g = c.benchmark_group("sha384_pages_64MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("sha2_1_thread", |b| {
        b.iter(|| sha384_pages(black_box(&data), 1))
    });
    g.bench_function("avx2x4_1_thread", |b| {
        b.iter(|| sha384_pages_with(black_box(&data), 1, vmsa_pagehash::sha384_pages))
    });
    g.bench_function("avx2x4_2_threads", |b| {
        b.iter(|| sha384_pages_with(black_box(&data), 2, vmsa_pagehash::sha384_pages))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
