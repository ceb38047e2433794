//! `vmsa solve`: which launch produced this measurement? Given an SNP report (or just its
//! MEASUREMENT) and the firmware, searches vCPU counts, vCPU signatures, VMM profiles and
//! guest features, and prints every configuration whose digest equals it, each as the `vmsa
//! measure` command line that reproduces it.
//!
//! Fast by structure, not brute force: an SNP launch of OVMF measures every VMSA last, so the
//! digest of everything before them (the firmware pages and `ASEV` sections) is computed once
//! per image and VMM profile; each configuration then walks its VMSAs once, one `PAGE_INFO`
//! hash per vCPU, and every vCPU count of the range is a point on that one walk (the digest
//! after vCPU n is the measurement of an n-vCPU launch). A VMSA page's contents hash is
//! computed only when the page differs from the one before it (APs share theirs).
use super::CmdResult;
use super::args::{parse_int, parse_u32, parse_vmm};
use super::files::{FirmwareFile, limits};
use super::report::parse_product;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use vmsa_core::cpu::CPU_TYPES;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::kvm::VmInit;
use vmsa_core::launch::{self, Firmware, IgvmOptions, IgvmProfile, Launch, LaunchConfig};
use vmsa_core::measure::sha384;
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::page::{PageInfo, PageType, VMSA_GPA};
use vmsa_core::report::Product;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use zerocopy::IntoBytes;

/// Arguments of `vmsa solve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SNP attestation report whose MEASUREMENT to explain (raw, hex or base64).
    #[arg(
        long,
        required_unless_present = "measurement",
        conflicts_with = "measurement"
    )]
    pub report: Option<PathBuf>,
    /// The processor that signed a version 2 report.
    #[arg(long, value_parser = parse_product)]
    pub product: Option<Product>,
    /// The measurement itself (hex or base64, 48 bytes).
    #[arg(long)]
    pub measurement: Option<String>,
    /// OVMF images to try (one or more).
    #[arg(long, required_unless_present = "igvm", num_args = 1..)]
    pub ovmf: Vec<PathBuf>,
    /// IGVM files to try (one or more): their SNP platform, read by every IGVM profile (spec,
    /// igvmmeasure with and without --native-zero, qemu).
    #[arg(long, num_args = 1..)]
    pub igvm: Vec<PathBuf>,
    /// OVMF: the direct-boot kernel; every configuration is tried with its hashes and without.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// With --kernel: the initrd.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// With --kernel: the command line.
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
    /// KVM initializations to try: init2, legacy (SNP guests have only INIT2: legacy ones are
    /// counted as refused). Default init2.
    #[arg(long, value_name = "INIT", value_parser = parse_init, num_args = 1..)]
    pub kvm_init: Vec<VmInit>,
    /// vCPU counts: `N`, `A-B` or a comma list of those.
    #[arg(long, default_value = "1-512")]
    pub vcpus: String,
    /// vCPU types to try (default: every named CPU type, and the report's own CPUID).
    #[arg(long, value_name = "CPUTYPE", num_args = 1..)]
    pub vcpu_type: Vec<String>,
    /// vCPU signatures to try besides the types.
    #[arg(long, value_name = "VALUE", value_parser = parse_u32, num_args = 1..)]
    pub vcpu_sig: Vec<u32>,
    /// VMM profiles to try (default: QEMU, ec2, gce, kvm).
    #[arg(long, value_name = "VMMTYPE", value_parser = parse_vmm, num_args = 1..)]
    pub vmm_type: Vec<VmmType>,
    /// Guest features to try (default: 0x1 and 0x21, what QEMU without and with KVM's
    /// debug-swap gives).
    #[arg(long, value_name = "VALUE", value_parser = parse_int, num_args = 1..)]
    pub guest_features: Vec<u64>,
    /// Also every subset of this mask (with SNP_ACTIVE set).
    #[arg(long, value_name = "MASK", value_parser = parse_int)]
    pub features_mask: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_init(s: &str) -> Result<VmInit, String> {
    match s.to_ascii_lowercase().as_str() {
        "init2" => Ok(VmInit::Init2),
        "legacy" => Ok(VmInit::Legacy),
        _ => Err(format!("--kvm-init {s:?}: init2 or legacy")),
    }
}

