//! `vmsa run`: program real KVM vCPUs from the launch VMSAs of an OVMF image or an IGVM file
//! and run them, or attempt the SEV-ES/SNP launch. With no arguments at all, `vmsa` runs
//! [`main_job`].
use super::CmdResult;
use super::args::{CpuArgs, parse_int, parse_mode};
use super::files::{self, FirmwareFile, limits};
use super::output::{hex, print_vmsa};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use vmsa_core::id_block::{IdAuthInfo, IdBlock};
use vmsa_core::igvm::igvm_defs::IgvmVariableHeaderType;
use vmsa_core::igvm::{IgvmFile, PlatformChoice, header_type_name, platform_name};
use vmsa_core::kvm::VmmPath;
use vmsa_core::launch::{
    self, Firmware, Launch, LaunchConfig, LaunchVmsa, MAX_FIRMWARE_SIZE, VmsaSource,
};
use vmsa_core::measure::{NoObserver, Sha2Pages};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use vmsa_kvm::sev;
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{RunLimits, Vm, VmConfig};

/// Arguments of `vmsa run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// OVMF firmware image (mapped to end at 4 GiB; its SEV-ES reset block places the APs).
    #[arg(long, value_name = "FILE", required_unless_present = "igvm")]
    pub ovmf: Option<PathBuf>,
    /// IGVM file: its page data is loaded into guest RAM, its VP contexts are the launch
    /// VMSAs (the vCPUs without one get the reset state).
    #[arg(long, value_name = "FILE", conflicts_with = "ovmf")]
    pub igvm: Option<PathBuf>,
    /// With --igvm: the platform to load (snp or sev-es); default the strongest.
    #[arg(long, value_name = "PLATFORM", conflicts_with = "ovmf")]
    pub platform: Option<String>,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
    /// The vCPU signature that goes in RDX (default: --vcpu-type EPYC-v4).
    #[command(flatten)]
    pub cpu: CpuArgs,
    /// Attempt the SEV launch (`sev-es` or `snp`) instead of a plain run, and report the
    /// measurement or why it failed.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub launch: Option<SevMode>,
    /// SNP guest policy (SEV-ES: the 32-bit SEV policy); default 0x30000 (QEMU's), or with
    /// --igvm the file's GUEST_POLICY.
    #[arg(long, value_name = "POLICY", value_parser = parse_int)]
    pub policy: Option<u64>,
    /// With --launch snp: the ID block and its authentication information QEMU's
    /// `sev-snp-guest` takes (`id-block=BASE64,id-auth=BASE64`, as `vmsa id-block` prints it).
    /// With --igvm the file's SNP_ID_BLOCK is used, as QEMU does.
    #[arg(long, value_name = "PAIR", requires = "launch")]
    pub id_block: Option<String>,
    /// With --launch snp and an ID block: AUTHOR_KEY_EN (QEMU `author-key-enabled=on`).
    #[arg(long, requires = "launch")]
    pub author_key_enabled: bool,
    /// With --launch snp: HOST_DATA, 32 bytes (base64 or hex; QEMU `host-data`).
    #[arg(long, value_name = "DATA", requires = "launch")]
    pub host_data: Option<String>,
    /// With --launch snp: VCEK_DISABLED (QEMU `vcek-disabled=on`).
    #[arg(long, requires = "launch")]
    pub vcek_disabled: bool,
    /// Refuse VMSAs with any field the vCPUs cannot hold, before any vCPU is touched.
    #[arg(long)]
    pub strict: bool,
    /// Guest RAM at GPA 0, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub ram_mib: u64,
    /// Stop the vCPUs after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Stop a vCPU after this many exits.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_exits: u64,
}

