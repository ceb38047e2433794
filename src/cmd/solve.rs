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
use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
use vmsa_core::measure::{ItemKind, MeasuredItem, Observer, SnpDigest, sha384};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::page::{PageType, VMSA_GPA};
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
    #[arg(long, required = true, num_args = 1..)]
    pub ovmf: Vec<PathBuf>,
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

/// The digest just before the first VMSA, and whether every VMSA came after every other item.
#[derive(Default)]
struct Prefix {
    before_vmsas: Option<[u8; 48]>,
    seen_vmsa: bool,
    vmsas_last: bool,
}

impl Observer for Prefix {
    fn measured(&mut self, item: &MeasuredItem) {
        if matches!(item.kind, ItemKind::Vmsa { .. }) {
            self.seen_vmsa = true;
        } else {
            if self.seen_vmsa {
                self.vmsas_last = false;
            }
            self.before_vmsas = Some(item.digest_after);
        }
    }
}

/// One configuration that matched.
struct Match {
    image: PathBuf,
    vcpus: u32,
    signature: CpuSignature,
    vmm: VmmType,
    features: u64,
}

impl Match {
    fn command(&self) -> String {
        format!(
            "vmsa measure --mode snp --vcpus {} --vcpu-sig {:#x} --vmm-type {} --guest-features {:#x} --ovmf {}",
            self.vcpus,
            self.signature.0,
            self.vmm.name(),
            self.features,
            self.image.display()
        )
    }
}

