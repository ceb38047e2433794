//! What every fuzz target does with a parsed input: compute a launch of it through the core's
//! one entry point, and walk everything that comes back. No input may panic.
//!
//! The configuration is chosen from a byte of the input (`pick`), so that the fuzzer explores
//! modes, VMMs and profiles while one run stays cheap (every run of a few configurations).

use vmsa_core::launch::{Firmware, IgvmProfile, Launch, LaunchConfig};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};

/// The launches of `fw` for the configuration `pick` selects, all of their outputs walked.
pub fn launch_everything(fw: &Firmware<'_>, pick: u8) {
    let vcpus = u32::from(pick % 4) + 1;
    let vmm = VmmType::ALL[usize::from(pick >> 2) % VmmType::ALL.len()];
    let features = if pick & 0x40 != 0 { 0x21 } else { 0x1 };
    let (modes, profiles): (&[SevMode], &[IgvmProfile]) = match fw {
        Firmware::Ovmf(_) => (&SevMode::ALL, &[IgvmProfile::Spec]),
        // SNP only.
        Firmware::Svsm { .. } => (&[SevMode::Snp], &[IgvmProfile::Spec]),
        Firmware::Krun(_) => (&SevMode::ALL, &[IgvmProfile::Spec]),
        // The platform decides the mode.
        Firmware::Igvm { .. } => (&[SevMode::Snp], &IgvmProfile::ALL),
    };
    for &mode in modes {
        for &profile in profiles {
            let mut cfg = LaunchConfig::new(mode, vcpus, CpuSignature(0x800f12), vmm);
            if mode == SevMode::Snp {
                cfg.guest_features = vmsa_core::flags::SevFeatures::from_bits_retain(features);
            }
            cfg.igvm.profile = profile;
            let Ok(launch) = Launch::new(fw, &cfg) else {
                continue;
            };
            for v in launch.vmsas().flatten() {
                let f = launch.fidelity(&v);
                let _ = (f.is_exact(), f.findings().count(), f.refusals().len());
            }
            let _ = launch.check_strict();
            // Digests walk every page (a fuzzed 1 GiB section is 262144 PAGE_INFO hashes):
            // only for launches of at most 1 MiB, so that one run stays cheap; the walk of
            // the updates below covers the larger ones.
            let bytes: u64 = launch
                .measured_updates()
                .map(|u| u.len)
                .fold(0, u64::saturating_add);
            if bytes > 1 << 20 {
                let _ = launch.updates().map(|u| u.count());
                continue;
            }
            let _ = launch.digest(&Sha2Pages, NoObserver);
            if let Ok(updates) = launch.updates() {
                // The launch's own digest only where it can differ from the measured one.
                if launch.file_digest_difference().is_some() {
                    let _ = launch.launch_digest(&Sha2Pages, NoObserver);
                } else {
                    let _ = updates.count();
                }
            }
            if matches!(fw, Firmware::Ovmf(_)) && mode == SevMode::Snp {
                let _ = launch.digest_from_seed([7; 48], NoObserver);
            }
            let _ = launch.id_block_ld();
        }
    }
    // An OVMF image is also an SVSM and its own OVMF: the SVSM launch of both profiles, with a
    // variable store the pick chooses (0 and unaligned sizes among them, refused).
    if let Firmware::Ovmf(image) = fw {
        let svsm = Firmware::Svsm {
            ovmf: *image,
            svsm: *image,
            vars_size: u64::from(pick) * 0x1000 + u64::from(pick & 1),
        };
        for profile in vmsa_core::launch::SvsmProfile::ALL {
            let mut cfg =
                LaunchConfig::new(SevMode::Snp, vcpus, CpuSignature(0x800f12), VmmType::Qemu);
            cfg.svsm = profile;
            let Ok(launch) = Launch::new(&svsm, &cfg) else {
                continue;
            };
            for v in launch.vmsas().flatten() {
                let _ = launch.fidelity(&v).is_exact();
            }
            let bytes: u64 = launch
                .measured_updates()
                .map(|u| u.len)
                .fold(0, u64::saturating_add);
            if bytes <= 1 << 20 {
                let _ = launch.digest(&Sha2Pages, NoObserver);
            }
            let _ = launch.digest_from_seed([7; 48], NoObserver);
        }
    }
}

/// `data` with the IGVM fixed header's total size and CRC-32 made right, so that random
/// mutations of the headers reach the reader past its checksum check; `None` when `data` is
/// too short to have them.
pub fn with_fixed_checksum(data: &[u8]) -> Option<Vec<u8>> {
    use vmsa_core::igvm::fixed::checksum;
    let mut b = data.to_vec();
    let word = |b: &[u8], at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let fixed_size = if word(&b, 4)? == 2 { 32 } else { 24 };
    let len = u32::try_from(b.len()).ok()?;
    b.get_mut(16..20)?.copy_from_slice(&len.to_le_bytes());
    let (off, size) = (word(&b, 8)? as usize, word(&b, 12)? as usize);
    let crc = checksum(b.get(..fixed_size)?, b.get(off..off.checked_add(size)?)?);
    b.get_mut(20..24)?.copy_from_slice(&crc.to_le_bytes());
    Some(b)
}
