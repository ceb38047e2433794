//! Page hashing on several cores: the contents hashes of NORMAL pages are independent, only the
//! `PAGE_INFO` chain is sequential. [`sha384_pages_ordered`] hashes blocks of pages on worker
//! threads and hands them, in order, to the calling thread, which chains them (the launch digest
//! walk of `vmsa-core`) while the workers hash the blocks after them. [`Parallel`] is that, as the
//! core's [`PageHasher`].

use crate::{Backend, PAGE, sha384_pages_on};
use sha2::{Digest, Sha384};
use std::sync::mpsc;
use vmsa_core::measure::PageHasher;

const PAGE_SIZE: u64 = PAGE as u64;

fn sha384(data: &[u8]) -> [u8; 48] {
    Sha384::digest(data).into()
}

/// The core's [`PageHasher`] on `threads` cores, four pages per AVX2 register where the CPU has
/// AVX2 ([`Backend::detect`]).
#[derive(Debug, Clone, Copy)]
pub struct Parallel {
    /// Worker threads (1: the calling thread only).
    pub threads: usize,
    /// The per-thread implementation.
    pub backend: Backend,
}

impl Parallel {
    /// Every core this process may use, the fastest implementation the CPU runs.
    pub fn all_cores() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::detect(),
        }
    }
}

impl PageHasher for Parallel {
    fn sha384_pages(&self, pages: &[u8], each: &mut dyn FnMut(&[[u8; 48]])) {
        let backend = self.backend;
        sha384_pages_ordered(
            pages,
            self.threads,
            |p, out| sha384_pages_on(backend, p, out),
            each,
        );
    }
}

/// Pages per unit of work (256 KiB): small enough that the chain starts early and the last
/// worker does not finish long after the others, large enough that handing a block over (one
/// channel message) costs nothing next to hashing it.
const BLOCK_PAGES: usize = 64;

/// `sha2`, one page at a time, in the form [`sha384_pages_with`] and [`sha384_pages_ordered`]
/// take (the reference the tests compare against).
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
    let mut out = vec![[0u8; 48]; pages];
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
