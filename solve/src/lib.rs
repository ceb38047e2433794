//! `vmsa solve`'s engine: which launch configurations give a measurement. The CLI (`vmsa
//! solve`, `vmsa verify`'s neighbourhood search) and the Python package call it.
//!
//! Fast by structure, not by brute force: an SNP launch of OVMF measures every VMSA last, so
//! the firmware pages are hashed once per image ([`launch::firmware_digest`]), the digest of
//! everything before the VMSAs once per VMM profile, kernel-hashes choice and KVM init
//! ([`Launch::digest_before_vmsas`]); each configuration's distinct VMSA pages are hashed once
//! ([`Launch::shared_vmsa_from`]), and four configurations' `PAGE_INFO` chains advance together,
//! four hashes per AVX2 step ([`vmsa_pagehash::sha384_page_infos`]); every vCPU count of the
//! range is a point on one walk. Configurations are shared among the cores.

use vmsa_core::hash_table::SevHashes;
use vmsa_core::host::ApFpu;
use vmsa_core::kvm::VmInit;
use vmsa_core::launch::{self, Firmware, IgvmOptions, IgvmProfile, Launch, LaunchConfig};
use vmsa_core::measure::sha384;
use vmsa_core::page::{PageInfo, PageType, VMSA_GPA};
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use zerocopy::IntoBytes;

/// Where a configuration's firmware comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An OVMF image, by index.
    Ovmf(usize),
    /// An IGVM file, by index, read with this profile.
    Igvm(usize, IgvmOptions),
}

/// One configuration that matched.
#[derive(Debug, Clone)]
pub struct Match {
    /// The firmware.
    pub source: Source,
    /// vCPUs.
    pub vcpus: u32,
    /// The vCPU signature.
    pub signature: CpuSignature,
    /// Who programs the vCPUs.
    pub vmm: VmmType,
    /// Guest features.
    pub features: u64,
    /// With the kernel hashes.
    pub kernel: bool,
    /// The KVM init.
    pub init: VmInit,
    /// What QEMU left in the APs' FPU control words (QEMU ≥ 10.1: 0; the qemu VMM type only).
    pub ap_fpu: ApFpu,
}

/// The axes of the search, resolved.
pub struct Space {
    /// The measurement.
    pub target: [u8; 48],
    /// vCPU counts, sorted.
    pub counts: Vec<u32>,
    /// vCPU signatures and their names.
    pub sigs: Vec<(CpuSignature, String)>,
    /// VMM profiles.
    pub vmms: Vec<VmmType>,
    /// Guest features.
    pub features: Vec<u64>,
    /// KVM inits.
    pub inits: Vec<VmInit>,
    /// The APs' FPU control words QEMU releases leave ([`vmsa_core::host::qemu`]): tried for
    /// the qemu VMM type; the others are [`ApFpu::Reset`].
    pub ap_fpus: Vec<ApFpu>,
    /// The kernel hashes, tried with and without (OVMF).
    pub kernel: Option<SevHashes>,
    /// Threads.
    pub threads: usize,
}

/// What one part of the search found, searched and refused.
#[derive(Default)]
pub struct Tally {
    /// The matches.
    pub found: Vec<Match>,
    /// Configurations searched.
    pub searched: u64,
    /// Configurations QEMU/KVM would refuse.
    pub refused: u64,
}

impl Tally {
    /// Adds another part's.
    pub fn add(&mut self, other: Tally) {
        self.found.extend(other.found);
        self.searched += other.searched;
        self.refused += other.refused;
    }
}

