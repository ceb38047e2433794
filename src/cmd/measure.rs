//! `vmsa measure`: the launch digest, with sev-snp-measure's options and output, plus `--igvm`,
//! `--json` and `--explain`.
//!
//! It prints what sev-snp-measure 0.0.13 prints (the digest; with `-v`, `Calculated <MODE> guest
//! measurement: <digest>`), fails where it fails with the same message (`Error: …`, exit 1), and
//! refuses, with a message that says why, the images it silently measures although they cannot
//! launch (SNP without `ASEV` metadata, SEV-ES/SNP without an SEV-ES reset block).
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::measure::ovmf::{LaunchMode, check_launch_inputs, sev_finish, snp_finish};
use vmsa_core::measure::{
    ItemKind, MeasuredItem, Observer, PageType, SevDigest, SevHashes, SnpDigest,
};
use vmsa_core::ovmf::{OvmfImage, gpa_ending_at_4g};
use vmsa_core::reset::{CpuSignature, LaunchConfig, LaunchVmsas, SevMode, VmmType, launch_vmsas};
use zerocopy::IntoBytes;

/// Arguments of `vmsa measure` (sev-snp-measure's, plus `--igvm`, `--json`, `--explain`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Guest mode: sev, seves (or sev-es), snp, snp:ovmf-hash.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Mode,
    /// Number of guest vCPUs (required except in sev mode).
    #[arg(long, value_name = "N")]
    pub vcpus: Option<u32>,
    /// Type of guest vCPU (EPYC, EPYC-v1…v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin…).
    #[arg(long, value_name = "CPUTYPE")]
    pub vcpu_type: Option<String>,
    /// Guest vCPU signature value (any base: 0x800f12, 8392466).
    #[arg(long, value_name = "VALUE", value_parser = parse_auto_int)]
    pub vcpu_sig: Option<u64>,
    /// Guest vCPU family.
    #[arg(long, value_name = "FAMILY")]
    pub vcpu_family: Option<u32>,
    /// Guest vCPU model.
    #[arg(long, value_name = "MODEL")]
    pub vcpu_model: Option<u32>,
    /// Guest vCPU stepping.
    #[arg(long, value_name = "STEPPING")]
    pub vcpu_stepping: Option<u32>,
    /// Type of guest VMM: QEMU, ec2, gce (any case), or kvm (KVM's own reset values).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    pub vmm_type: String,
    /// OVMF file to calculate the hash from.
    #[arg(long, value_name = "PATH", required_unless_present = "igvm")]
    pub ovmf: Option<PathBuf>,
    /// An IGVM file instead of OVMF.
    #[arg(long, value_name = "PATH", conflicts_with = "ovmf")]
    pub igvm: Option<PathBuf>,
    /// Kernel file to calculate the hash from.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initrd file to calculate the hash from (use with --kernel).
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line to calculate the hash from (use with --kernel).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
    /// The guest features (VMSA sev_features) for snp, any base; default 0x1.
    #[arg(long, value_name = "VALUE", value_parser = parse_auto_int, default_value = "0x1")]
    pub guest_features: u64,
    /// Measurement output format.
    #[arg(long, value_enum, default_value = "hex")]
    pub output_format: OutputFormat,
    /// Print `Calculated <MODE> guest measurement: <digest>`.
    #[arg(short, long)]
    pub verbose: bool,
    /// Precalculated SNP hash of the OVMF pages (hex); the OVMF file is still parsed.
    #[arg(long, value_name = "HASH")]
    pub snp_ovmf_hash: Option<String>,
    /// Write the measured VMSAs to vmsaN.bin in the current directory (seves and snp).
    #[arg(long)]
    pub dump_vmsa: bool,
    /// Print JSON (digest, inputs and, with --explain, the measured items).
    #[arg(long)]
    pub json: bool,
    /// List every measured item (kind, GPA, page type, contents hash, digest after it).
    #[arg(long)]
    pub explain: bool,
    /// IGVM: measure NORMAL pages without data as ZERO pages (igvmmeasure `--native-zero`).
    #[arg(long, requires = "igvm")]
    pub native_zero: bool,
    /// IGVM: report the digest even when the file's SNP_ID_BLOCK expects another one.
    #[arg(long, requires = "igvm")]
    pub ignore_idblock: bool,
    /// IGVM: whose reading of the file to follow: `spec` (the IGVM spec; SNP as the `igvm`
    /// crate measures), `qemu` (what a QEMU 10.1/10.2 + KVM launch with --vcpus measures) or
    /// `igvmmeasure` (coconut-svsm's tool, its defects included).
    #[arg(long, requires = "igvm", value_name = "PROFILE", default_value = "spec", value_parser = parse_igvm_profile)]
    pub igvm_profile: vmsa_core::measure::igvm::IgvmProfile,
}