/// `vmsa solve`.
pub fn run(args: &Args) -> CmdResult {
    let (target, report_sig) = match (&args.report, &args.measurement) {
        (Some(p), _) => {
            let r = super::report::load(p, args.product)?;
            let sig = (r.raw.version >= 3)
                .then(|| {
                    CpuSignature::from_family_model_stepping(
                        u32::from(r.raw.cpuid_fam_id),
                        u32::from(r.raw.cpuid_mod_id),
                        u32::from(r.raw.cpuid_step),
                    )
                    .ok()
                })
                .flatten();
            (r.raw.measurement, sig)
        }
        (None, Some(m)) => (measurement_bytes(m)?, None),
        (None, None) => return Err("give --report or --measurement".into()),
    };
    let counts = parse_counts(&args.vcpus)?;
    let max = counts.last().copied().unwrap_or(1);
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

    let start = Instant::now();
    let mut matches = Vec::new();
    let mut searched: u64 = 0;
    let mut refused: u64 = 0;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for image_path in &args.ovmf {
        let file = FirmwareFile::open(image_path, limits::FIRMWARE)?;
        let image =
            OvmfImage::parse(file.bytes()).map_err(|e| format!("{}: {e}", image_path.display()))?;
        let fw = Firmware::Ovmf(image);
        let config = |vmm, feat, sig, vcpus| {
            let mut cfg = LaunchConfig::new(SevMode::Snp, vcpus, sig, vmm);
            cfg.guest_features = vmsa_core::flags::SevFeatures::from_bits_retain(feat);
            cfg
        };
        // The digest before the VMSAs, once per VMM profile (its section policy decides it; the
        // vCPU count, signature and features do not): the walk of a 1-vCPU launch.
        let mut prefixes = Vec::new();
        for &vmm in &vmms {
            let first = features
                .iter()
                .flat_map(|&f| sigs.iter().map(move |(s, _)| (f, *s)))
                .find_map(|(f, s)| Launch::new(&fw, &config(vmm, f, s, 1)).ok());
            let Some(launch) = first else {
                prefixes.push(None);
                continue;
            };
            let (_, o) = launch
                .launch_digest(
                    &vmsa_pagehash::Parallel::all_cores(),
                    Prefix {
                        vmsas_last: true,
                        ..Prefix::default()
                    },
                )
                .map_err(|e| format!("{}: {e}", image_path.display()))?;
            if !o.vmsas_last {
                return Err(
                    "this launch measures VMSAs before other pages; the solver needs them last"
                        .into(),
                );
            }
            prefixes.push(Some(o.before_vmsas.unwrap_or([0; 48])));
        }
        // Every (profile, features, signature) walks its VMSAs once; the configurations are
        // shared among the cores.
        let mut work: Vec<(usize, u64, CpuSignature)> = Vec::new();
        for v in 0..vmms.len() {
            for &f in &features {
                for (sig, _) in &sigs {
                    work.push((v, f, *sig));
                }
            }
        }
        let next_item = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<(Vec<Match>, u64, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let (mut found, mut searched, mut refused) = (Vec::new(), 0u64, 0u64);
                        loop {
                            let i = next_item.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&(v, feat, sig)) = work.get(i) else {
                                break;
                            };
                            let vmm = vmms[v];
                            let (Some(seed), Ok(launch)) =
                                (prefixes[v], Launch::new(&fw, &config(vmm, feat, sig, max)))
                            else {
                                refused += counts.len() as u64;
                                continue;
                            };
                            let mut d = SnpDigest::from_seed(seed);
                            let mut last_page: Option<(Vec<u8>, [u8; 48])> = None;
                            let mut next = counts.iter().peekable();
                            for (cpu, v) in launch.vmsas().enumerate() {
                                let Ok(v) = v else {
                                    break;
                                };
                                let page = v.vmsa.as_bytes();
                                let contents = match &last_page {
                                    Some((p, h)) if p.as_slice() == page => *h,
                                    _ => {
                                        let h = sha384(page);
                                        last_page = Some((page.to_vec(), h));
                                        h
                                    }
                                };
                                d.update_with_contents(
                                    ItemKind::Vmsa { cpu: cpu as u32 },
                                    PageType::VMSA,
                                    VMSA_GPA,
                                    contents,
                                );
                                let n = cpu as u32 + 1;
                                if next.peek() == Some(&&n) {
                                    next.next();
                                    searched += 1;
                                    if d.ld() == target {
                                        found.push(Match {
                                            image: image_path.clone(),
                                            vcpus: n,
                                            signature: sig,
                                            vmm,
                                            features: feat,
                                        });
                                    }
                                }
                            }
                        }
                        (found, searched, refused)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut found: Vec<Match> = Vec::new();
        for (m, s, r) in results {
            found.extend(m);
            searched += s;
            refused += r;
        }
        // The order of the axes as given, whatever thread found what.
        let rank = |m: &Match| {
            (
                vmms.iter().position(|v| *v == m.vmm),
                features.iter().position(|f| *f == m.features),
                sigs.iter().position(|(s, _)| *s == m.signature),
                m.vcpus,
            )
        };
        found.sort_by_key(rank);
        matches.extend(found);
    }
    let secs = start.elapsed().as_secs_f64();
    let hex: String = target.iter().map(|b| format!("{b:02x}")).collect();
    let axes = [
        ("images", args.ovmf.len() as u64),
        ("VMM profiles", vmms.len() as u64),
        ("guest features", features.len() as u64),
        ("vCPU signatures", sigs.len() as u64),
        ("vCPU counts", counts.len() as u64),
    ];
    let total: u64 = axes.iter().map(|a| a.1).product();
    if args.json {
        let out = json!({
            "measurement": hex,
            "searched": searched,
            "refused": refused,
            "seconds": secs,
            "axes": axes.iter().map(|(n, s)| json!({"axis": n, "size": s})).collect::<Vec<_>>(),
            "matches": matches.iter().map(|m| json!({
                "ovmf": m.image.display().to_string(),
                "vcpus": m.vcpus,
                "vcpu_sig": format!("{:#x}", m.signature.0),
                "vmm_type": m.vmm.name(),
                "guest_features": format!("{:#x}", m.features),
                "command": m.command(),
            })).collect::<Vec<_>>(),
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else if matches.is_empty() {
        crate::outln!("no launch in the search space gives {hex}");
        crate::outln!(
            "searched {searched} configurations in {secs:.2} s ({refused} refused as launches QEMU/KVM would not make):"
        );
        for (name, size) in axes {
            crate::outln!("  {name:<16} {size}");
        }
        crate::outln!("  total            {total}");
        crate::outln!(
            "cheapest to widen: --vcpus (each count adds one hash per configuration), then --vcpu-sig/--vcpu-type, --guest-features or --features-mask, --vmm-type"
        );
    } else {
        for m in &matches {
            crate::outln!("{}", m.command());
        }
        crate::outln!(
            "{} of {searched} configurations match ({secs:.2} s)",
            matches.len()
        );
    }
    Ok(if matches.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
