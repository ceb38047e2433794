//! The one walk from a launch's updates to its digest: SHA-384 `PAGE_INFO` chain for SNP,
//! SHA-256 over the encrypted bytes for SEV and SEV-ES, each step reported to an [`Observer`]
//! as `--explain` lists it.

use super::error::LaunchError;
use super::update::{LaunchUpdate, UpdateSource};
use crate::measure::{
    ItemKind, Observer, PageHasher, SevDigest, SnpDigest, sha384, sha384_zero_page,
};
use crate::page::{PAGE_SIZE, PageType};
use crate::vmsa::Vmsa;
use zerocopy::FromBytes;

/// The SNP launch digest of `updates`, from `seed` (48 zero bytes at `SNP_LAUNCH_START`):
/// NORMAL pages hashed (their bytes zero-padded, by `hasher` when they are whole pages), VMSA
/// pages hashed (`vmsa(cpu)` for a vCPU's, the bytes for a VP context measured in place), the
/// other types with zero contents.
pub(super) fn snp<'u, O: Observer>(
    updates: &mut dyn Iterator<Item = LaunchUpdate<'u>>,
    vmsa: &dyn Fn(u32) -> Result<Vmsa, LaunchError>,
    seed: [u8; 48],
    hasher: &dyn PageHasher,
    observer: O,
) -> Result<([u8; 48], O), LaunchError> {
    let mut d = SnpDigest::with_observer(seed, observer);
    let mut zero_page = None;
    for u in updates {
        let page_type = u.page_type.unwrap_or(PageType::NORMAL);
        match (page_type, u.source) {
            // Whole pages of bytes (the firmware image): on as many cores as the hasher likes.
            (PageType::NORMAL, UpdateSource::Bytes(b))
                if b.len() as u64 == u.len && u.len % PAGE_SIZE == 0 =>
            {
                let mut gpa = u.gpa;
                hasher.sha384_pages(b, &mut |hashes| {
                    for h in hashes {
                        d.update_with_contents(u.kind, PageType::NORMAL, gpa, *h);
                        gpa = gpa.wrapping_add(PAGE_SIZE);
                    }
                });
            }
            (PageType::VMSA, UpdateSource::Vmsa { cpu }) => {
                let contents = sha384(vmsa(cpu)?.as_page());
                d.update_with_contents(u.kind, page_type, u.gpa, contents);
            }
            (page_type, source) => {
                let mut off = 0u64;
                while off < u.len {
                    let contents = match (page_type, source) {
                        (PageType::NORMAL | PageType::VMSA, UpdateSource::Bytes(b)) => {
                            page_hash(b, off)
                        }
                        (PageType::NORMAL, _) => *zero_page.get_or_insert_with(sha384_zero_page),
                        _ => [0; 48],
                    };
                    d.update_with_contents(u.kind, page_type, u.gpa.wrapping_add(off), contents);
                    off += PAGE_SIZE;
                }
            }
        }
    }
    Ok((d.ld(), d.into_observer()))
}

/// SHA-384 of the page at `off` of `bytes`, zero-padded past their end.
fn page_hash(bytes: &[u8], off: u64) -> [u8; 48] {
    let start = usize::try_from(off).unwrap_or(usize::MAX);
    let rest = bytes.get(start..).unwrap_or(&[]);
    match rest.get(..PAGE_SIZE as usize) {
        Some(page) => sha384(page),
        None => {
            let mut page = [0u8; PAGE_SIZE as usize];
            if let Some(dst) = page.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            sha384(&page)
        }
    }
}

/// The SEV/SEV-ES launch digest of `updates` (SHA-256 over every update's bytes and every
/// VMSA page, in order), each item reported to `observer` as `vmsa measure` reports it: the
/// firmware image as one item, the kernel hash table, each VMSA, each other piece of data with
/// its GPA.
pub(super) fn sev<'u, O: Observer>(
    updates: &mut dyn Iterator<Item = LaunchUpdate<'u>>,
    vmsa: &dyn Fn(u32) -> Result<Vmsa, LaunchError>,
    observer: O,
) -> Result<([u8; 32], O), LaunchError> {
    let mut d = SevDigest::with_observer(observer);
    for u in updates {
        match (u.kind, u.source) {
            (ItemKind::Firmware, UpdateSource::Bytes(b)) => {
                d.update_firmware(b);
                d.end_firmware();
            }
            (ItemKind::KernelHashes, UpdateSource::Bytes(b)) => {
                if let Ok(t) = crate::hash_table::SevHashTable::read_from_bytes(b) {
                    d.update_hash_table(&t);
                }
            }
            (ItemKind::Vmsa { cpu }, UpdateSource::Vmsa { .. }) => d.update_vmsa(cpu, &vmsa(cpu)?),
            (kind, UpdateSource::Vmsa { cpu }) => d.update_data(kind, u.gpa, vmsa(cpu)?.as_page()),
            // The bytes in one piece, then zeros up to the length in 4 KiB pieces (an IGVM 2 MiB
            // page: 4 KiB of data; an IGVM page without data: all zeros, encrypted in place).
            (kind, UpdateSource::Bytes(_) | UpdateSource::Zero) => {
                let data = match u.source {
                    UpdateSource::Bytes(b) => b,
                    _ => &[],
                };
                if !data.is_empty() {
                    d.update_data(kind, u.gpa, data);
                }
                let zeros = [0u8; PAGE_SIZE as usize];
                let mut off = data.len() as u64;
                while off < u.len {
                    let n = (u.len - off).min(PAGE_SIZE);
                    let piece = zeros.get(..n as usize).unwrap_or(&zeros);
                    d.update_data(kind, u.gpa.wrapping_add(off), piece);
                    off += n;
                }
            }
            // SEV and SEV-ES launches hold no CPUID page and no loaded parameter area.
            _ => {}
        }
    }
    Ok(d.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_hash_pads_with_zeros() {
        assert_eq!(page_hash(&[], 0), sha384_zero_page());
        assert_eq!(page_hash(&[0; 10], 0), sha384_zero_page());
        assert_eq!(page_hash(&[0; 8192], 4096), sha384_zero_page());
        assert_ne!(page_hash(&[1; 8192], 4096), sha384_zero_page());
    }
}