/// `1-512`, `4`, `1,2,4-8`: the sorted distinct counts.
fn parse_counts(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (parse_u32(a)?, parse_u32(b)?),
            None => {
                let n = parse_u32(part)?;
                (n, n)
            }
        };
        if a == 0 || a > b || b > vmsa_core::launch::MAX_VCPUS {
            return Err(format!(
                "--vcpus {part:?}: counts from 1 to {}",
                vmsa_core::launch::MAX_VCPUS
            ));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn measurement_bytes(text: &str) -> Result<[u8; 48], String> {
    let b = super::args::hex_or_base64("--measurement", text, 48, false)
        .map_err(|e| format!("{e} (an SNP measurement has 48)"))?;
    <[u8; 48]>::try_from(b.as_slice()).map_err(|_| "--measurement: 48 bytes".to_string())
}

/// Where a configuration's firmware comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `--ovmf`, by index.
    Ovmf(usize),
    /// `--igvm`, by index, read with this profile.
    Igvm(usize, IgvmOptions),
}

/// One configuration that matched.
#[derive(Debug, Clone)]
struct Match {
    source: Source,
    vcpus: u32,
    signature: CpuSignature,
    vmm: VmmType,
    features: u64,
    kernel: bool,
    init: VmInit,
}

impl Match {
    fn command(&self, args: &Args) -> String {
        let mut c = format!("vmsa measure --mode snp --vcpus {}", self.vcpus);
        match self.source {
            Source::Ovmf(i) => {
                c += &format!(
                    " --vcpu-sig {:#x} --vmm-type {} --guest-features {:#x} --ovmf {}",
                    self.signature.0,
                    self.vmm.name(),
                    self.features,
                    args.ovmf[i].display()
                );
                if self.kernel {
                    if let Some(k) = &args.kernel {
                        c += &format!(" --kernel {}", k.display());
                    }
                    if let Some(i) = &args.initrd {
                        c += &format!(" --initrd {}", i.display());
                    }
                    if let Some(a) = &args.append {
                        c += &format!(" --append {}", shell_word(a));
                    }
                }
            }
            Source::Igvm(i, o) => {
                if o.profile == IgvmProfile::Qemu {
                    c += &format!(" --vcpu-sig {:#x}", self.signature.0);
                }
                c += &format!(
                    " --igvm {} --igvm-profile {}",
                    args.igvm[i].display(),
                    o.profile.name()
                );
                if o.native_zero {
                    c += " --native-zero";
                }
            }
        }
        c
    }

    fn json(&self, args: &Args) -> serde_json::Value {
        let (kind, path, profile) = match self.source {
            Source::Ovmf(i) => ("ovmf", &args.ovmf[i], None),
            Source::Igvm(i, o) => ("igvm", &args.igvm[i], Some(o)),
        };
        json!({
            kind: path.display().to_string(),
            "vcpus": self.vcpus,
            "vcpu_sig": format!("{:#x}", self.signature.0),
            "vmm_type": self.vmm.name(),
            "guest_features": format!("{:#x}", self.features),
            "kernel_hashes": self.kernel,
            "kvm_init": init_name(self.init),
            "igvm_profile": profile.map(|o| o.profile.name()),
            "native_zero": profile.map(|o| o.native_zero),
            "command": self.command(args),
        })
    }
}

fn init_name(init: VmInit) -> &'static str {
    match init {
        VmInit::Init2 => "init2",
        VmInit::Legacy => "legacy",
    }
}

/// A word the shell reads back as itself.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The axes of the search, resolved.
struct Space {
    target: [u8; 48],
    counts: Vec<u32>,
    sigs: Vec<(CpuSignature, String)>,
    vmms: Vec<VmmType>,
    features: Vec<u64>,
    inits: Vec<VmInit>,
    kernel: Option<SevHashes>,
    threads: usize,
}

