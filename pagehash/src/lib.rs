//! SHA-384 of many 4 KiB pages at once, for the SNP launch digest's firmware pages.
//!
//! An SNP digest hashes every firmware page on its own (the `PAGE_INFO` contents field) and
//! only then chains the results in order, so the page hashes are independent equal-length
//! messages: the textbook case for *multi-buffer* hashing. SHA-512's rounds are a long chain of
//! dependent 64-bit operations, which a single-stream implementation (OpenSSL's assembly, the
//! `sha2` crate) runs one message at a time in scalar registers; here one AVX2 register holds the
//! same state word of four pages and every instruction advances four messages. That beats
//! OpenSSL's single-stream SHA-384 on one core (`benches/pages.rs`; the figures are in the notes).
//!
//! No library offers multi-buffer SHA-384 for Rust (Intel's isa-l_crypto `mb_sha512` is C and
//! assembly), so the 4-lane form is written here: about 150 lines of safe `core::arch`
//! intrinsics, a single `unsafe` call after the run-time AVX2 check, and the `sha2` crate as the
//! portable path and as the reference the tests compare against.

pub mod parallel;

pub use parallel::Parallel;

use sha2::{Digest, Sha384};

/// The page size: every message hashed here is exactly one page.
pub const PAGE: usize = 4096;

/// Which implementation [`sha384_pages`] uses on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Four pages per AVX2 register.
    Avx2x4,
    /// One page at a time with the `sha2` crate.
    Portable,
}

impl Backend {
    /// The implementation [`sha384_pages`] picks on this CPU.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Self::Avx2x4;
        }
        Self::Portable
    }
}

/// SHA-384 of each 4 KiB page of `pages`, in order, into `out`: page `i` is
/// `pages[4096 * i..4096 * (i + 1)]`. Hashes `min(pages.len() / 4096, out.len())` pages; a
/// partial page at the end of `pages` is not hashed (the digest code only passes whole pages).
pub fn sha384_pages(pages: &[u8], out: &mut [[u8; 48]]) {
    sha384_pages_on(Backend::detect(), pages, out);
}

/// [`sha384_pages`] with a chosen implementation (tests and benchmarks compare them); falls
/// back to [`Backend::Portable`] when this CPU cannot run `backend`.
pub fn sha384_pages_on(backend: Backend, pages: &[u8], out: &mut [[u8; 48]]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Avx2x4 && std::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: `x4::sha384_pages` only needs AVX2, which this CPU has (checked just above);
        // it reads and writes through safe slices only.
        unsafe {
            done = x4::sha384_pages(pages, out);
        }
    }
    let rest = pages.get(done * PAGE..).unwrap_or_default();
    for (page, o) in rest.chunks_exact(PAGE).zip(out.iter_mut().skip(done)) {
        *o = Sha384::digest(page).into();
    }
}

/// The length of an SNP `PAGE_INFO` (SEV-SNP Firmware ABI, 0x70 bytes): one step of a launch
/// digest chain is SHA-384 of one.
pub const PAGE_INFO: usize = 0x70;

/// SHA-384 of four `PAGE_INFO`s at once: one step of four independent launch-digest chains
/// (`vmsa solve` advances four configurations together). A 112-byte message is two blocks
/// (112 bytes, the 0x80 byte and zeros; then zeros and the 128-bit length).
pub fn sha384_page_infos(msgs: &[[u8; PAGE_INFO]; 4]) -> [[u8; 48]; 4] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: `x4::sha384_page_infos` only needs AVX2, which this CPU has (checked just
        // above); it reads and writes through safe references only.
        return unsafe { x4::sha384_page_infos(msgs) };
    }
    msgs.map(|m| Sha384::digest(m).into())
}

/// The SHA-384 initial hash value (FIPS 180-4, 5.3.4).
const H384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

/// The SHA-512 round constants (FIPS 180-4, 4.2.3: the first 64 bits of the fractional parts of
/// the cube roots of the first 80 primes; this table was printed from that definition).
const K512: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

