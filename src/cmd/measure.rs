//! `vmsa measure`: the launch digest, with sev-snp-measure's options and output, plus `--igvm`,
//! `--json` and `--explain`.
//!
//! It prints what sev-snp-measure 0.0.13 prints (the digest; with `-v`, `Calculated <MODE> guest
//! measurement: <digest>`), fails where it fails with the same message (`Error: …`, exit 1), and
//! refuses, with a message that says why, the images it silently measures although they cannot
//! launch (SNP without `ASEV` metadata, SEV-ES/SNP without an SEV-ES reset block). The digest is
//! the core's ([`vmsa_core::launch::Launch::digest`]), the firmware pages hashed on every core.
use super::args::{CpuArgs, ProfileArgs, parse_int, parse_vmm};
use super::files::{self, FirmwareFile, limits};
use super::output::{Existing, base64, hex, interrupted, to_json, write_pages};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vmsa_core::flags::SevFeatures;
use vmsa_core::hash_table::SevHashes;
use vmsa_core::launch::{
    self, Firmware, IgvmOptions, IgvmProfile, Launch, LaunchConfig, MAX_FIRMWARE_SIZE, SvsmProfile,
};
use vmsa_core::measure::{MeasuredItem, Observer};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode};
use vmsa_pagehash::Parallel;