/// Runs `vmsa run`.
pub fn run(args: &Args) -> CmdResult {
    let signature = match args.cpu.signature()? {
        Some(s) => s,
        None => CpuSignature::named("EPYC-v4").map_err(|e| e.to_string())?,
    };
    if args.launch == Some(SevMode::Sev) {
        return Err("--launch sev: plain SEV guests are not launched here (sev-es or snp)".into());
    }
    let limits = RunLimits {
        max_exits: args.max_exits,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    if let Some(path) = &args.igvm {
        return run_igvm(args, path, signature, limits);
    }
    let path = args.ovmf.as_ref().ok_or("--ovmf FILE is required")?;
    let image = FirmwareFile::open(path, MAX_FIRMWARE_SIZE)?;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let fw = Firmware::Ovmf(OvmfImage::parse(image.bytes()).map_err(|e| at(&e))?);
    let mode = args.launch.unwrap_or(SevMode::Snp);
    let cfg = LaunchConfig::new(mode, args.vcpus, signature, VmmType::Qemu);
    let launch = Launch::new(&fw, &cfg).map_err(|e| at(&e))?;
    let vmsas = pages(&launch).map_err(|e| at(&e))?;
    let config = VmConfig {
        ram_size: args.ram_mib << 20,
        firmware: image.bytes().to_vec(),
        vcpus: vmsas.len(),
    };
    if let Some(m) = args.launch {
        let policy = args.policy.unwrap_or(sev::SNP_POLICY_DEFAULT);
        let finish = finish(args, None)?;
        crate::outln!("{} launch of {} vCPUs:", m.name(), vmsas.len());
        let (report, result) = sev::launch_with(&launch, &config, policy, &finish);
        return print_launch(&report, result);
    }
    run_vcpus(&vmsas, &config, args.strict, limits, |_| Ok(()))
}

/// Every vCPU's launch VMSA page.
fn pages(launch: &Launch<'_, '_>) -> Result<Vec<Vmsa>, launch::LaunchError> {
    launch.vmsas().map(|v| v.map(|v| v.vmsa)).collect()
}

/// `vmsa run --igvm FILE`: the VP contexts of the selected SEV-ES/SNP platform as launch VMSAs
/// (vmsa-kvm programs every register, `VmmPath::Direct`), the platform's page data in guest RAM
/// (no firmware image: RAM covers everything the file places), then the run.
fn run_igvm(args: &Args, path: &Path, sig: CpuSignature, limits: RunLimits) -> CmdResult {
    let bytes = files::read(path, limits::IGVM)?;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = IgvmFile::parse(&bytes).map_err(|e| fail(&e))?;
    let choice = PlatformChoice::from_name(args.platform.as_deref()).ok_or_else(|| {
        let name = args.platform.as_deref().unwrap_or_default();
        format!("--platform {name:?}: expected snp or sev-es")
    })?;
    let platform = file.select(choice).map_err(|e| fail(&e))?;
    let mut cfg = LaunchConfig::new(SevMode::Snp, args.vcpus, sig, VmmType::Qemu);
    cfg.path = VmmPath::Direct;
    let mask = platform.compatibility_mask;
    let extent = vmsa_core::igvm::load::extent(&file, mask)
        .map_err(|e| fail(&e))?
        .unwrap_or(0);
    let fw = Firmware::Igvm { file, platform };
    let launch = Launch::new(&fw, &cfg).map_err(|e| fail(&e))?;
    if launch.vcpus() == 0 {
        return Err(fail(
            &"the selected platform has no VMSAs (only sev-es and snp do)",
        ));
    }
    let entries: Vec<LaunchVmsa> = launch
        .vmsas()
        .collect::<Result<_, _>>()
        .map_err(|e| fail(&e))?;
    crate::outln!(
        "IGVM {}: platform {} (mask {:#x}), {} vCPUs",
        path.display(),
        platform_name(platform.platform_type),
        platform.compatibility_mask,
        entries.len()
    );
    for e in &entries {
        match e.source {
            VmsaSource::Context { at, .. } => {
                crate::outln!(
                    "vCPU {}: VP context ({at}), VMSA GPA {:#x}",
                    e.cpu_index,
                    e.gpa
                );
                // What an SEV launch of this context would not reproduce (the run below
                // programs it as it is).
                let f = launch.fidelity(e);
                for r in f.refusals() {
                    crate::outln!("  in an SEV launch KVM would refuse it: {r}");
                }
                for c in f.findings() {
                    crate::outln!("  in an SEV launch KVM would change {c}");
                }
            }
            VmsaSource::Reset => crate::outln!("vCPU {}: no VP context, reset state", e.cpu_index),
        }
    }
    let ram = (args.ram_mib << 20).max(extent.div_ceil(2 << 20) * (2 << 20));
    if ram > vmsa_kvm::vm::FOUR_GIB {
        return Err(fail(&format_args!(
            "the file places memory up to {extent:#x}; this loader maps guest RAM below 4 GiB only"
        )));
    }
    let config = VmConfig {
        ram_size: ram,
        firmware: Vec::new(),
        vcpus: entries.len(),
    };
    let Firmware::Igvm { file, platform } = &fw else {
        return Err(fail(&"not an IGVM file"));
    };
    if let Some(m) = args.launch {
        let platform_mode = launch.mode();
        if m != platform_mode {
            return Err(fail(&format_args!(
                "--launch {m}, but the selected IGVM platform is {platform_mode} (pick the platform with --platform {m})"
            )));
        }
        let policy = args
            .policy
            .or_else(|| launch::igvm_guest_policy(file, platform))
            .unwrap_or(sev::SNP_POLICY_DEFAULT);
        // QEMU's IGVM path: the platform's SNP_ID_BLOCK, with the file's policy.
        let from_file = match (m, &args.id_block) {
            (SevMode::Snp, None) => launch::igvm_id_block(file, platform, policy),
            _ => None,
        };
        let finish = finish(args, from_file)?;
        crate::outln!("{m} launch of {} vCPUs from IGVM:", entries.len());
        let (report, result) = sev::launch_with(&launch, &config, policy, &finish);
        if let Some(d) = &report.file_digest_difference {
            crate::outln!(
                "  note: KVM's launch digest differs from the file's own (vmsa measure --igvm): {d}"
            );
        }
        return print_launch(&report, result);
    }
    let vmsas: Vec<Vmsa> = entries.into_iter().map(|e| e.vmsa).collect();
    run_vcpus(&vmsas, &config, args.strict, limits, |vm| {
        let r = vm.load_igvm(file, mask, args.vcpus).map_err(|e| fail(&e))?;
        crate::outln!(
            "loaded into {} MiB of guest RAM: {} data pages, {} zero pages, {} parameter areas, {} parameters ({:#x} bytes)",
            ram >> 20,
            r.data_pages,
            r.zero_pages,
            r.parameter_areas,
            r.parameters,
            r.bytes
        );
        for t in &r.not_supplied {
            crate::outln!(
                "  parameter {} not supplied by this loader (left as the area's initial bytes)",
                header_type_name(IgvmVariableHeaderType(*t)).unwrap_or("(unknown)")
            );
        }
        Ok(())
    })
}

/// What `SNP_LAUNCH_FINISH` takes from the flags (`--id-block`, or the IGVM file's block with
/// QEMU's AUTHOR_KEY_EN from `--author-key-enabled` alone; `--host-data`, `--vcek-disabled`).
fn finish(
    args: &Args,
    from_file: Option<(IdBlock, IdAuthInfo, bool)>,
) -> Result<sev::SnpFinish, String> {
    if args.launch != Some(SevMode::Snp)
        && (args.id_block.is_some() || args.host_data.is_some() || args.vcek_disabled)
    {
        return Err("--id-block, --host-data and --vcek-disabled are for --launch snp".into());
    }
    let pair = match &args.id_block {
        Some(p) => Some(super::id_block::parse_pair("--id-block", p)?),
        None => from_file.map(|(b, a, _)| (b, a)),
    };
    if args.author_key_enabled && pair.is_none() {
        return Err("--author-key-enabled needs an ID block".into());
    }
    let host_data = match &args.host_data {
        Some(t) => {
            let v = super::args::hex_or_base64("--host-data", t, 32, false)?;
            <[u8; 32]>::try_from(v.as_slice()).map_err(|_| "--host-data: 32 bytes")?
        }
        None => [0; 32],
    };
    Ok(sev::SnpFinish {
        id: pair.map(|(block, auth)| sev::SnpIdBlock {
            block,
            auth: Box::new(auth),
            author_key_en: args.author_key_enabled,
        }),
        host_data,
        vcek_disabled: args.vcek_disabled,
    })
}

/// The launch VMSAs of an OVMF image, one per vCPU, as QEMU and KVM make them.
fn compute_launch(
    image: &[u8],
    mode: SevMode,
    vcpus: u32,
    sig: CpuSignature,
) -> Result<Vec<Vmsa>, String> {
    let fw = Firmware::Ovmf(OvmfImage::parse(image).map_err(|e| e.to_string())?);
    let cfg = LaunchConfig::new(mode, vcpus, sig, VmmType::Qemu);
    let launch = Launch::new(&fw, &cfg).map_err(|e| e.to_string())?;
    pages(&launch).map_err(|e| e.to_string())
}

fn linear_start(v: &Vmsa) -> u64 {
    v.cs.base.wrapping_add(v.rip)
}

/// Makes the VM, fills its memory with `load`, programs and runs the vCPUs; prints, per vCPU,
/// where it started, the fidelity of its VMSA, and how it exited.
fn run_vcpus(
    vmsas: &[Vmsa],
    config: &VmConfig,
    strict: bool,
    limits: RunLimits,
    load: impl FnOnce(&Vm) -> Result<(), String>,
) -> CmdResult {
    let mut vm = Vm::new(config).map_err(|e| e.to_string())?;
    load(&vm)?;
    let counts = vm.program(vmsas, strict).map_err(|e| e.to_string())?;
    let runs = vm.run(limits).map_err(|e| e.to_string())?;
    let mut ok = true;
    for (r, v) in runs.iter().zip(&vm.vcpus) {
        let start = vmsas.get(r.index).map_or(0, linear_start);
        crate::outln!(
            "vCPU {}: programmed to start at {:#x} (CS base {:#x} + RIP {:#x}) with {} ioctls",
            r.index,
            start,
            vmsas.get(r.index).map_or(0, |v| v.cs.base),
            vmsas.get(r.index).map_or(0, |v| v.rip),
            counts.get(r.index).map_or(0, |c| c.0),
        );
        match r.first_exit_at {
            Some(p) => crate::outln!(
                "  first exit at {:#x} (CS {:#06x}, base {:#x}, RIP {:#x}): {}",
                p.linear(),
                p.cs_selector,
                p.cs_base,
                p.rip,
                r.first_exits
                    .first()
                    .map_or("-".into(), ToString::to_string)
            ),
            None => crate::outln!("  no exit was taken"),
        }
        if let Some(f) = &v.report {
            crate::out!("{f}");
        }
        let last = r
            .last_exit
            .as_ref()
            .map_or("none".into(), ToString::to_string);
        crate::outln!(
            "  ended: {} after {} exits; last exit: {last}",
            r.end,
            r.exits
        );
        report_registers(r, v);
        ok &= matches!(r.end, vmsa_kvm::vm::RunEnd::Halted);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The registers a test program reported on port 0xe0, against what the vCPU was programmed
/// with (what KVM holds of the VMSA, `ProgramReport::expected`); other words as they came.
fn report_registers(r: &vmsa_kvm::vm::VcpuRun, v: &vmsa_kvm::vm::Vcpu) {
    if r.reports.is_empty() {
        return;
    }
    let port = vmsa_kvm::vm::REPORT_PORT;
    let words: Vec<String> = r.reports.iter().map(|w| format!("{w:#x}")).collect();
    crate::outln!("  reported on port {port:#x}: {}", words.join(" "));
    let expected = v
        .report
        .as_ref()
        .and_then(|p| testfw::expected_report(p.expected(), r.index == 0, &r.reports));
    let Some(expected) = expected else {
        return;
    };
    // The marker is the program's own, not a register.
    let registers = expected.len() - 1;
    let diff = testfw::compare(&expected, &r.reports);
    if diff.is_empty() {
        crate::outln!(
            "  registers reported on port {port:#x}: {registers} of {registers} as programmed"
        );
        return;
    }
    crate::outln!(
        "  registers reported on port {port:#x}: {} of {registers} as programmed; these differ from what the vCPU was programmed with (the KVM model does not explain them):",
        registers.saturating_sub(diff.len())
    );
    for (name, want, got) in diff {
        let show = |v: Option<u32>| v.map_or("-".into(), |v| format!("{v:#x}"));
        crate::outln!(
            "    {name}: programmed {}, reported {}",
            show(want),
            show(got)
        );
    }
}

/// Prints what a launch did, its expected digest, and how it ended.
fn print_launch(report: &sev::LaunchReport, result: Result<(), sev::SevError>) -> CmdResult {
    for step in &report.done {
        crate::outln!("  ok: {step}");
    }
    if let Some(m) = &report.measurement {
        crate::outln!("  measurement: {}", hex(&m.digest));
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            crate::outln!("  FAILED: {e}");
            crate::outln!("  (the VM and everything opened for it were closed)");
            Ok(ExitCode::from(1))
        }
    }
}

/// The SEV-ES and SNP launch digests of an OVMF image booted with `vcpus` vCPUs (QEMU path), as
/// `vmsa measure` and sev-snp-measure compute them.
fn digests(image: &[u8], vcpus: u32, sig: CpuSignature) -> Result<(String, String), String> {
    let fw = Firmware::Ovmf(OvmfImage::parse(image).map_err(|e| e.to_string())?);
    let digest = |mode| -> Result<String, String> {
        let cfg = LaunchConfig::new(mode, vcpus, sig, VmmType::Qemu);
        let launch = Launch::new(&fw, &cfg).map_err(|e| e.to_string())?;
        let (d, NoObserver) = launch
            .digest(&Sha2Pages, NoObserver)
            .map_err(|e| e.to_string())?;
        Ok(hex(d.bytes()))
    };
    Ok((digest(SevMode::SevEs)?, digest(SevMode::Snp)?))
}

/// The main job (`cargo run --release` with no arguments): the built-in test firmware, 4 vCPUs,
/// their launch VMSAs computed and shown, programmed into KVM and run, with the SEV-ES and SNP
/// digests they would have. Without `/dev/kvm` it does the rest and says so.
pub fn main_job() -> CmdResult {
    const VCPUS: u32 = 4;
    let sig = CpuSignature::named("EPYC-v4").map_err(|e| e.to_string())?;
    let image = testfw::image();
    crate::outln!(
        "vmsa main job: the built-in test firmware ({} KiB ending at 4 GiB; BSP at the reset vector \
         {:#x}, APs at the SEV-ES reset block address {:#x}), {VCPUS} vCPUs, EPYC-v4",
        image.len() / 1024,
        testfw::RESET_VECTOR,
        testfw::AP_RESET_ADDR
    );
    let vmsas = compute_launch(&image, SevMode::Snp, VCPUS, sig)?;
    crate::outln!("\nlaunch VMSA of the BSP (vCPU 0), SNP, QEMU + KVM:");
    print_vmsa(&vmsas[0], false)?;
    if let Some(ap) = vmsas.get(1) {
        crate::outln!("\nthe APs' VMSA differs from the BSP's in:");
        for d in vmsa_core::vmsa::diff(&vmsas[0], ap) {
            crate::outln!("  {:<8} {} -> {}", d.field.name, d.left, d.right);
        }
    }
    let (sev_es, snp) = digests(&image, VCPUS, sig)?;
    crate::outln!("\nlaunch digests ({VCPUS} vCPUs, vcpu-type EPYC-v4, vmm-type QEMU):");
    crate::outln!("  SEV-ES: {sev_es}");
    crate::outln!("  SNP:    {snp}");
    crate::outln!();
    if !std::path::Path::new("/dev/kvm").exists() {
        crate::outln!("no /dev/kvm on this machine: the vCPUs were computed but not run.");
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!("programming {VCPUS} KVM vCPUs from these VMSAs (strict) and running them:");
    let config = VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: image,
        vcpus: VCPUS as usize,
    };
    let limits = RunLimits {
        max_exits: 1000,
        timeout: Duration::from_secs(5),
    };
    let code = run_vcpus(&vmsas, &config, true, limits, |_| Ok(()))?;
    Ok(code)
}