#[cfg(target_arch = "x86_64")]
mod x4 {
    //! Four SHA-384 messages of one page each, lane `l` of every register belonging to page `l`.
    use super::{H384, K512, PAGE, PAGE_INFO};
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_andnot_si256, _mm256_extract_epi64,
        _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi64x, _mm256_setr_epi8,
        _mm256_shuffle_epi8, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_xor_si256,
    };

    /// Hashes the pages of `pages` four at a time into `out`; returns how many pages it hashed
    /// (a multiple of four: the caller hashes the last one to three pages on their own).
    #[target_feature(enable = "avx2")]
    pub(super) fn sha384_pages(pages: &[u8], out: &mut [[u8; 48]]) -> usize {
        let mut done = 0;
        for (quad, digests) in pages.chunks_exact(4 * PAGE).zip(out.chunks_exact_mut(4)) {
            let (p01, p23) = quad.split_at(2 * PAGE);
            let (p0, p1) = p01.split_at(PAGE);
            let (p2, p3) = p23.split_at(PAGE);
            let lanes = [p0, p1, p2, p3];
            let mut state = H384.map(|v| splat(v));
            let mut w = [splat(0); 16];
            for block in 0..PAGE / 128 {
                for (i, wi) in w.iter_mut().enumerate() {
                    let at = 128 * block + 8 * i;
                    let be = |p: &[u8]| {
                        let b = p.get(at..at + 8).and_then(|b| b.try_into().ok());
                        u64::from_be_bytes(b.unwrap_or_default()) as i64
                    };
                    *wi = _mm256_set_epi64x(be(lanes[3]), be(lanes[2]), be(lanes[1]), be(lanes[0]));
                }
                compress(&mut state, &mut w);
            }
            // The padding block of a 4096-byte message: the 0x80 byte, zeros, the 128-bit
            // length in bits (32768).
            w = [splat(0); 16];
            w[0] = splat(1 << 63);
            w[15] = splat((PAGE as u64) * 8);
            compress(&mut state, &mut w);
            digests.copy_from_slice(&self::digests(&state));
            done += 4;
        }
        done
    }

    /// Four 112-byte messages, lane `l` message `l`.
    #[target_feature(enable = "avx2")]
    pub(super) fn sha384_page_infos(msgs: &[[u8; PAGE_INFO]; 4]) -> [[u8; 48]; 4] {
        let word = |m: &[u8; PAGE_INFO], i: usize| {
            let b = m.get(8 * i..8 * i + 8).and_then(|b| b.try_into().ok());
            u64::from_be_bytes(b.unwrap_or_default()) as i64
        };
        let mut state = H384.map(|v| splat(v));
        let mut w = [splat(0); 16];
        for (i, wi) in w.iter_mut().enumerate().take(PAGE_INFO / 8) {
            *wi = _mm256_set_epi64x(
                word(&msgs[3], i),
                word(&msgs[2], i),
                word(&msgs[1], i),
                word(&msgs[0], i),
            );
        }
        // Byte 112 is the 0x80 that ends the message; the rest of the block is zero.
        w[PAGE_INFO / 8] = splat(1 << 63);
        compress(&mut state, &mut w);
        w = [splat(0); 16];
        w[15] = splat((PAGE_INFO as u64) * 8);
        compress(&mut state, &mut w);
        digests(&state)
    }

    /// The four SHA-384 digests in a state: lane `l` of the first six words, big-endian.
    #[target_feature(enable = "avx2")]
    fn digests(state: &[__m256i; 8]) -> [[u8; 48]; 4] {
        let mut out = [[0u8; 48]; 4];
        for (lane, digest) in out.iter_mut().enumerate() {
            for (word, bytes) in state.iter().zip(digest.chunks_exact_mut(8)) {
                let v = match lane {
                    0 => _mm256_extract_epi64::<0>(*word),
                    1 => _mm256_extract_epi64::<1>(*word),
                    2 => _mm256_extract_epi64::<2>(*word),
                    _ => _mm256_extract_epi64::<3>(*word),
                };
                bytes.copy_from_slice(&(v as u64).to_be_bytes());
            }
        }
        out
    }

    #[target_feature(enable = "avx2")]
    fn splat(v: u64) -> __m256i {
        _mm256_set1_epi64x(v as i64)
    }

    #[target_feature(enable = "avx2")]
    fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi64(a, b)
    }

    #[target_feature(enable = "avx2")]
    fn xor3(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }

    /// Rotate each 64-bit lane right by `R` (`L` = 64 - `R`).
    #[target_feature(enable = "avx2")]
    fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi64::<R>(x), _mm256_slli_epi64::<L>(x))
    }

    /// Rotate each 64-bit lane right by 8: one byte shuffle instead of two shifts and an or.
    #[target_feature(enable = "avx2")]
    fn rotr8(x: __m256i) -> __m256i {
        let m = _mm256_setr_epi8(
            1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 8, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10,
            11, 12, 13, 14, 15, 8,
        );
        _mm256_shuffle_epi8(x, m)
    }

    /// Σ0 (FIPS 180-4, 4.1.3).
    #[target_feature(enable = "avx2")]
    fn big_sigma0(a: __m256i) -> __m256i {
        xor3(rotr::<28, 36>(a), rotr::<34, 30>(a), rotr::<39, 25>(a))
    }

    /// Σ1.
    #[target_feature(enable = "avx2")]
    fn big_sigma1(e: __m256i) -> __m256i {
        xor3(rotr::<14, 50>(e), rotr::<18, 46>(e), rotr::<41, 23>(e))
    }

    /// Ch(e, f, g) = (e ∧ f) ⊕ (¬e ∧ g).
    #[target_feature(enable = "avx2")]
    fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g))
    }

    /// Maj(a, b, c) = ((a ⊕ b) ∧ (b ⊕ c)) ⊕ b.
    #[target_feature(enable = "avx2")]
    fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_and_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(b, c)),
            b,
        )
    }

    /// W[t] + K[t], computing W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16] into the ring
    /// of 16 for t ≥ 16.
    #[target_feature(enable = "avx2")]
    fn schedule(w: &mut [__m256i; 16], t: usize) -> __m256i {
        if t >= 16 {
            let w2 = w[(t - 2) & 15];
            let w15 = w[(t - 15) & 15];
            let s1 = xor3(
                rotr::<19, 45>(w2),
                rotr::<61, 3>(w2),
                _mm256_srli_epi64::<6>(w2),
            );
            let s0 = xor3(rotr::<1, 63>(w15), rotr8(w15), _mm256_srli_epi64::<7>(w15));
            w[t & 15] = add(add(s1, w[(t - 7) & 15]), add(s0, w[t & 15]));
        }
        add(w[t & 15], splat(K512[t]))
    }

    /// One 128-byte block of four messages; `w` holds the block's 16 words and is overwritten
    /// by the message schedule.
    #[target_feature(enable = "avx2")]
    fn compress(state: &mut [__m256i; 8], w: &mut [__m256i; 16]) {
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        for t in 0..80 {
            let kw = schedule(w, t);
            let t1 = add(add(h, big_sigma1(e)), add(ch(e, f, g), kw));
            let t2 = add(big_sigma0(a), maj(a, b, c));
            h = g;
            g = f;
            f = e;
            e = add(d, t1);
            d = c;
            c = b;
            b = a;
            a = add(t1, t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = add(*s, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_infos_equal_sha2_on_each() {
        let mut msgs = [[0u8; PAGE_INFO]; 4];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..64 {
            for m in msgs.iter_mut() {
                for b in m.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
            }
            let want: [[u8; 48]; 4] = msgs.map(|m| Sha384::digest(m).into());
            assert_eq!(sha384_page_infos(&msgs), want, "round {round}");
        }
    }

    fn reference(pages: &[u8]) -> Vec<[u8; 48]> {
        pages
            .chunks_exact(PAGE)
            .map(|p| Sha384::digest(p).into())
            .collect()
    }

    fn hashed(backend: Backend, pages: &[u8]) -> Vec<[u8; 48]> {
        let mut out = vec![[0u8; 48]; pages.len() / PAGE];
        sha384_pages_on(backend, pages, &mut out);
        out
    }

    /// SHA-384 of a zero page, a page of 0xff bytes and a page of `(131 i + 7) mod 256`, from
    /// `openssl dgst -sha384` (not from the `sha2` crate the other tests compare against).
    #[test]
    fn known_answers() {
        let hex = |d: &[u8; 48]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut pages = vec![0u8; PAGE];
        pages.extend(std::iter::repeat_n(0xff, PAGE));
        pages.extend((0..PAGE).map(|i| (i * 131 + 7) as u8));
        pages.extend_from_slice(&pages.clone()); // six pages: one group of four, then two alone
        let want = [
            "c0e59a3e3ffbd3b5c75428fb36432facabc745944296ff515f737c4fef4efc64586809f7a16f56354a1eaecf2aa8d774",
            "9761a6cc8f381514125bd5461b11a17a721703fb2179ddf15348b6276b47fe93bbca565060bdb425c99cae93fbd68d84",
            "24228bd828d56c5debffdaf38fb28891732d4ba4c8f0bf402dc98d6ba33354b0eff42c96732e6574d6becb57c75fc83d",
        ];
        for backend in [Backend::Avx2x4, Backend::Portable] {
            let got: Vec<String> = hashed(backend, &pages).iter().map(hex).collect();
            assert_eq!(got[..3], want, "{backend:?}");
            assert_eq!(got[3..], want, "{backend:?}");
        }
    }

    /// Without AVX2 the tests above compare `sha2` with `sha2`; say so, and fail under
    /// `VMSA_REQUIRE=avx2` (as `scripts/test.sh` sets), so CI cannot pass them vacuously.
    #[test]
    fn avx2_backend_is_the_one_tested() {
        let required = std::env::var("VMSA_REQUIRE").is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim() == "avx2" || d.trim() == "all")
        });
        if Backend::detect() != Backend::Avx2x4 {
            assert!(!required, "VMSA_REQUIRE names avx2, which this CPU lacks");
            eprintln!("SKIPPED: no AVX2 on this CPU: the Avx2x4 cases ran the portable code");
        }
    }

    #[test]
    fn every_backend_equals_sha2_for_every_page_count() {
        let data: Vec<u8> = (0..13 * PAGE as u32 + 100)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for n in 0..=13 {
            let pages = &data[..n * PAGE + 100.min(n)];
            for backend in [Backend::Avx2x4, Backend::Portable] {
                assert_eq!(
                    hashed(backend, pages),
                    reference(pages),
                    "{backend:?}, {n} pages"
                );
            }
        }
    }

    #[test]
    fn out_shorter_than_pages_hashes_only_out() {
        let data = vec![7u8; 6 * PAGE];
        let mut out = vec![[0u8; 48]; 5];
        sha384_pages(&data, &mut out);
        assert_eq!(out, reference(&data[..5 * PAGE]));
        let mut out = vec![[1u8; 48]; 8];
        sha384_pages(&data, &mut out);
        assert_eq!(out[..6], reference(&data)[..]);
        assert_eq!(out[6..], [[1u8; 48]; 2]);
    }
}