/// What one part of the search found, searched and refused.
#[derive(Default)]
struct Tally {
    found: Vec<Match>,
    searched: u64,
    refused: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
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
fn search_ovmf(space: &Space, index: usize, fw: &Firmware<'_>) -> Result<Tally, String> {
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
    for &vmm in &space.vmms {
        for kernel in &kernels {
            for &init in &space.inits {
                let config = |feat: u64, sig, vcpus| {
                    let mut cfg = LaunchConfig::new(SevMode::Snp, vcpus, sig, vmm);
                    cfg.guest_features = vmsa_core::flags::SevFeatures::from_bits_retain(feat);
                    cfg.kernel = *kernel;
                    cfg.kvm.init = init;
                    cfg
                };
                let per_base =
                    (space.features.len() * space.sigs.len() * space.counts.len()) as u64;
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
                        }
                    };
                    let launches: Vec<&Launch<'_, '_>> = lanes.iter().map(|l| &l.2).collect();
                    walk4(&launches, seed, space, t, &hit);
                });
                tally.add(found);
            }
        }
    }
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
fn search_igvm(space: &Space, index: usize, bytes: &[u8]) -> Result<Tally, String> {
    let file = IgvmFile::parse(bytes).map_err(|e| e.to_string())?;
    let platform = file
        .select(PlatformChoice::Only(launch::mode_platform(SevMode::Snp)))
        .map_err(|e| e.to_string())?;
    let contexts = launch::igvm_vcpus(&file, &platform);
    let fw = Firmware::Igvm { file, platform };
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
            });
        }
    });
    tally.add(found);
    Ok(tally)
}

/// `vmsa solve`.
pub fn run(args: &Args) -> CmdResult {
    let (target, report_sig) = match (&args.report, &args.measurement) {
        (Some(p), _) => {
            let r = super::report::load(p, args.product)?;
            (r.raw.measurement, super::report::cpu_signature(&r))
        }
        (None, Some(m)) => (measurement_bytes(m)?, None),
        (None, None) => return Err("give --report or --measurement".into()),
    };
    let space = space(args, target, report_sig)?;
    let start = Instant::now();
    let tally = search(args, &space)?;
    report(args, &space, &tally, start.elapsed().as_secs_f64())
}