/// Arguments of `vmsa measure` (sev-snp-measure's, plus `--igvm`, `--json`, `--explain`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Guest mode: sev, seves (or sev-es), snp, snp:ovmf-hash, snp:svsm.
    #[arg(long, value_parser = parse_mode_arg)]
    pub mode: ModeArg,
    /// Number of guest vCPUs (required except in sev mode; with --igvm, default the file's).
    #[arg(long, value_name = "N")]
    pub vcpus: Option<u32>,
    /// The vCPU signature.
    #[command(flatten)]
    pub cpu: CpuArgs,
    /// Type of guest VMM: QEMU, ec2, gce (any case), kvm (KVM's own reset values) or krun (libkrun).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU", value_parser = parse_vmm)]
    pub vmm_type: VmmType,
    /// OVMF file to calculate the hash from.
    #[arg(long, value_name = "PATH", required_unless_present_any = ["igvm", "krun_qboot"])]
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
    /// The guest features (VMSA sev_features) for snp, any base; default 0x1 (with
    /// --host-kernel/--qemu: the host's, and for seves too).
    #[arg(long, value_name = "VALUE", value_parser = parse_int)]
    pub guest_features: Option<u64>,
    /// The host's Linux and QEMU versions.
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// libkrun: libkrunfw-sev's qboot (64 KiB), launched with --krun-kernel, --krun-initrd and
    /// --ram-mib instead of --ovmf (libkrun's own layout and vCPU state).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["ovmf", "igvm"],
          requires_all = ["krun_kernel", "krun_initrd", "ram_mib"])]
    pub krun_qboot: Option<PathBuf>,
    /// libkrun: the kernel bundle (the bytes `krunfw_get_kernel` returns).
    #[arg(long, value_name = "PATH", requires = "krun_qboot")]
    pub krun_kernel: Option<PathBuf>,
    /// libkrun: the kernel bundle's load address (`krunfw_get_kernel`'s `load_addr`).
    #[arg(long, value_name = "GPA", value_parser = parse_int, default_value = "0x1000000")]
    pub krun_kernel_gpa: u64,
    /// libkrun: the initrd bundle (`krunfw_get_initrd`).
    #[arg(long, value_name = "PATH", requires = "krun_qboot")]
    pub krun_initrd: Option<PathBuf>,
    /// libkrun: the VM's memory in MiB (`krun_set_vm_config`'s `ram_mib`).
    #[arg(long, value_name = "MIB", requires = "krun_qboot", value_parser = super::args::parse_u32)]
    pub ram_mib: Option<u32>,
    /// libkrun: its release (default 1.16 and later, which program no vCPU register for TEE
    /// guests; before 1.16 libkrun set them: the krun VMM type).
    #[arg(long, value_name = "VERSION", requires = "krun_qboot", value_parser = super::args::parse_version)]
    pub libkrun: Option<vmsa_core::host::Version>,
    /// Measurement output format (default hex; with --tik base64, as sevctl prints it).
    #[arg(long, value_enum)]
    pub output_format: Option<OutputFormat>,
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
    #[arg(long, conflicts_with = "ovmf")]
    pub native_zero: bool,
    /// IGVM: report the digest even when the file's SNP_ID_BLOCK expects another one.
    #[arg(long, conflicts_with = "ovmf")]
    pub ignore_idblock: bool,
    /// IGVM: whose reading of the file to follow: `spec` (the IGVM spec; SNP as the `igvm`
    /// crate measures), `qemu` (what a QEMU 10.1/10.2 + KVM launch with --vcpus measures) or
    /// `igvmmeasure` (coconut-svsm's tool, its defects included).
    // (`conflicts_with`, not `requires = "igvm"`: clap waives a requirement that conflicts with
    // an argument given, and --igvm conflicts with --ovmf.)
    #[arg(long, conflicts_with = "ovmf", value_name = "PROFILE", default_value = "spec", value_parser = parse_igvm_profile)]
    pub igvm_profile: IgvmProfile,
    /// SEV/SEV-ES: print the platform's LAUNCH_MEASURE instead of the digest, HMAC-SHA-256
    /// under this transport integrity key (a path to its 16 bytes, or base64/hex, as `sevctl
    /// measurement build --tik` takes it), followed by the nonce: the 48 bytes QEMU's
    /// `query-sev-launch-measure` returns.
    #[arg(long, value_name = "PATH|BASE64", requires_all = ["api_major", "api_minor", "build", "policy"])]
    pub tik: Option<String>,
    /// The kernel's SHA-256 (hex) instead of --kernel: for pipelines that hash at build time.
    #[arg(long, value_name = "HEX", conflicts_with = "kernel")]
    pub kernel_hash: Option<String>,
    /// With --kernel-hash: the initrd's SHA-256 (default: of no bytes, as for no initrd).
    #[arg(long, value_name = "HEX", requires = "kernel_hash")]
    pub initrd_hash: Option<String>,
    /// With --kernel-hash: the SHA-256 of the command line *with its terminating NUL* (as QEMU
    /// hashes it; default: of a lone NUL, as for no --append).
    #[arg(
        long,
        visible_alias = "cmdline-hash",
        value_name = "HEX",
        requires = "kernel_hash"
    )]
    pub append_hash: Option<String>,
    /// With --tik: the firmware's MNONCE (16 bytes: a path, or base64/hex).
    #[arg(long, requires = "tik", conflicts_with = "launch_measure_blob")]
    pub nonce: Option<String>,
    /// With --tik: the LAUNCH_MEASURE blob the platform returned (48 bytes, a path or base64, as
    /// QEMU's `query-sev-launch-measure` or `virsh domlaunchsecinfo` give it): its nonce is used,
    /// and its measure checked against the one computed (exit 1 if they differ).
    #[arg(long, value_name = "PATH|BASE64", requires = "tik")]
    pub launch_measure_blob: Option<String>,
    /// With --tik: the platform's API major version (`sevctl show` or QEMU's `query-sev`).
    #[arg(long, requires = "tik", value_parser = parse_u8)]
    pub api_major: Option<u8>,
    /// With --tik: the API minor version.
    #[arg(long, requires = "tik", value_parser = parse_u8)]
    pub api_minor: Option<u8>,
    /// With --tik: the firmware build.
    #[arg(long, visible_alias = "build-id", requires = "tik", value_parser = parse_u8)]
    pub build: Option<u8>,
    /// With --tik: the guest policy (QEMU `sev-guest,policy=`).
    #[arg(long, requires = "tik", value_parser = super::args::parse_u32)]
    pub policy: Option<u32>,
    /// snp:svsm: the COCONUT-SVSM binary, loaded below OVMF and its variable store.
    #[arg(long, value_name = "PATH", conflicts_with = "igvm")]
    pub svsm: Option<PathBuf>,
    /// snp:svsm: the size of the OVMF_VARS file in bytes (conflicts with --vars-file).
    #[arg(long, value_name = "SIZE", value_parser = parse_int, conflicts_with = "vars_file")]
    pub vars_size: Option<u64>,
    /// snp:svsm: the OVMF_VARS file, for its size (conflicts with --vars-size).
    #[arg(long, value_name = "PATH")]
    pub vars_file: Option<PathBuf>,
    /// snp:svsm: whose SVSM VMSA to measure: `launch` (the launch the mode models, as it was
    /// measured: MXCSR and FCW 0) or `sev-snp-measure` (0.0.13's page, MXCSR 0x1f80: a peer bug).
    #[arg(long, value_name = "PROFILE", default_value = "launch", value_parser = parse_svsm_profile)]
    pub svsm_profile: SvsmProfile,
}