/// Runs `job(i)` for every `i < n` on `threads` threads, and adds up what they found.
fn parallel(n: usize, threads: usize, job: &(dyn Fn(usize, &mut Tally) + Sync)) -> Tally {
    let next_item = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut t = Tally::default();
                    loop {
                        let i = next_item.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        job(i, &mut t);
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = Tally::default();
    for p in parts {
        all.add(p);
    }
    all
}

/// An OVMF image: per VMM profile, kernel-hashes choice and KVM init, the digest before the
/// VMSAs once (a 1-vCPU launch's walk); then every (features, signature) walks its VMSAs once,
/// every vCPU count a point on that walk.
pub fn search_ovmf(space: &Space, index: usize, fw: &Firmware<'_>) -> Result<Tally, String> {
    let kernels: Vec<Option<SevHashes>> = match space.kernel {
        Some(h) => vec![None, Some(h)],
        None => vec![None],
    };
    let max = space.counts.last().copied().unwrap_or(1);
    let mut tally = Tally::default();
    // The firmware pages, hashed once for every base (the SNP launch measures them first).
    let Firmware::Ovmf(image) = fw else {
        return Err("not an OVMF image".into());
    };
    let (fw_seed, _) = launch::firmware_digest(
        image.bytes(),
        &vmsa_pagehash::Parallel::all_cores(),
        vmsa_core::measure::NoObserver,
    )
    .map_err(|e| e.to_string())?;
    let reset_only = [ApFpu::Reset];
    for &vmm in &space.vmms {
        let ap_fpus: &[ApFpu] = match vmm {
            VmmType::Qemu => &space.ap_fpus,
            _ => &reset_only,
        };
        for (kernel, &init, &ap_fpu) in kernels.iter().flat_map(|k| {
            space
                .inits
                .iter()
                .flat_map(move |i| ap_fpus.iter().map(move |a| (k, i, a)))
        }) {
            // QEMU's AP FPU words reach the VMSA only under INIT2.
            if ap_fpu == ApFpu::Zero && init == VmInit::Legacy {
                continue;
            }
            let config = |feat: u64, sig, vcpus| {
                let mut cfg = LaunchConfig::new(SevMode::Snp, vcpus, sig, vmm);
                cfg.guest_features = vmsa_core::flags::SevFeatures::from_bits_retain(feat);
                cfg.kernel = *kernel;
                cfg.kvm.init = init;
                cfg.ap_fpu = ap_fpu;
                cfg
            };
            let per_base = (space.features.len() * space.sigs.len() * space.counts.len()) as u64;
            let first = space
                .features
                .iter()
                .flat_map(|&f| space.sigs.iter().map(move |(s, _)| (f, *s)))
                .find_map(|(f, s)| Launch::new(fw, &config(f, s, 1)).ok());
            let Some(launch) = first else {
                tally.refused += per_base;
                continue;
            };
            let seed = launch
                .digest_before_vmsas(Some(fw_seed))
                .map_err(|e| e.to_string())?
                .ok_or(
                    "this launch measures VMSAs before other pages; the solver needs them last",
                )?;
            let work: Vec<(u64, CpuSignature)> = space
                .features
                .iter()
                .flat_map(|&f| space.sigs.iter().map(move |(s, _)| (f, *s)))
                .collect();
            // Four configurations per job: their chains advance together, four PAGE_INFO
            // hashes per SIMD step.
            let quads: Vec<&[(u64, CpuSignature)]> = work.chunks(4).collect();
            let found = parallel(quads.len(), space.threads, &|i, t| {
                let mut lanes = Vec::new();
                for &(feat, sig) in quads[i] {
                    match Launch::new(fw, &config(feat, sig, max)) {
                        Ok(launch) => lanes.push((feat, sig, launch)),
                        Err(_) => t.refused += space.counts.len() as u64,
                    }
                }
                let hit = |lane: usize, n| {
                    let (feat, sig, _) = &lanes[lane];
                    Match {
                        source: Source::Ovmf(index),
                        vcpus: n,
                        signature: *sig,
                        vmm,
                        features: *feat,
                        kernel: kernel.is_some(),
                        init,
                        ap_fpu,
                    }
                };
                let launches: Vec<&Launch<'_, '_>> = lanes.iter().map(|l| &l.2).collect();
                walk4(&launches, seed, space, t, &hit);
            });
            tally.add(found);
        }
    }
    // One vCPU has no AP: QEMU ≥ 10.1's launch is QEMU ≤ 10.0's, found once.
    tally
        .found
        .retain(|m| !(m.ap_fpu == ApFpu::Zero && m.vcpus == 1));
    Ok(tally)
}

/// Up to four configurations' VMSAs chained from `seed` together, four `PAGE_INFO` hashes per
/// step ([`vmsa_pagehash::sha384_page_infos`]); every count of the space a point on the walk.
/// Each distinct VMSA page is hashed once: the launch says from which vCPU on they repeat.
fn walk4(
    launches: &[&Launch<'_, '_>],
    seed: [u8; 48],
    space: &Space,
    t: &mut Tally,
    hit: &dyn Fn(usize, u32) -> Match,
) {
    // Each lane's VMSA contents hashes: one per vCPU up to the shared page, which stands for
    // the rest.
    let max = space.counts.last().copied().unwrap_or(0);
    let mut contents: Vec<Vec<[u8; 48]>> = Vec::new();
    let mut lanes_max = Vec::new();
    for l in launches {
        let distinct = l.shared_vmsa_from().map_or(max, |s| s + 1).min(max);
        let pages: Vec<[u8; 48]> = (0..distinct)
            .map_while(|cpu| l.vmsa(cpu).ok().map(|v| sha384(v.vmsa.as_bytes())))
            .collect();
        // A launch whose VMSAs stop early (none do once `Launch::new` accepted them) walks
        // only that far.
        lanes_max.push(if (pages.len() as u32) < distinct {
            pages.len() as u32
        } else {
            max
        });
        contents.push(pages);
    }
    let mut lds = [seed; 4];
    let mut infos = [[0u8; vmsa_pagehash::PAGE_INFO]; 4];
    let mut next = space.counts.iter().peekable();
    for cpu in 0..max {
        for (lane, info) in infos.iter_mut().enumerate().take(launches.len()) {
            let c = &contents[lane];
            let page = c.get(cpu as usize).or(c.last()).copied().unwrap_or([0; 48]);
            let pi = PageInfo {
                digest_cur: lds[lane],
                contents: page,
                length: 0x70,
                page_type: PageType::VMSA.0,
                imi_page: 0,
                vmpl_perms: [0; 4],
                gpa: VMSA_GPA,
            };
            info.copy_from_slice(pi.as_bytes());
        }
        lds = vmsa_pagehash::sha384_page_infos(&infos);
        let n = cpu + 1;
        if next.peek() == Some(&&n) {
            next.next();
            for (lane, ld) in lds.iter().enumerate().take(launches.len()) {
                if n > lanes_max[lane] {
                    continue;
                }
                t.searched += 1;
                if *ld == space.target {
                    t.found.push(hit(lane, n));
                }
            }
        }
    }
}

/// An IGVM file's SNP platform under every profile: spec and igvmmeasure (each with and without
/// --native-zero) measure the file's own VP contexts, one digest each; qemu (what a QEMU launch
/// measures) every vCPU count from the file's contexts up, and for the vCPUs without a context
/// every signature.
pub fn search_igvm(space: &Space, index: usize, bytes: &[u8]) -> Result<Tally, String> {
    let fw = Firmware::igvm_for_mode(bytes, SevMode::Snp).map_err(|e| e.to_string())?;
    let contexts = fw.igvm_vcpus().unwrap_or(1);
    let mut tally = Tally::default();
    let sig0 = space.sigs.first().map_or(CpuSignature(0), |s| s.0);
    for profile in [IgvmProfile::Spec, IgvmProfile::Igvmmeasure] {
        for native_zero in [false, true] {
            let igvm = IgvmOptions {
                native_zero,
                profile,
            };
            let mut cfg = LaunchConfig::new(SevMode::Snp, contexts, sig0, VmmType::Qemu);
            cfg.igvm = igvm;
            let Ok(l) = Launch::new(&fw, &cfg) else {
                tally.refused += 1;
                continue;
            };
            let (d, _) = l
                .digest(
                    &vmsa_pagehash::Parallel::all_cores(),
                    vmsa_core::measure::NoObserver,
                )
                .map_err(|e| e.to_string())?;
            tally.searched += 1;
            if d.bytes() == space.target {
                tally.found.push(Match {
                    source: Source::Igvm(index, igvm),
                    vcpus: contexts,
                    signature: sig0,
                    vmm: VmmType::Qemu,
                    features: l.config().guest_features.bits(),
                    kernel: false,
                    init: VmInit::Init2,
                    ap_fpu: ApFpu::Reset,
                });
            }
        }
    }
    // qemu: the pages (and any parameter that carries the vCPU count) depend on the count, so
    // each (count, signature) is one launch digest, on every core.
    let igvm = IgvmOptions {
        native_zero: false,
        profile: IgvmProfile::Qemu,
    };
    let work: Vec<(u32, CpuSignature)> = space
        .counts
        .iter()
        .filter(|&&n| n >= contexts)
        .flat_map(|&n| space.sigs.iter().map(move |(s, _)| (n, *s)))
        .collect();
    tally.refused +=
        space.counts.iter().filter(|&&n| n < contexts).count() as u64 * space.sigs.len() as u64;
    let found = parallel(work.len(), space.threads, &|i, t| {
        let (n, sig) = work[i];
        let mut cfg = LaunchConfig::new(SevMode::Snp, n, sig, VmmType::Qemu);
        cfg.igvm = igvm;
        let Ok(l) = Launch::new(&fw, &cfg) else {
            t.refused += 1;
            return;
        };
        let Ok((d, _)) = l.launch_digest(
            &vmsa_core::measure::Sha2Pages,
            vmsa_core::measure::NoObserver,
        ) else {
            t.refused += 1;
            return;
        };
        t.searched += 1;
        if d.bytes() == space.target {
            t.found.push(Match {
                source: Source::Igvm(index, igvm),
                vcpus: n,
                signature: sig,
                vmm: VmmType::Qemu,
                features: l.config().guest_features.bits(),
                kernel: false,
                init: VmInit::Init2,
                ap_fpu: ApFpu::Reset,
            });
        }
    });
    tally.add(found);
    Ok(tally)
}
