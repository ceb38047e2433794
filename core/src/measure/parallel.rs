//! Page hashing on several cores (feature `std`): the contents hashes of NORMAL pages are
//! independent, only the `PAGE_INFO` chain is sequential, so a hosted caller hashes a chunk's
//! pages on every core and then chains them in order with
//! [`SnpDigest::update_with_contents`](super::SnpDigest::update_with_contents).

use super::snp::{PAGE_SIZE, sha384};
use std::vec::Vec;

/// SHA-384 of every 4 KiB page of `data` (a multiple of 4 KiB; a short tail is ignored), in
/// order, computed on up to `threads` threads.
pub fn sha384_pages(data: &[u8], threads: usize) -> Vec<[u8; 48]> {
    sha384_pages_with(data, threads, sha384)
}

/// [`sha384_pages`] with another SHA-384 implementation (a hosted caller may pass an
/// assembly-optimised one such as OpenSSL's; it must compute plain SHA-384).
pub fn sha384_pages_with<F>(data: &[u8], threads: usize, sha384: F) -> Vec<[u8; 48]>
where
    F: Fn(&[u8]) -> [u8; 48] + Sync,
{
    let sha384 = &sha384;
    let page = PAGE_SIZE as usize;
    let pages = data.len() / page;
    let mut out = std::vec![[0u8; 48]; pages];
    let threads = threads.clamp(1, pages.max(1));
    if threads == 1 {
        for (o, p) in out.iter_mut().zip(data.chunks_exact(page)) {
            *o = sha384(p);
        }
        return out;
    }
    let per = pages.div_ceil(threads);
    std::thread::scope(|s| {
        for (outs, ins) in out.chunks_mut(per).zip(data.chunks(per * page)) {
            s.spawn(move || {
                for (o, p) in outs.iter_mut().zip(ins.chunks_exact(page)) {
                    *o = sha384(p);
                }
            });
        }
    });
    out
}