fn parse_igvm_profile(s: &str) -> Result<vmsa_core::measure::igvm::IgvmProfile, String> {
    use vmsa_core::measure::igvm::IgvmProfile;
    IgvmProfile::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = IgvmProfile::ALL.iter().map(|p| p.name()).collect();
        format!("unknown IGVM profile {s:?} (known: {})", names.join(", "))
    })
}

/// A measurement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SEV: SHA-256 over firmware (and kernel hashes).
    Sev,
    /// SEV-ES: SEV plus the VMSAs.
    SevEs,
    /// SEV-SNP.
    Snp,
    /// The SNP digest of the firmware pages alone.
    SnpOvmfHash,
}

impl Mode {
    /// sev-snp-measure's `SevMode.name`, used by `-v`.
    fn peer_name(self) -> &'static str {
        match self {
            Mode::Sev => LaunchMode::Sev.peer_name(),
            Mode::SevEs => LaunchMode::SevEs.peer_name(),
            Mode::Snp | Mode::SnpOvmfHash => LaunchMode::Snp.peer_name(),
        }
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    if let Some(mode) = LaunchMode::from_name(s) {
        return Ok(match mode {
            LaunchMode::Sev => Mode::Sev,
            LaunchMode::SevEs => Mode::SevEs,
            LaunchMode::Snp => Mode::Snp,
        });
    }
    match s {
        "snp:ovmf-hash" => Ok(Mode::SnpOvmfHash),
        "snp:svsm" => Err(
            "snp:svsm is not supported by vmsa measure (measure the SVSM's IGVM file with --igvm)"
                .into(),
        ),
        _ => Err(format!(
            "invalid mode '{s}' (sev, seves, sev-es, snp, snp:ovmf-hash)"
        )),
    }
}

fn parse_auto_int(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        (o, 8)
    } else {
        (t, 10)
    };
    u64::from_str_radix(&digits.replace('_', ""), radix)
        .map_err(|e| format!("invalid integer '{s}': {e}"))
}

/// Output format of the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Everything the digest depends on, resolved from the arguments.
struct Request {
    mode: Mode,
    vcpus: u32,
    vmm: VmmType,
    signature: CpuSignature,
    guest_features: SevFeatures,
    hashes: Option<SevHashes>,
    seed: Option<[u8; 48]>,
}

/// Usage errors exit 2 (as argparse), measurement errors exit 1 with `Error: …` (as
/// sev-snp-measure's `RuntimeError` path).
enum Failure {
    Usage(String),
    Measure(String),
}

/// Runs `vmsa measure`.
pub fn run(args: &Args) -> super::CmdResult {
    match measure(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Usage(m)) => {
            eprintln!("vmsa measure: error: {m}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Measure(m)) => {
            eprintln!("Error: {m}");
            Ok(ExitCode::from(1))
        }
    }
}

fn usage(m: impl Into<String>) -> Failure {
    Failure::Usage(m.into())
}
fn fail(m: impl ToString) -> Failure {
    Failure::Measure(m.to_string())
}

