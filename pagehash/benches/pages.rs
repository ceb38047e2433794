//! Page-hashing throughput on one core: the 4-lane AVX2 SHA-384 against the `sha2` crate, over
//! 1024 pages that stay in L2/L3 (4 MiB) and 16384 pages from memory (64 MiB). The comparison
//! with OpenSSL (`openssl speed -evp sha384`) is whole-process: scripts/bench-measure.sh.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vmsa_pagehash::{Backend, PAGE, sha384_pages_on};

fn bench(c: &mut Criterion) {
    for pages in [1024, 16384] {
        let data: Vec<u8> = (0..(pages * PAGE) as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        let mut out = vec![[0u8; 48]; pages];
        let mut g = c.benchmark_group(format!("sha384_{}MiB", (pages * PAGE) >> 20));
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.sample_size(10);
        for backend in [Backend::Avx2x4, Backend::Portable] {
            g.bench_function(format!("{backend:?}"), |b| {
                b.iter(|| sha384_pages_on(backend, black_box(&data), &mut out))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
