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
use super::args::{parse_int, parse_u32, parse_version, parse_vmm};
use super::files::{FirmwareFile, limits};
use super::report::parse_product;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use vmsa_core::CpuSignature;
use vmsa_core::cpu::CPU_TYPES;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::host::{ApFpu, Kernel, QEMUS, Qemu, Version};
use vmsa_core::kvm::VmInit;
use vmsa_core::launch::{self, Firmware, IgvmProfile};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::report::Product;
use vmsa_core::reset::VmmType;
use vmsa_solve::{Match, Source, Space, Tally, search_igvm, search_ovmf};

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
    /// VMM profiles to try (default: QEMU, ec2, gce, kvm, krun).
    #[arg(long, value_name = "VMMTYPE", value_parser = parse_vmm, num_args = 1..)]
    pub vmm_type: Vec<VmmType>,
    /// Guest features to try (default: 0x1 and 0x21, what QEMU without and with KVM's
    /// debug-swap gives).
    #[arg(long, value_name = "VALUE", value_parser = parse_int, num_args = 1..)]
    pub guest_features: Vec<u64>,
    /// Also every subset of this mask (with SNP_ACTIVE set).
    #[arg(long, value_name = "MASK", value_parser = parse_int)]
    pub features_mask: Option<u64>,
    /// QEMU releases to try (`vmsa profiles`; from 10.1 the APs' FCW and MXCSR are 0), which
    /// also limits the guest features to QEMU's 0x1. Default: every release with SEV-SNP.
    #[arg(long = "qemu", value_name = "VERSION", value_parser = parse_version, num_args = 1..)]
    pub qemu: Vec<Version>,
    /// Host kernels to try (`vmsa profiles`): guest features none of them can give are dropped.
    #[arg(long, value_name = "VERSION", value_parser = parse_version, num_args = 1..)]
    pub host_kernel: Vec<Version>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The QEMU releases whose SNP launches leave `ap` in the APs, from the profile table.
fn qemu_releases(ap: ApFpu) -> String {
    let rows: Vec<&Qemu> = QEMUS.iter().filter(|q| q.snp).collect();
    let first = rows.iter().position(|q| q.ap_fpu == ap);
    let end = first.and_then(|i| rows[i..].iter().find(|q| q.ap_fpu != ap).map(|q| q.from));
    match (first.map(|i| rows[i].from), end) {
        (Some(a), Some(b)) => format!("QEMU {a} to {b} (exclusive)"),
        (Some(a), None) => format!("QEMU {a} and later"),
        (None, _) => "no QEMU release".into(),
    }
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

/// How a match is shown: the `vmsa measure` command that reproduces it, and JSON.
trait Shown {
    fn command(&self, args: &Args) -> String;
    fn json(&self, args: &Args) -> serde_json::Value;
}

impl Shown for Match {
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
                if self.ap_fpu == ApFpu::Zero {
                    if let Some(q) = QEMUS.iter().find(|q| q.snp && q.ap_fpu == ApFpu::Zero) {
                        c += &format!(" --qemu {}", q.from);
                    }
                }
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
            "qemu": (self.vmm == VmmType::Qemu && matches!(self.source, Source::Ovmf(_)))
                .then(|| qemu_releases(self.ap_fpu)),
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
            space.ap_fpus.iter().position(|v| *v == m.ap_fpu),
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
        guest_features: vec![given.guest_features.unwrap_or(0x1), 0x1, 0x21],
        features_mask: None,
        qemu: given.profile.qemu.into_iter().collect(),
        host_kernel: given.profile.host_kernel.into_iter().collect(),
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
                if m.features != given.guest_features.unwrap_or(0x1) {
                    diffs.push(format!(
                        "guest features {:#x}, not {:#x}",
                        m.features,
                        given.guest_features.unwrap_or(0x1)
                    ));
                }
                let given_ap = given
                    .profile
                    .qemu
                    .and_then(Qemu::of)
                    .map_or(ApFpu::Reset, |q| q.ap_fpu);
                if m.ap_fpu != given_ap {
                    diffs.push(format!(
                        "{} (the APs' FCW and MXCSR {})",
                        qemu_releases(m.ap_fpu),
                        match m.ap_fpu {
                            ApFpu::Reset => "0x37f and 0x1f80",
                            ApFpu::Zero => "0",
                        }
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
    // The host profiles: QEMU's AP state for each release named, and the features the
    // kernels named can give.
    let mut ap_fpus = Vec::new();
    for &v in &args.qemu {
        let q = Qemu::of(v).ok_or_else(|| format!("--qemu {v}: the host profiles start at 7.2"))?;
        if !q.snp {
            return Err(format!(
                "--qemu {v}: no sev-snp-guest before QEMU 9.1 (7b34df44260b)"
            ));
        }
        if !ap_fpus.contains(&q.ap_fpu) {
            ap_fpus.push(q.ap_fpu);
        }
    }
    if ap_fpus.is_empty() {
        ap_fpus = vec![ApFpu::Reset, ApFpu::Zero];
    }
    if !args.qemu.is_empty() && args.guest_features.is_empty() && args.features_mask.is_none() {
        // QEMU asks KVM for no VMSA features (`struct kvm_sev_init args = { 0 }`).
        features = vec![0x1];
    }
    if !args.host_kernel.is_empty() {
        let mut offers = vmsa_core::flags::SevFeatures::empty();
        for &v in &args.host_kernel {
            let k = Kernel::of(v)
                .ok_or_else(|| format!("--host-kernel {v}: the host profiles start at 5.19"))?;
            if !k.snp {
                return Err(format!(
                    "--host-kernel {v}: no SEV-SNP host support before Linux 6.11 (ad27ce155566)"
                ));
            }
            offers |= k.offers;
        }
        features.retain(|f| f & !1 & !offers.bits() == 0);
        if features.is_empty() {
            return Err(format!(
                "no guest features to try: these kernels offer only {:#x} besides SNP_ACTIVE",
                offers.bits()
            ));
        }
    }
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
        ap_fpus,
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
        ("QEMU AP states", space.ap_fpus.len() as u64),
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