fn resolve(args: &Args) -> Result<Request, Failure> {
    let mode = args.mode;
    let vmm = VmmType::from_name(&args.vmm_type).ok_or_else(|| {
        usage(format!(
            "unknown VMM type '{}' (QEMU, ec2, gce, kvm)",
            args.vmm_type
        ))
    })?;
    let vcpus = match (mode, args.vcpus) {
        // An IGVM file carries its own VP contexts.
        (_, v) if args.igvm.is_some() => v.unwrap_or(1),
        (Mode::Sev | Mode::SnpOvmfHash, v) => v.unwrap_or(1),
        (_, Some(v)) => v,
        (_, None) => {
            return Err(usage(format!(
                "missing --vcpus N in guest mode '{}'",
                mode_arg(mode)
            )));
        }
    };
    if args.dump_vmsa && !matches!(mode, Mode::SevEs | Mode::Snp) {
        return Err(usage(
            "--dump-vmsa is only available in the seves and snp modes",
        ));
    }
    // sev-snp-measure's priority: family/model/stepping, then --vcpu-sig, then --vcpu-type.
    // Unlike 0.0.13, family 0 and signature 0 are accepted (fixed upstream after 0.0.13).
    let signature = if let Some(family) = args.vcpu_family {
        CpuSignature::from_family_model_stepping(
            family,
            args.vcpu_model.unwrap_or(0),
            args.vcpu_stepping.unwrap_or(0),
        )
        .map_err(|e| usage(e.to_string()))?
    } else if let Some(sig) = args.vcpu_sig {
        CpuSignature(
            u32::try_from(sig)
                .map_err(|_| usage(format!("--vcpu-sig {sig:#x} does not fit in 32 bits")))?,
        )
    } else if let Some(name) = &args.vcpu_type {
        CpuSignature::named(name).map_err(|_| usage(format!("unknown --vcpu-type '{name}'")))?
    } else if vmm == VmmType::Qemu && matches!(mode, Mode::SevEs | Mode::Snp) && args.igvm.is_none()
    {
        return Err(usage(format!(
            "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
            mode_arg(mode)
        )));
    } else {
        CpuSignature(0)
    };
    let guest_features = match mode {
        // sev-snp-measure ignores --guest-features for seves (KVM's legacy and INIT2 defaults: 0).
        Mode::SevEs | Mode::Sev => SevFeatures::empty(),
        _ => SevFeatures::from_bits_retain(args.guest_features),
    };
    let hashes = match &args.kernel {
        None => None,
        Some(k) => Some(SevHashes {
            kernel: sha256_file(k)?,
            initrd: match &args.initrd {
                Some(i) => sha256_file(i)?,
                None => SevHashes::sha256(b""),
            },
            cmdline: SevHashes::cmdline_hash(args.append.as_deref()),
        }),
    };
    let seed = match &args.snp_ovmf_hash {
        None => None,
        Some(_) if mode != Mode::Snp => return Err(fail("SNP OVMF hash only works with SNP")),
        Some(h) => Some(
            parse_hex48(h)
                .ok_or_else(|| fail(format!("--snp-ovmf-hash '{h}' is not 48 bytes of hex")))?,
        ),
    };
    Ok(Request {
        mode,
        vcpus,
        vmm,
        signature,
        guest_features,
        hashes,
        seed,
    })
}

fn mode_arg(mode: Mode) -> &'static str {
    match mode {
        Mode::Sev => "sev",
        Mode::SevEs => "seves",
        Mode::Snp => "snp",
        Mode::SnpOvmfHash => "snp:ovmf-hash",
    }
}