/// Every configuration of `space` over the files of `args`, the matches in the order of the
/// axes as given.
fn search(args: &Args, space: &Space) -> Result<Tally, String> {
    let mut tally = Tally::default();
    for (i, path) in args.ovmf.iter().enumerate() {
        let file = FirmwareFile::open(path, limits::FIRMWARE)?;
        let image =
            OvmfImage::parse(file.bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        let fw = Firmware::Ovmf(image);
        let t = search_ovmf(space, i, &fw).map_err(|e| format!("{}: {e}", path.display()))?;
        tally.add(t);
    }
    for (i, path) in args.igvm.iter().enumerate() {
        let bytes = super::files::read(path, limits::IGVM)?;
        let t = search_igvm(space, i, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        tally.add(t);
    }
    // The order of the axes as given, whatever thread found what.
    let rank = |m: &Match| {
        (
            match m.source {
                Source::Ovmf(i) => (0, i, 0),
                Source::Igvm(i, o) => (
                    1,
                    i,
                    IgvmProfile::ALL
                        .iter()
                        .position(|p| *p == o.profile)
                        .unwrap_or(0)
                        * 2
                        + usize::from(o.native_zero),
                ),
            },
            space.vmms.iter().position(|v| *v == m.vmm),
            m.kernel,
            space.inits.iter().position(|v| *v == m.init),
            space.features.iter().position(|f| *f == m.features),
            space.sigs.iter().position(|(s, _)| *s == m.signature),
            m.vcpus,
        )
    };
    tally.found.sort_by_key(rank);
    Ok(tally)
}

/// What differs between the launch `given` describes (`vmsa measure`'s arguments) and the
/// launches near it that give `target` (a report's measurement): vCPU counts up to twice the
/// given one (at least 8 more), every CPU type and the report's CPUID, every VMM profile,
/// guest features as given, 0x1 and 0x21, the kernel with and without, every IGVM profile. One
/// line per match ("6 vCPUs, not 4"), at most `limit`; none when nothing near matches.
pub fn near(
    given: &super::measure::Args,
    target: [u8; 48],
    report_sig: Option<CpuSignature>,
    limit: usize,
) -> Result<Vec<String>, String> {
    let n = given.vcpus.unwrap_or(1).clamp(1, launch::MAX_VCPUS);
    let top = (n * 2).max(n + 8).min(launch::MAX_VCPUS);
    let args = Args {
        report: None,
        product: None,
        measurement: None,
        ovmf: given.ovmf.iter().cloned().collect(),
        igvm: given.igvm.iter().cloned().collect(),
        kernel: given.kernel.clone(),
        initrd: given.initrd.clone(),
        append: given.append.clone(),
        kvm_init: Vec::new(),
        vcpus: format!("1-{top}"),
        vcpu_type: Vec::new(),
        vcpu_sig: Vec::new(),
        vmm_type: Vec::new(),
        guest_features: vec![given.guest_features, 0x1, 0x21],
        features_mask: None,
        json: false,
    };
    let space = space(&args, target, report_sig)?;
    let tally = search(&args, &space)?;
    let sig = given.cpu.signature().ok().flatten();
    let profile = given.igvm_profile;
    Ok(tally
        .found
        .iter()
        .take(limit)
        .map(|m| {
            let mut diffs = Vec::new();
            if m.vcpus != n {
                diffs.push(format!("{} vCPUs, not {n}", m.vcpus));
            }
            if matches!(m.source, Source::Ovmf(_)) {
                if Some(m.signature) != sig {
                    let was = sig.map_or("none".into(), |s| format!("{:#x}", s.0));
                    diffs.push(format!("vCPU signature {:#x}, not {was}", m.signature.0));
                }
                if m.vmm != given.vmm_type {
                    diffs.push(format!(
                        "VMM type {}, not {}",
                        m.vmm.name(),
                        given.vmm_type.name()
                    ));
                }
                if m.features != given.guest_features {
                    diffs.push(format!(
                        "guest features {:#x}, not {:#x}",
                        m.features, given.guest_features
                    ));
                }
                if m.kernel != given.kernel.is_some() {
                    diffs.push(match m.kernel {
                        true => "with the kernel hashes".into(),
                        false => "without the kernel (no kernel hashes)".into(),
                    });
                }
            }
            if let Source::Igvm(_, o) = m.source {
                if o.profile != profile || o.native_zero != given.native_zero {
                    diffs.push(format!(
                        "IGVM profile {}{}",
                        o.profile.name(),
                        if o.native_zero {
                            " with --native-zero"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if diffs.is_empty() {
                diffs.push("the launch as given".into());
            }
            format!(
                "the report matches {}: {}",
                diffs.join(", "),
                m.command(&args)
            )
        })
        .collect())
}

/// The axes the arguments describe.
fn space(args: &Args, target: [u8; 48], report_sig: Option<CpuSignature>) -> Result<Space, String> {
    let counts = parse_counts(&args.vcpus)?;
    // Signatures: the named types (distinct signatures, first name kept), given ones, the report's.
    let mut sigs: Vec<(CpuSignature, String)> = Vec::new();
    let mut add = |sig: CpuSignature, name: String| {
        if !sigs.iter().any(|(s, _)| *s == sig) {
            sigs.push((sig, name));
        }
    };
    if args.vcpu_type.is_empty() && args.vcpu_sig.is_empty() {
        for t in CPU_TYPES {
            if let Ok(s) = CpuSignature::named(t.name) {
                add(s, t.name.to_string());
            }
        }
    }
    for name in &args.vcpu_type {
        add(
            CpuSignature::named(name).map_err(|e| e.to_string())?,
            name.clone(),
        );
    }
    for &s in &args.vcpu_sig {
        add(CpuSignature(s), format!("{s:#x}"));
    }
    if let Some(s) = report_sig {
        add(s, format!("{:#x} (the report's CPUID)", s.0));
    }
    let vmms = if args.vmm_type.is_empty() {
        VmmType::ALL.to_vec()
    } else {
        args.vmm_type.clone()
    };
    let mut features: Vec<u64> = if args.guest_features.is_empty() {
        vec![0x1, 0x21]
    } else {
        args.guest_features.clone()
    };
    if let Some(mask) = args.features_mask {
        // Every subset of the mask's bits, SNP_ACTIVE always set.
        let bits: Vec<u64> = (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| mask & b != 0)
            .collect();
        if bits.len() > 20 {
            return Err(format!(
                "--features-mask {mask:#x}: {} bits, 2^{} subsets; at most 20 bits",
                bits.len(),
                bits.len()
            ));
        }
        for subset in 0u64..(1 << bits.len()) {
            let f = bits
                .iter()
                .enumerate()
                .filter(|(i, _)| subset >> i & 1 != 0)
                .fold(1u64, |acc, (_, b)| acc | b);
            features.push(f);
        }
    }
    features.sort_unstable();
    features.dedup();
    let mut inits = if args.kvm_init.is_empty() {
        vec![VmInit::Init2]
    } else {
        args.kvm_init.clone()
    };
    inits.dedup();
    let kernel = match &args.kernel {
        None => None,
        Some(k) => Some(SevHashes {
            kernel: super::files::sha256(k)?,
            initrd: match &args.initrd {
                Some(i) => super::files::sha256(i)?,
                None => SevHashes::sha256(b""),
            },
            cmdline: SevHashes::cmdline_hash(args.append.as_deref()),
        }),
    };
    if kernel.is_some() && args.ovmf.is_empty() {
        return Err("--kernel is for --ovmf images (an IGVM file carries its own)".into());
    }
    Ok(Space {
        target,
        counts,
        sigs,
        vmms,
        features,
        inits,
        kernel,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// Prints the matches, or the search space when there are none.
fn report(args: &Args, space: &Space, tally: &Tally, secs: f64) -> CmdResult {
    let hex: String = space.target.iter().map(|b| format!("{b:02x}")).collect();
    let ovmf_axes = [
        ("OVMF images", args.ovmf.len() as u64),
        ("VMM profiles", space.vmms.len() as u64),
        ("kernel hashes", if space.kernel.is_some() { 2 } else { 1 }),
        ("KVM inits", space.inits.len() as u64),
        ("guest features", space.features.len() as u64),
        ("vCPU signatures", space.sigs.len() as u64),
        ("vCPU counts", space.counts.len() as u64),
    ];
    let ovmf_total: u64 = if args.ovmf.is_empty() {
        0
    } else {
        ovmf_axes.iter().map(|a| a.1).product()
    };
    let igvm_total = args.igvm.len() as u64 * (4 + (space.sigs.len() * space.counts.len()) as u64);
    let (searched, refused) = (tally.searched, tally.refused);
    if args.json {
        let out = json!({
            "measurement": hex,
            "searched": searched,
            "refused": refused,
            "seconds": secs,
            "axes": ovmf_axes.iter().map(|(n, s)| json!({"axis": n, "size": s})).collect::<Vec<_>>(),
            "igvm_files": args.igvm.len(),
            "matches": tally.found.iter().map(|m| m.json(args)).collect::<Vec<_>>(),
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else if tally.found.is_empty() {
        crate::outln!("no launch in the search space gives {hex}");
        crate::outln!(
            "searched {searched} configurations in {secs:.2} s ({refused} refused as launches QEMU/KVM would not make):"
        );
        if !args.ovmf.is_empty() {
            for (name, size) in ovmf_axes {
                crate::outln!("  {name:<16} {size}");
            }
            crate::outln!("  total            {ovmf_total}");
        }
        if !args.igvm.is_empty() {
            crate::outln!(
                "  IGVM files       {} × (spec, igvmmeasure, each ± --native-zero: 4; qemu: {} signatures × {} counts) = {igvm_total}",
                args.igvm.len(),
                space.sigs.len(),
                space.counts.len()
            );
        }
        crate::outln!(
            "cheapest to widen: --vcpus (each count adds one hash per configuration), then --vcpu-sig/--vcpu-type, --guest-features or --features-mask, --vmm-type, --kernel"
        );
    } else {
        for m in &tally.found {
            crate::outln!("{}", m.command(args));
        }
        crate::outln!(
            "{} of {searched} configurations match ({secs:.2} s)",
            tally.found.len()
        );
    }
    Ok(if tally.found.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