fn parse_svsm_profile(s: &str) -> Result<SvsmProfile, String> {
    SvsmProfile::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = SvsmProfile::ALL.iter().map(|p| p.name()).collect();
        format!("unknown SVSM profile {s:?} (one of {})", names.join(", "))
    })
}

fn parse_u8(s: &str) -> Result<u8, String> {
    let v = super::args::parse_int(s)?;
    u8::try_from(v).map_err(|_| format!("{s:?} does not fit in a byte"))
}

/// `--tik`, `--nonce`, `--launch-measure-blob`: `len` bytes, as sevctl takes them: a path (the
/// raw bytes, or their hex or base64 text) when one exists by that name, else base64 (or hex).
fn path_or_base64(what: &str, arg: &str, len: usize) -> Result<Vec<u8>, Failure> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        let bytes = files::read(path, 1024).map_err(fail)?;
        if bytes.len() == len {
            return Ok(bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        arg.to_owned()
    };
    let v = super::args::hex_or_base64(what, &text, len, false).map_err(usage)?;
    match v.len() == len {
        true => Ok(v),
        false => Err(usage(format!("{what}: {len} bytes"))),
    }
}

fn parse_igvm_profile(s: &str) -> Result<IgvmProfile, String> {
    IgvmProfile::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = IgvmProfile::ALL.iter().map(|p| p.name()).collect();
        format!("unknown IGVM profile {s:?} (known: {})", names.join(", "))
    })
}

/// `--mode`: an SEV mode, or `snp:ovmf-hash` (the SNP digest of the firmware pages alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeArg {
    /// The mode.
    pub mode: SevMode,
    /// `snp:ovmf-hash`.
    pub ovmf_hash: bool,
    /// `snp:svsm`.
    pub svsm: bool,
}

impl ModeArg {
    /// The argument as sev-snp-measure spells it (`sev`, `seves`, `snp`, `snp:ovmf-hash`).
    fn name(self) -> &'static str {
        match (self.mode, self.ovmf_hash) {
            (_, true) => "snp:ovmf-hash",
            _ if self.svsm => "snp:svsm",
            (SevMode::Sev, _) => "sev",
            (SevMode::SevEs, _) => "seves",
            (SevMode::Snp, _) => "snp",
        }
    }
}

fn parse_mode_arg(s: &str) -> Result<ModeArg, String> {
    if let Some(mode) = SevMode::from_name(s) {
        return Ok(ModeArg {
            mode,
            ovmf_hash: false,
            svsm: false,
        });
    }
    match s {
        "snp:ovmf-hash" => Ok(ModeArg {
            mode: SevMode::Snp,
            ovmf_hash: true,
            svsm: false,
        }),
        // sev-snp-measure: any case, and `sev-snp:svsm`.
        _ if ["snp:svsm", "sev-snp:svsm"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(s)) =>
        {
            Ok(ModeArg {
                mode: SevMode::Snp,
                ovmf_hash: false,
                svsm: true,
            })
        }
        _ => Err(format!(
            "invalid mode '{s}' (sev, seves, sev-es, snp, snp:ovmf-hash, snp:svsm)"
        )),
    }
}

/// Output format of the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Usage errors exit 2 (as argparse), measurement errors exit 1 with `Error: …` (as
/// sev-snp-measure's `RuntimeError` path).
enum Failure {
    Usage(String),
    Measure(String),
}