fn parse_hex48(s: &str) -> Option<[u8; 48]> {
    let s = s.trim();
    if s.len() != 96 {
        return None;
    }
    let mut out = [0u8; 48];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn sha256_file(path: &Path) -> Result<[u8; 32], Failure> {
    let mut f =
        File::open(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut pages = page_buffer(1 << 20);
    let buf = pages.as_mut_bytes();
    loop {
        let n = f
            .read(buf)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// A page of a read buffer. `read(2)` into a page-aligned buffer copies about four times faster
/// here than into `vec![0u8; n]`, whose large allocations start 16 bytes into a page (measured:
/// 5.4 vs 1.4 GB/s from the page cache).
#[repr(C, align(4096))]
#[derive(Clone, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout)]
struct Page([u8; 4096]);

/// A page-aligned buffer of `bytes` (a multiple of 4 KiB).
fn page_buffer(bytes: usize) -> Vec<Page> {
    vec![Page([0; 4096]); bytes / 4096]
}

/// Collects the measured items for `--explain` / `--json`.
#[derive(Default)]
struct Items {
    keep: bool,
    items: Vec<MeasuredItem>,
}

impl Observer for Items {
    fn measured(&mut self, item: &MeasuredItem) {
        if self.keep {
            self.items.push(*item);
        }
    }
}

/// The firmware image: mapped read-only where possible (no copy through `read(2)`), else its
/// tail read for parsing and the whole image streamed in chunks through a page-aligned buffer,
/// so that it is never held in memory either way. A pipe can be read only once, from the start,
/// while the metadata is at its end: it is read whole (`whole`).
struct Firmware {
    path: PathBuf,
    len: u64,
    map: Option<memmap2::Mmap>,
    tail: Vec<u8>,
    whole: bool,
}

impl Firmware {
    fn open(path: &Path) -> Result<Self, Failure> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, try_map: bool) -> Result<Self, Failure> {
        let read_err = |e: std::io::Error| fail(format!("cannot read {}: {e}", path.display()));
        let mut f = File::open(path).map_err(read_err)?;
        let len = f.metadata().map_err(read_err)?.len();
        if let Some(map) = Self::map(&f, len).filter(|_| try_map) {
            return Ok(Self {
                path: path.to_owned(),
                len,
                map: Some(map),
                tail: Vec::new(),
                whole: false,
            });
        }
        if f.stream_position().is_err() {
            let mut all = Vec::new();
            f.read_to_end(&mut all).map_err(read_err)?;
            return Ok(Self {
                path: path.to_owned(),
                len: all.len() as u64,
                map: None,
                tail: all,
                whole: true,
            });
        }
        // The footer table and the `ASEV` metadata live near the end of the image (the metadata
        // offset is counted from the end; a few KiB in every OVMF build): parse the last MiB, and
        // only if that does not parse, the whole image.
        let mut want = len.min(1 << 20);
        loop {
            let mut tail = vec![0u8; want as usize];
            f.seek(SeekFrom::Start(len - want)).map_err(read_err)?;
            f.read_exact(&mut tail).map_err(read_err)?;
            if OvmfImage::parse(&tail).is_err() && want < len {
                want = len;
                continue;
            }
            return Ok(Self {
                path: path.to_owned(),
                len,
                map: None,
                tail,
                whole: false,
            });
        }
    }

    /// `f` mapped read-only, or `None` where it cannot be (a pipe, an empty file).
    #[allow(unsafe_code)]
    fn map(f: &File, len: u64) -> Option<memmap2::Mmap> {
        // SAFETY: the map is read-only and private to this process; the only hazard is another
        // process truncating or rewriting the file while it is hashed, which would make the
        // digest meaningless (as it would with read(2)) and, for truncation, raise SIGBUS. The
        // firmware is the user's own input file, taken as stable for the run, as every
        // measurement tool does.
        // Not populated up front: the hashing workers fault their own pages in, in parallel
        // (populating first kept one core idle for ~45 ms of a 256 MiB digest).
        let map = unsafe { memmap2::MmapOptions::new().map(f) }.ok()?;
        (map.len() as u64 == len && len > 0).then_some(map)
    }

    fn parsed(&self) -> Result<OvmfImage<'_>, Failure> {
        let bytes = self.map.as_deref().unwrap_or(&self.tail);
        OvmfImage::parse(bytes).map_err(|e| fail(format!("{}: {e}", self.path.display())))
    }

    /// The image in chunks of whole pages, in order.
    fn stream(&self, mut each: impl FnMut(&[u8])) -> Result<(), Failure> {
        if let Some(map) = &self.map {
            each(map);
            return Ok(());
        }
        if self.whole {
            each(&self.tail);
            return Ok(());
        }
        let read_err =
            |e: std::io::Error| fail(format!("cannot read {}: {e}", self.path.display()));
        let mut f = File::open(&self.path).map_err(read_err)?;
        let mut pages = page_buffer(8 << 20);
        let buf = pages.as_mut_bytes();
        let mut left = self.len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.read_exact(&mut buf[..n]).map_err(read_err)?;
            each(&buf[..n]);
            left -= n as u64;
        }
        Ok(())
    }
}

fn measure(args: &Args) -> Result<(), Failure> {
    let req = resolve(args)?;
    let mut items = Items {
        keep: args.explain || args.json,
        items: Vec::new(),
    };
    if let Some(path) = &args.igvm {
        let digest = measure_igvm(args, &req, path, &mut items)?;
        return print(args, &req, &digest, &items.items);
    }
    let path = args
        .ovmf
        .as_deref()
        .ok_or_else(|| usage("--ovmf PATH is required"))?;
    let fw_file = Firmware::open(path)?;
    let fw = fw_file.parsed()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut vmsas: Option<LaunchVmsas> = None;
    let digest: Vec<u8> = match req.mode {
        Mode::Sev | Mode::SevEs => {
            if req.mode == Mode::SevEs {
                vmsas = Some(compute_vmsas(&fw, &req, SevMode::SevEs)?);
            }
            let mode = if vmsas.is_some() {
                LaunchMode::SevEs
            } else {
                LaunchMode::Sev
            };
            // Refuse before hashing anything.
            check_launch_inputs(&fw, mode, req.hashes.as_ref(), vmsas.as_ref()).map_err(fail)?;
            let mut d = SevDigest::with_observer(&mut items);
            fw_file.stream(|chunk| d.update_firmware(chunk))?;
            d.end_firmware();
            sev_finish(d, &fw, req.hashes.as_ref(), vmsas.as_ref())
                .map_err(fail)?
                .0
                .to_vec()
        }
        Mode::Snp | Mode::SnpOvmfHash => {
            if req.mode == Mode::Snp {
                let v = compute_vmsas(&fw, &req, SevMode::Snp)?;
                check_launch_inputs(&fw, LaunchMode::Snp, req.hashes.as_ref(), Some(&v))
                    .map_err(fail)?;
                vmsas = Some(v);
            }
            let mut d = SnpDigest::with_observer(req.seed.unwrap_or([0; 48]), &mut items);
            if req.seed.is_none() {
                if fw_file.len % 4096 != 0 {
                    return Err(fail(format!(
                        "{}: {} bytes is not a whole number of 4 KiB pages",
                        path.display(),
                        fw_file.len
                    )));
                }
                let mut gpa = gpa_ending_at_4g(fw_file.len as usize);
                // Contents hashes on every core, four pages per AVX2 register (the same
                // function as the core's `sha2`, checked by tests/measure_props.rs), chained
                // in order on this thread while the workers hash the pages after them.
                fw_file.stream(|chunk| {
                    let chain = |hashes: &[[u8; 48]]| {
                        for h in hashes {
                            d.update_with_contents(ItemKind::Firmware, PageType::NORMAL, gpa, *h);
                            gpa = gpa.wrapping_add(4096);
                        }
                    };
                    vmsa_core::measure::parallel::sha384_pages_ordered(
                        chunk,
                        threads,
                        vmsa_pagehash::sha384_pages,
                        chain,
                    );
                })?;
            }
            if let Some(v) = &vmsas {
                snp_finish(&mut d, &fw, req.hashes.as_ref(), req.vmm, v).map_err(fail)?;
            }
            d.ld().to_vec()
        }
    };
    if args.dump_vmsa {
        if let Some(v) = &vmsas {
            for (cpu, page) in v.pages() {
                let name = format!("vmsa{cpu}.bin");
                std::fs::write(&name, page.as_page())
                    .map_err(|e| fail(format!("cannot write {name}: {e}")))?;
            }
        }
    }
    print(args, &req, &digest, &items.items)
}

/// The IGVM digest of the platform the mode names (snp: SEV_SNP, seves: SEV_ES, sev: SEV).
fn measure_igvm(
    args: &Args,
    req: &Request,
    path: &Path,
    items: &mut Items,
) -> Result<Vec<u8>, Failure> {
    use vmsa_core::igvm::{IgvmFile, PlatformChoice};
    use vmsa_core::measure::igvm::{IgvmOptions, IgvmProfile, igvm_launch_digest};
    let name = match req.mode {
        Mode::Snp => "snp",
        Mode::SevEs => "sev-es",
        Mode::Sev => "sev",
        Mode::SnpOvmfHash => {
            return Err(usage(
                "snp:ovmf-hash measures OVMF firmware, not IGVM files",
            ));
        }
    };
    let platform_type = vmsa_core::igvm::platform_from_name(name).expect("a known platform name");
    if args.dump_vmsa || args.kernel.is_some() || args.snp_ovmf_hash.is_some() {
        return Err(usage(
            "--dump-vmsa, --kernel and --snp-ovmf-hash apply to OVMF firmware, not to --igvm (use `vmsa reset --igvm`)",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let file = IgvmFile::parse(&bytes).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let platform = file
        .select(PlatformChoice::Only(platform_type))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let options = IgvmOptions {
        native_zero: args.native_zero,
        profile: args.igvm_profile,
    };
    let d = if options.profile == IgvmProfile::Qemu {
        let cfg = LaunchConfig::new(SevMode::Snp, req.vcpus, req.signature, req.vmm);
        vmsa_core::launch_plan::igvm_qemu_digest(&file, platform, options, cfg, items)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?
    } else {
        igvm_launch_digest(&file, &platform, options, items)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?
    };
    if d.id_block_mismatch() && !args.ignore_idblock {
        return Err(fail(format!(
            "{}: the calculated measurement {} does not match the SNP_ID_BLOCK's expected {} (use --ignore-idblock to print it anyway)",
            path.display(),
            hex(d.bytes()),
            hex(&d.id_block_ld.unwrap_or([0; 48]))
        )));
    }
    Ok(d.bytes().to_vec())
}

fn print(args: &Args, req: &Request, digest: &[u8], items: &[MeasuredItem]) -> Result<(), Failure> {
    let text = match (req.mode, args.output_format) {
        // sev-snp-measure prints the ovmf hash as hex whatever the format.
        (Mode::SnpOvmfHash, _) | (_, OutputFormat::Hex) => hex(digest),
        (_, OutputFormat::Base64) => base64(digest),
    };
    if args.json {
        print_json(args, req, &text, items);
    } else {
        if args.explain {
            print_explain(items);
        }
        if args.verbose && req.mode != Mode::SnpOvmfHash {
            println!(
                "Calculated {} guest measurement: {text}",
                req.mode.peer_name()
            );
        } else {
            println!("{text}");
        }
    }
    Ok(())
}

/// The launch VMSAs; `launch_vmsas` refuses what QEMU refuses (no reset block, reset address 0,
/// SNP without `ASEV`), which sev-snp-measure does not check.
fn compute_vmsas(fw: &OvmfImage<'_>, req: &Request, mode: SevMode) -> Result<LaunchVmsas, Failure> {
    let mut cfg = LaunchConfig::new(mode, req.vcpus, req.signature, req.vmm);
    if mode == SevMode::Snp {
        cfg.guest_features = req.guest_features;
    }
    launch_vmsas(fw, &cfg).map_err(fail)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn describe(kind: &ItemKind) -> String {
    match kind {
        ItemKind::Firmware => "firmware".into(),
        ItemKind::MetadataSection { section_type } => {
            format!("section {}", vmsa_core::ovmf::SectionType(*section_type))
        }
        ItemKind::KernelHashes => "kernel-hashes".into(),
        ItemKind::Vmsa { cpu } => format!("vmsa cpu{cpu}"),
        ItemKind::IgvmDirective { header_index } => format!("igvm header {header_index}"),
        _ => format!("{kind:?}"),
    }
}

fn print_explain(items: &[MeasuredItem]) {
    println!(
        "{:>5}  {:<24} {:>14}  {:<10}  {:<22}  digest after",
        "#", "item", "gpa", "type", "contents"
    );
    for (i, it) in items.iter().enumerate() {
        let contents = if it.contents.iter().all(|&b| b == 0) {
            "0".to_string()
        } else if it.page_type.is_none() {
            format!("sha256:{}…", hex(&it.contents[..8]))
        } else {
            format!("sha384:{}…", hex(&it.contents[..8]))
        };
        let after = if it.page_type.is_some() {
            hex(&it.digest_after)
        } else {
            "-".into()
        };
        let ty = it.page_type.map_or("-".into(), |t| t.to_string());
        let gpa = if it.page_type.is_some() {
            format!("{:#x}", it.gpa)
        } else {
            format!("{} bytes", it.len)
        };
        println!(
            "{i:>5}  {:<24} {gpa:>14}  {ty:<10}  {contents:<22}  {after}",
            describe(&it.kind)
        );
    }
}

#[derive(Serialize)]
struct JsonItem {
    item: String,
    gpa: u64,
    len: u64,
    page_type: Option<String>,
    contents: String,
    digest_after: Option<String>,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    mode: &'static str,
    vcpus: u32,
    vmm_type: &'static str,
    vcpu_sig: String,
    guest_features: String,
    measurement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<JsonItem>>,
}

fn print_json(args: &Args, req: &Request, text: &str, items: &[MeasuredItem]) {
    let out = JsonOut {
        mode: mode_arg(req.mode),
        vcpus: req.vcpus,
        vmm_type: req.vmm.name(),
        vcpu_sig: format!("{:#x}", req.signature.0),
        guest_features: format!("{:#x}", req.guest_features.bits()),
        measurement: text,
        items: args.explain.then(|| {
            items
                .iter()
                .map(|it| JsonItem {
                    item: describe(&it.kind),
                    gpa: it.gpa,
                    len: it.len,
                    page_type: it.page_type.map(|t| t.to_string()),
                    contents: hex(if it.page_type.is_some() {
                        &it.contents
                    } else {
                        &it.contents[..32]
                    }),
                    digest_after: it.page_type.is_some().then(|| hex(&it.digest_after)),
                })
                .collect()
        }),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("plain data serializes")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read(2) fallback (for files that cannot be mapped) parses and streams the same bytes
    /// as the mapped path.
    #[test]
    fn read_fallback_equals_the_map() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/sev-snp-measure/ovmf_AmdSev_suffix.bin");
        for path in [fixture.as_path(), Path::new("/usr/share/OVMF/OVMF_CODE.fd")] {
            if !path.exists() {
                eprintln!("SKIPPED: {} not present", path.display());
                continue;
            }
            let (Ok(mapped), Ok(read)) = (
                Firmware::open_with(path, true),
                Firmware::open_with(path, false),
            ) else {
                panic!("{} does not open", path.display());
            };
            assert!(mapped.map.is_some() && read.map.is_none());
            let (a, b) = (mapped.parsed().ok().unwrap(), read.parsed().ok().unwrap());
            assert_eq!(a.sev_es_reset_addr(), b.sev_es_reset_addr());
            assert_eq!(
                a.sev_metadata().map(|m| m.sections().count()),
                b.sev_metadata().map(|m| m.sections().count())
            );
            let collect = |fw: &Firmware| {
                let mut all = Vec::new();
                fw.stream(|c| all.extend_from_slice(c)).ok().unwrap();
                all
            };
            let bytes = std::fs::read(path).unwrap();
            assert!(collect(&mapped) == bytes && collect(&read) == bytes);
        }
    }
}
