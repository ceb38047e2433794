//! Page hashing on several cores (feature `std`): the contents hashes of NORMAL pages are
//! independent, only the `PAGE_INFO` chain is sequential. [`sha384_pages_ordered`] hashes blocks
//! of pages on worker threads and hands them, in order, to the calling thread, which chains them
//! with [`SnpDigest::update_with_contents`](super::SnpDigest::update_with_contents) while the
//! workers hash the blocks after them.

use super::snp::{PAGE_SIZE, sha384};
use std::sync::mpsc;
use std::vec::Vec;

/// Pages per unit of work (256 KiB): small enough that the chain starts early and the last
/// worker does not finish long after the others, large enough that handing a block over (one
/// channel message) costs nothing next to hashing it.
const BLOCK_PAGES: usize = 64;

/// The core's page hasher (`sha2`, one page at a time), in the form [`sha384_pages_with`] and
/// [`sha384_pages_ordered`] take.
pub fn sha384_each_page(pages: &[u8], out: &mut [[u8; 48]]) {
    for (o, p) in out.iter_mut().zip(pages.chunks_exact(PAGE_SIZE as usize)) {
        *o = sha384(p);
    }
}

/// SHA-384 of every 4 KiB page of `data` (a multiple of 4 KiB; a short tail is ignored), in
/// order, computed on up to `threads` threads.
pub fn sha384_pages(data: &[u8], threads: usize) -> Vec<[u8; 48]> {
    sha384_pages_with(data, threads, sha384_each_page)
}

/// [`sha384_pages`] with another page hasher: `hash(pages, out)` must store the plain SHA-384
/// of page `i` of `pages` in `out[i]` for every whole page (a hosted caller passes a faster one,
/// such as `vmsa-pagehash`'s four-pages-per-register AVX2 form).
pub fn sha384_pages_with<F>(data: &[u8], threads: usize, hash: F) -> Vec<[u8; 48]>
where
    F: Fn(&[u8], &mut [[u8; 48]]) + Sync,
{
    let mut all = Vec::with_capacity(data.len() / PAGE_SIZE as usize);
    sha384_pages_ordered(data, threads, hash, |block| all.extend_from_slice(block));
    all
}

/// Hashes the whole pages of `data` with `hash` (as in [`sha384_pages_with`]) on `threads`
/// worker threads, in blocks of 64 pages dealt round robin, and calls `each` on the calling
/// thread with every block's hashes in page order, as soon as that block is done: the caller's
/// sequential work (the `PAGE_INFO` chain) overlaps the hashing of later blocks. With one
/// thread, no thread is spawned.
pub fn sha384_pages_ordered<F, G>(data: &[u8], threads: usize, hash: F, mut each: G)
where
    F: Fn(&[u8], &mut [[u8; 48]]) + Sync,
    G: FnMut(&[[u8; 48]]),
{
    let page = PAGE_SIZE as usize;
    let pages = data.len() / page;
    let data = data.get(..pages * page).unwrap_or_default();
    let mut out = std::vec![[0u8; 48]; pages];
    let blocks = data
        .chunks(BLOCK_PAGES * page)
        .zip(out.chunks_mut(BLOCK_PAGES));
    let threads = threads.clamp(1, pages.div_ceil(BLOCK_PAGES).max(1));
    if threads == 1 {
        for (ins, outs) in blocks {
            hash(ins, outs);
            each(outs);
        }
        return;
    }
    let hash = &hash;
    let mut work: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, block) in blocks.enumerate() {
        if let Some(w) = work.get_mut(i % threads) {
            w.push(block);
        }
    }
    std::thread::scope(|s| {
        let done: Vec<mpsc::Receiver<&mut [[u8; 48]]>> = work
            .into_iter()
            .map(|mine| {
                let (tx, rx) = mpsc::channel();
                s.spawn(move || {
                    for (ins, outs) in mine {
                        hash(ins, outs);
                        if tx.send(outs).is_err() {
                            break;
                        }
                    }
                });
                rx
            })
            .collect();
        // Block i was dealt to worker i % threads, which does its blocks in order. A worker
        // that panicked closes its channel: stop here, and the scope re-raises its panic.
        for i in 0..pages.div_ceil(BLOCK_PAGES) {
            match done.get(i % threads).map(mpsc::Receiver::recv) {
                Some(Ok(outs)) => each(outs),
                _ => break,
            }
        }
    });
}