fn usage(m: impl Into<String>) -> Failure {
    Failure::Usage(m.into())
}
fn fail(m: impl ToString) -> Failure {
    Failure::Measure(m.to_string())
}

/// Runs `vmsa measure`.
pub fn run(args: &Args) -> super::CmdResult {
    match measure(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Measure(m)) if interrupted(&m).is_some() => Err(m),
        Err(Failure::Usage(m)) => {
            crate::errln!("vmsa measure: error: {m}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Measure(m)) => {
            crate::errln!("Error: {m}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The launch configuration the arguments describe (the vCPU count of an IGVM file is
/// resolved from the file when not given).
fn config(args: &Args) -> Result<LaunchConfig, Failure> {
    let ModeArg {
        mode,
        ovmf_hash,
        svsm,
    } = args.mode;
    if !svsm && (args.svsm.is_some() || args.vars_size.is_some() || args.vars_file.is_some()) {
        return Err(usage(
            "--svsm, --vars-size and --vars-file are for --mode snp:svsm",
        ));
    }
    if svsm && args.svsm.is_none() {
        return Err(usage("snp:svsm mode requires --svsm PATH"));
    }
    if svsm && args.vars_size.is_none() && args.vars_file.is_none() {
        return Err(usage("snp:svsm mode requires --vars-size or --vars-file"));
    }
    if svsm && args.igvm.is_some() {
        return Err(usage(
            "snp:svsm measures OVMF and an SVSM binary, not --igvm",
        ));
    }
    let vcpus = match (args.vcpus, mode, ovmf_hash) {
        (Some(v), _, _) => v,
        // An IGVM file carries its own VP contexts (`measure` resolves the count from it).
        (None, _, _) if args.igvm.is_some() => 1,
        (None, SevMode::Sev, _) | (None, _, true) => 1,
        (None, _, _) => {
            return Err(usage(format!(
                "missing --vcpus N in guest mode '{}'",
                args.mode.name()
            )));
        }
    };
    if args.dump_vmsa && (ovmf_hash || mode == SevMode::Sev) {
        return Err(usage(
            "--dump-vmsa is only available in the seves, snp and snp:svsm modes",
        ));
    }
    // Unlike sev-snp-measure 0.0.13, family 0 and signature 0 are accepted (fixed upstream
    // after 0.0.13).
    let signature = match args.cpu.signature().map_err(usage)? {
        Some(s) => s,
        None if args.vmm_type == VmmType::Qemu
            && mode.has_vmsas()
            && !ovmf_hash
            && args.igvm.is_none()
            && args.krun_qboot.is_none() =>
        {
            return Err(usage(format!(
                "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
                args.mode.name()
            )));
        }
        None => CpuSignature(0),
    };
    let mut cfg = LaunchConfig::new(mode, vcpus, signature, args.vmm_type);
    // sev-snp-measure ignores --guest-features for seves (KVM's legacy and INIT2 defaults: 0);
    // a host profile decides them, and checks the ones given.
    if mode == SevMode::Snp {
        cfg.guest_features = SevFeatures::from_bits_retain(args.guest_features.unwrap_or(0x1));
    }
    args.profile
        .apply(&mut cfg, args.guest_features, args.igvm.is_some())
        .map_err(usage)?;
    let hash = |what: &str, h: &Option<String>, default: [u8; 32]| -> Result<[u8; 32], Failure> {
        match h {
            None => Ok(default),
            Some(t) => vmsa_core::hex::parse::<32>(t.trim())
                .ok_or_else(|| usage(format!("--{what}: 64 hex digits (a SHA-256), not {t:?}"))),
        }
    };
    cfg.kernel = match &args.kernel {
        None if args.kernel_hash.is_some() => Some(SevHashes {
            kernel: hash("kernel-hash", &args.kernel_hash, [0; 32])?,
            initrd: hash("initrd-hash", &args.initrd_hash, SevHashes::sha256(b""))?,
            cmdline: hash(
                "append-hash",
                &args.append_hash,
                SevHashes::cmdline_hash(None),
            )?,
        }),
        None => None,
        Some(k) => Some(SevHashes {
            kernel: files::sha256(k).map_err(fail)?,
            initrd: match &args.initrd {
                Some(i) => files::sha256(i).map_err(fail)?,
                None => SevHashes::sha256(b""),
            },
            cmdline: SevHashes::cmdline_hash(args.append.as_deref()),
        }),
    };
    cfg.igvm = IgvmOptions {
        native_zero: args.native_zero,
        profile: args.igvm_profile,
    };
    cfg.svsm = args.svsm_profile;
    Ok(cfg)
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

fn measure(args: &Args) -> Result<(), Failure> {
    let (digest, cfg, items, _) = compute(args, false)?;
    if let Some(tik_path) = &args.tik {
        return print_launch_measure(args, tik_path, &digest);
    }
    print(args, &cfg, &digest, &items.items)
}

/// `vmsa measure`'s arguments, parsed from words (`vmsa id-block … -- ARGS`, `vmsa verify …
/// -- ARGS`): the launch only, so `--dump-vmsa`, `--tik`, `--json` and `--explain` are refused,
/// and an IGVM file's own ID block is not checked (the caller compares digests itself).
pub fn parse_launch(words: &[String]) -> Result<Args, String> {
    use clap::Parser;
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    struct Launch {
        #[command(flatten)]
        measure: Args,
    }
    let l = Launch::try_parse_from(words).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!("the launch after --: {first}")
    })?;
    let mut m = l.measure;
    m.ignore_idblock = true;
    if m.dump_vmsa || m.tik.is_some() || m.json || m.explain {
        return Err(
            "the launch after --: --dump-vmsa, --tik, --json and --explain are for vmsa measure"
                .into(),
        );
    }
    Ok(m)
}

/// The launch digest `vmsa measure ARGS` prints (for `vmsa id-block`), or why there is none:
/// the message `vmsa measure` would print.
pub fn launch_digest(args: &Args) -> Result<Vec<u8>, String> {
    match compute(args, false) {
        Ok((digest, _, _, _)) => Ok(digest),
        Err(Failure::Usage(m) | Failure::Measure(m)) => Err(m),
    }
}

/// Every vCPU's launch VMSA of the launch `vmsa measure ARGS` measures (`vmsa capture`).
pub fn launch_vmsas(args: &Args) -> Result<Vec<vmsa_core::Vmsa>, String> {
    match compute(args, true) {
        Ok((_, _, _, vmsas)) => Ok(vmsas),
        Err(Failure::Usage(m) | Failure::Measure(m)) => Err(m),
    }
}

/// A launch's VMSAs, when asked for.
fn pages(l: &Launch<'_, '_>, want: bool) -> Result<Vec<vmsa_core::Vmsa>, Failure> {
    match want {
        false => Ok(Vec::new()),
        true => l
            .vmsas()
            .map(|v| v.map(|v| v.vmsa))
            .collect::<Result<_, _>>()
            .map_err(fail),
    }
}

/// The digest, the resolved configuration, the measured items (`--dump-vmsa` written) and,
/// with `vmsas`, every vCPU's launch VMSA.
#[allow(clippy::type_complexity)]
fn compute(
    args: &Args,
    vmsas: bool,
) -> Result<(Vec<u8>, LaunchConfig, Items, Vec<vmsa_core::Vmsa>), Failure> {
    let mut cfg = config(args)?;
    let seed = match &args.snp_ovmf_hash {
        None => None,
        Some(_) if args.mode.mode != SevMode::Snp || args.mode.ovmf_hash => {
            return Err(fail("SNP OVMF hash only works with SNP"));
        }
        Some(h) => Some(
            vmsa_core::hex::parse::<48>(h)
                .ok_or_else(|| fail(format!("--snp-ovmf-hash '{h}' is not 48 bytes of hex")))?,
        ),
    };
    let items = Items {
        keep: args.explain || args.json,
        items: Vec::new(),
    };
    let hasher = Parallel::all_cores();
    if let Some(path) = &args.igvm {
        if args.mode.ovmf_hash {
            return Err(usage(
                "snp:ovmf-hash measures OVMF firmware, not IGVM files",
            ));
        }
        if args.dump_vmsa || args.kernel.is_some() || args.snp_ovmf_hash.is_some() {
            return Err(usage(
                "--dump-vmsa, --kernel and --snp-ovmf-hash apply to OVMF firmware, not to --igvm (use `vmsa reset --igvm`)",
            ));
        }
        let at = |e: &dyn std::fmt::Display| fail(format!("{}: {e}", path.display()));
        let bytes = files::read(path, limits::IGVM).map_err(fail)?;
        let fw = Firmware::igvm_for_mode(&bytes, cfg.mode).map_err(|e| at(&e))?;
        if let (None, Some(n)) = (args.vcpus, fw.igvm_vcpus()) {
            cfg.vcpus = n;
        }
        let l = Launch::new(&fw, &cfg).map_err(|e| {
            fidelity_report(&fw, &cfg, &e);
            at(&e)
        })?;
        let (digest, items) = l.digest(&hasher, items).map_err(|e| at(&e))?;
        if let Some(ld) = l.id_block_ld() {
            if ld[..] != *digest.bytes() && !args.ignore_idblock {
                return Err(at(&format_args!(
                    "the calculated measurement {} does not match the SNP_ID_BLOCK's expected {} (use --ignore-idblock to print it anyway)",
                    hex(digest.bytes()),
                    hex(&ld)
                )));
            }
        }
        let v = pages(&l, vmsas)?;
        return Ok((digest.bytes().to_vec(), cfg, items, v));
    }
    if let Some(qboot) = &args.krun_qboot {
        return krun(args, cfg, qboot, items, &hasher, vmsas);
    }
    let path = args
        .ovmf
        .as_deref()
        .ok_or_else(|| usage("--ovmf PATH is required"))?;
    let image = FirmwareFile::open(path, MAX_FIRMWARE_SIZE).map_err(fail)?;
    let fw =
        OvmfImage::parse(image.bytes()).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    if args.mode.ovmf_hash {
        let (d, items) = launch::firmware_digest(image.bytes(), &hasher, items)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        return Ok((d.to_vec(), cfg, items, Vec::new()));
    }
    let svsm_image;
    let fw = match &args.svsm {
        Some(svsm_path) if args.mode.svsm => {
            if args.snp_ovmf_hash.is_some() {
                return Err(fail(launch::LaunchError::SvsmSeed));
            }
            let vars_size = match (&args.vars_file, args.vars_size) {
                (Some(f), _) => std::fs::metadata(f)
                    .map_err(|e| fail(format!("{}: {e}", f.display())))?
                    .len(),
                (None, Some(n)) => n,
                (None, None) => {
                    return Err(usage("snp:svsm mode requires --vars-size or --vars-file"));
                }
            };
            svsm_image = FirmwareFile::open(svsm_path, MAX_FIRMWARE_SIZE).map_err(fail)?;
            let svsm = OvmfImage::parse(svsm_image.bytes())
                .map_err(|e| fail(format!("{}: {e}", svsm_path.display())))?;
            Firmware::Svsm {
                ovmf: fw,
                svsm,
                vars_size,
            }
        }
        _ => Firmware::Ovmf(fw),
    };
    let l = Launch::new(&fw, &cfg).map_err(fail)?;
    let (digest, items) = match seed {
        Some(seed) => l.digest_from_seed(seed, items),
        None => l.digest(&hasher, items),
    }
    .map_err(fail)?;
    if args.dump_vmsa {
        dump_vmsas(&l)?;
    }
    let v = pages(&l, vmsas)?;
    Ok((digest.bytes().to_vec(), cfg, items, v))
}

/// `--dump-vmsa`: every launch VMSA as vmsaN.bin in the current directory.
fn dump_vmsas(l: &Launch<'_, '_>) -> Result<(), Failure> {
    let vmsas = l.vmsas().collect::<Result<Vec<_>, _>>().map_err(fail)?;
    write_pages(
        Path::new("."),
        vmsas.iter().map(|v| (v.cpu_index, &v.vmsa)),
        Existing::Overwrite,
    )
    .map_err(fail)
}

/// A libkrun launch (`--krun-qboot`): libkrunfw-sev's bundles, libkrun's layout.
#[allow(clippy::type_complexity)]
fn krun(
    args: &Args,
    cfg: LaunchConfig,
    qboot: &Path,
    items: Items,
    hasher: &Parallel,
    vmsas: bool,
) -> Result<(Vec<u8>, LaunchConfig, Items, Vec<vmsa_core::Vmsa>), Failure> {
    use vmsa_core::launch::krun::{KrunImages, KrunRegs};
    if args.mode.ovmf_hash
        || args.mode.svsm
        || args.kernel.is_some()
        || args.snp_ovmf_hash.is_some()
    {
        return Err(usage(
            "--krun-qboot launches libkrunfw's bundles: not with snp:ovmf-hash, snp:svsm, --kernel or --snp-ovmf-hash",
        ));
    }
    let read = |p: &Option<PathBuf>, what: &str| match p {
        // (libkrunfw's bundles live in a shared library: 1 GiB is far beyond any)
        Some(p) => files::read(p, 1 << 30).map_err(fail),
        None => Err(usage(format!("--krun-qboot needs {what}"))),
    };
    let q = files::read(qboot, vmsa_core::launch::krun::KRUN_QBOOT_SIZE).map_err(fail)?;
    let (k, i) = (
        read(&args.krun_kernel, "--krun-kernel")?,
        read(&args.krun_initrd, "--krun-initrd")?,
    );
    let regs = match args.libkrun {
        Some(v) if v < vmsa_core::host::Version::new(1, 16) => KrunRegs::Programmed,
        _ => KrunRegs::Reset,
    };
    let fw = Firmware::Krun(KrunImages {
        qboot: &q,
        kernel: &k,
        kernel_gpa: args.krun_kernel_gpa,
        initrd: &i,
        ram_mib: args.ram_mib.unwrap_or(0),
        regs,
    });
    let l = Launch::new(&fw, &cfg).map_err(fail)?;
    let (digest, items) = l.digest(hasher, items).map_err(fail)?;
    if args.dump_vmsa {
        dump_vmsas(&l)?;
    }
    let v = pages(&l, vmsas)?;
    let cfg = *l.config();
    Ok((digest.bytes().to_vec(), cfg, items, v))
}

/// `--tik`: the LAUNCH_MEASURE blob (measure ‖ nonce) of an SEV/SEV-ES launch digest, printed
/// in base64 as `sevctl measurement build` prints it (or hex with `--output-format hex`).
fn print_launch_measure(args: &Args, tik: &str, ld: &[u8]) -> Result<(), Failure> {
    let ld: &[u8; 32] = ld
        .try_into()
        .map_err(|_| usage("--tik is for --mode sev and seves (their digest is SHA-256)"))?;
    let sixteen = |v: Vec<u8>| <[u8; 16]>::try_from(v.as_slice()).unwrap_or_default();
    let tik = sixteen(path_or_base64("--tik", tik, 16)?);
    let blob = match &args.launch_measure_blob {
        Some(b) => Some(path_or_base64("--launch-measure-blob", b, 48)?),
        None => None,
    };
    let nonce = match (&args.nonce, &blob) {
        (Some(n), _) => sixteen(path_or_base64("--nonce", n, 16)?),
        (None, Some(b)) => sixteen(b.get(32..).unwrap_or_default().to_vec()),
        (None, None) => {
            return Err(usage("--tik needs --nonce or --launch-measure-blob"));
        }
    };
    let input = vmsa_core::measure::sev::LaunchMeasureInput {
        ld,
        api_major: args.api_major.unwrap_or(0),
        api_minor: args.api_minor.unwrap_or(0),
        build: args.build.unwrap_or(0),
        policy: args.policy.unwrap_or(0),
        mnonce: &nonce,
    };
    let measure = vmsa_core::measure::sev::launch_measure(&input, &tik);
    let mut out = measure.to_vec();
    out.extend_from_slice(&nonce);
    crate::outln!(
        "{}",
        match args.output_format.unwrap_or(OutputFormat::Base64) {
            OutputFormat::Hex => hex(&out),
            OutputFormat::Base64 => base64(&out),
        }
    );
    if let Some(given) = blob.as_ref().and_then(|b| b.get(..32)) {
        if given != measure {
            return Err(fail(format!(
                "the platform's LAUNCH_MEASURE {} is not the one this launch gives ({}): the digest, the TIK, the API version, build or policy differ",
                base64(given),
                base64(&measure)
            )));
        }
    }
    Ok(())
}

/// The fidelity report of the vCPU a launch error names (QEMU would refuse its VP context, or
/// strict mode found fields KVM would not reproduce), on standard error: what is refused, and
/// which fields differ and why.
fn fidelity_report(fw: &Firmware<'_>, cfg: &LaunchConfig, e: &launch::LaunchError) {
    let cpu = match *e {
        launch::LaunchError::RefusedByQemu { cpu_index, .. }
        | launch::LaunchError::NotReproducible { cpu_index, .. } => cpu_index,
        _ => return,
    };
    // The same launch read as the file says, to look at that vCPU's context as given.
    let mut as_given = *cfg;
    as_given.igvm.profile = IgvmProfile::Spec;
    let Ok(l) = Launch::new(fw, &as_given) else {
        return;
    };
    let Ok(v) = l.vmsa(cpu) else { return };
    let f = l.fidelity(&v);
    crate::errln!("fidelity report of vCPU {cpu}'s VP context (what QEMU and KVM make of it):");
    for r in f.refusals() {
        crate::errln!("  refused: {r}");
    }
    for c in f.findings() {
        crate::errln!("  not reproduced: {c}");
    }
}

fn print(
    args: &Args,
    cfg: &LaunchConfig,
    digest: &[u8],
    items: &[MeasuredItem],
) -> Result<(), Failure> {
    let text = match (
        args.mode.ovmf_hash,
        args.output_format.unwrap_or(OutputFormat::Hex),
    ) {
        // sev-snp-measure prints the ovmf hash as hex whatever the format.
        (true, _) | (_, OutputFormat::Hex) => hex(digest),
        (_, OutputFormat::Base64) => base64(digest),
    };
    if args.json {
        print_json(args, cfg, &text, items)?;
    } else {
        if args.explain {
            print_explain(items);
        }
        if args.verbose && !args.mode.ovmf_hash {
            crate::outln!(
                "Calculated {} guest measurement: {text}",
                match args.mode.svsm {
                    true => "SEV_SNP_SVSM",
                    false => args.mode.mode.peer_name(),
                }
            );
        } else {
            crate::outln!("{text}");
        }
    }
    Ok(())
}

fn print_explain(items: &[MeasuredItem]) {
    crate::outln!(
        "{:>5}  {:<24} {:>14}  {:<10}  {:<22}  digest after",
        "#",
        "item",
        "gpa",
        "type",
        "contents"
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
        crate::outln!(
            "{i:>5}  {:<24} {gpa:>14}  {ty:<10}  {contents:<22}  {after}",
            it.kind.to_string()
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
    #[serde(skip_serializing_if = "Option::is_none")]
    host_kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qemu: Option<String>,
    measurement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<JsonItem>>,
}

fn print_json(
    args: &Args,
    cfg: &LaunchConfig,
    text: &str,
    items: &[MeasuredItem],
) -> Result<(), Failure> {
    let guest_features = match (args.mode.mode, &args.profile) {
        (SevMode::Snp, _) => cfg.guest_features.bits(),
        (SevMode::SevEs, p) if p.host_kernel.is_some() || p.qemu.is_some() => {
            cfg.guest_features.bits()
        }
        (SevMode::Sev | SevMode::SevEs, _) => 0,
    };
    let out = JsonOut {
        mode: args.mode.name(),
        vcpus: cfg.vcpus,
        vmm_type: cfg.vmm.name(),
        vcpu_sig: format!("{:#x}", cfg.signature.0),
        guest_features: format!("{guest_features:#x}"),
        host_kernel: args.profile.host_kernel.map(|v| v.to_string()),
        qemu: args.profile.qemu.map(|v| v.to_string()),
        measurement: text,
        items: args.explain.then(|| {
            items
                .iter()
                .map(|it| JsonItem {
                    item: it.kind.to_string(),
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
    crate::outln!("{}", to_json(&out).map_err(fail)?);
    Ok(())
}
