//! `vmsa run`: program real KVM vCPUs from the launch VMSAs of an OVMF image and run them, or
//! attempt the SEV-ES/SNP launch. With no arguments at all, `vmsa` runs [`main_job`].
use super::{CmdResult, read_file};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vmsa_core::Vmsa;
use vmsa_core::measure::ovmf::{SectionPolicy, sev_launch_digest, snp_update_metadata};
use vmsa_core::measure::{ItemKind, SevDigest, SnpDigest};
use vmsa_core::ovmf::{OvmfImage, gpa_ending_at_4g};
use vmsa_core::reset::{CpuSignature, LaunchConfig, SevMode, VmmType, launch_vmsas};
use vmsa_kvm::sev::{self, LaunchMode};
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{RunLimits, Vm, VmConfig};

/// Arguments of `vmsa run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// OVMF firmware image (mapped to end at 4 GiB; its SEV-ES reset block places the APs).
    #[arg(long, value_name = "FILE", required_unless_present = "igvm")]
    pub ovmf: Option<PathBuf>,
    /// IGVM file (its VP contexts are the launch VMSAs).
    #[arg(long, value_name = "FILE", conflicts_with = "ovmf")]
    pub igvm: Option<PathBuf>,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
    /// vCPU type whose CPUID signature goes in RDX (EPYC-v4, EPYC-Milan, ...).
    #[arg(long, value_name = "CPUTYPE", default_value = "EPYC-v4")]
    pub vcpu_type: String,
    /// Attempt the SEV launch (`sev-es` or `snp`) instead of a plain run, and report the
    /// measurement or why it failed.
    #[arg(long, value_name = "MODE", value_parser = ["sev-es", "snp"])]
    pub launch: Option<String>,
    /// SNP guest policy (SEV-ES: the 32-bit SEV policy).
    #[arg(long, value_name = "POLICY", default_value = "0x30000", value_parser = parse_int)]
    pub policy: u64,
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

fn parse_int(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

/// Runs `vmsa run`.
pub fn run(args: &Args) -> CmdResult {
    let signature = CpuSignature::named(&args.vcpu_type)
        .map_err(|e| format!("--vcpu-type {}: {e}", args.vcpu_type))?;
    if args.igvm.is_some() {
        return Err("--igvm: running IGVM VP contexts needs vmsa-core's IGVM VP-context reader, which is not in this build yet; use --ovmf".into());
    }
    let path = args.ovmf.as_ref().ok_or("--ovmf FILE is required")?;
    let image = read_file(path)?;
    let mode = match args.launch.as_deref() {
        Some("sev-es") => SevMode::SevEs,
        _ => SevMode::Snp,
    };
    let vmsas = compute_vmsas(&image, mode, args.vcpus, signature)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let config = VmConfig {
        ram_size: args.ram_mib << 20,
        firmware: image,
        vcpus: vmsas.len(),
    };
    if let Some(m) = &args.launch {
        let lmode = if m == "snp" {
            LaunchMode::Snp
        } else {
            LaunchMode::SevEs
        };
        return attempt_launch(lmode, &vmsas, &config, args.policy);
    }
    let limits = RunLimits {
        max_exits: args.max_exits,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    run_vcpus(&vmsas, &config, args.strict, limits)
}

/// The launch VMSAs of an OVMF image, one per vCPU, as QEMU and KVM make them.
fn compute_vmsas(
    image: &[u8],
    mode: SevMode,
    vcpus: u32,
    sig: CpuSignature,
) -> Result<Vec<Vmsa>, String> {
    let fw = OvmfImage::parse(image).map_err(|e| e.to_string())?;
    let cfg = LaunchConfig::new(mode, vcpus, sig, VmmType::Qemu);
    let l = launch_vmsas(&fw, &cfg).map_err(|e| e.to_string())?;
    Ok(l.pages().map(|(_, v)| v.clone()).collect())
}

fn linear_start(v: &Vmsa) -> u64 {
    v.cs.base.wrapping_add(v.rip)
}

/// Programs and runs the vCPUs; prints, per vCPU, where it started, the fidelity of its VMSA,
/// and how it exited.
fn run_vcpus(vmsas: &[Vmsa], config: &VmConfig, strict: bool, limits: RunLimits) -> CmdResult {
    let mut vm = Vm::new(config).map_err(|e| e.to_string())?;
    let counts = vm.program(vmsas, strict).map_err(|e| e.to_string())?;
    let runs = vm.run(limits).map_err(|e| e.to_string())?;
    let mut ok = true;
    for (r, v) in runs.iter().zip(&vm.vcpus) {
        let start = vmsas.get(r.index).map_or(0, linear_start);
        println!(
            "vCPU {}: started at {:#x} (CS base {:#x} + RIP {:#x}), programmed with {} ioctls",
            r.index,
            start,
            vmsas.get(r.index).map_or(0, |v| v.cs.base),
            vmsas.get(r.index).map_or(0, |v| v.rip),
            counts.get(r.index).map_or(0, |c| c.0),
        );
        if let Some(f) = &v.fidelity {
            print!("{f}");
        }
        println!(
            "  exited: {} after {} exits; last exit {:?}",
            r.end, r.exits, r.last_exit
        );
        if !r.reports.is_empty() {
            let words: Vec<String> = r.reports.iter().map(|w| format!("{w:#x}")).collect();
            println!(
                "  reported on port {:#x}: {}",
                vmsa_kvm::vm::REPORT_PORT,
                words.join(" ")
            );
        }
        ok &= matches!(r.end, vmsa_kvm::vm::RunEnd::Halted);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn attempt_launch(mode: LaunchMode, vmsas: &[Vmsa], config: &VmConfig, policy: u64) -> CmdResult {
    println!("{} launch of {} vCPUs:", mode.name(), vmsas.len());
    let (report, result) = sev::launch(mode, vmsas, config, policy);
    for step in &report.done {
        println!("  ok: {step}");
    }
    if let Some(m) = &report.measurement {
        println!("  measurement: {}", hex(&m.digest));
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            println!("  FAILED: {e}");
            println!("  (the VM and everything opened for it were closed)");
            Ok(ExitCode::from(1))
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SEV-ES and SNP launch digests of an OVMF image booted with `vcpus` vCPUs (QEMU path), as
/// `vmsa measure` and sev-snp-measure compute them.
fn digests(image: &[u8], vcpus: u32, sig: CpuSignature) -> Result<(String, String), String> {
    let fw = OvmfImage::parse(image).map_err(|e| e.to_string())?;
    let es = launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::SevEs, vcpus, sig, VmmType::Qemu),
    )
    .map_err(|e| e.to_string())?;
    let (sev_es, _) = sev_launch_digest(
        SevDigest::new(),
        &fw,
        image,
        None,
        es.pages().map(|(_, v)| v),
    )
    .map_err(|e| e.to_string())?;
    let snp = launch_vmsas(
        &fw,
        &LaunchConfig::new(SevMode::Snp, vcpus, sig, VmmType::Qemu),
    )
    .map_err(|e| e.to_string())?;
    let mut d = SnpDigest::new();
    d.update_normal_pages(ItemKind::Firmware, gpa_ending_at_4g(image.len()), image)
        .map_err(|e| e.to_string())?;
    snp_update_metadata(&mut d, &fw, None, SectionPolicy::QEMU).map_err(|e| e.to_string())?;
    for (cpu, page) in snp.pages() {
        d.update_vmsa(cpu, page);
    }
    Ok((hex(&sev_es), hex(&d.ld())))
}

/// The main job (`cargo run --release` with no arguments): the built-in test firmware, 4 vCPUs,
/// their launch VMSAs computed and shown, programmed into KVM and run, with the SEV-ES and SNP
/// digests they would have. Without `/dev/kvm` it does the rest and says so.
pub fn main_job() -> CmdResult {
    const VCPUS: u32 = 4;
    let sig = CpuSignature::named("EPYC-v4").map_err(|e| e.to_string())?;
    let image = testfw::image();
    println!(
        "vmsa main job: the built-in test firmware ({} KiB ending at 4 GiB; BSP at the reset vector \
         {:#x}, APs at the SEV-ES reset block address {:#x}), {VCPUS} vCPUs, EPYC-v4",
        image.len() / 1024,
        testfw::RESET_VECTOR,
        testfw::AP_RESET_ADDR
    );
    let vmsas = compute_vmsas(&image, SevMode::Snp, VCPUS, sig)?;
    println!("\nlaunch VMSA of the BSP (vCPU 0), SNP, QEMU + KVM:");
    super::inspect::print_vmsa(&vmsas[0], false);
    if let Some(ap) = vmsas.get(1) {
        println!("\nthe APs' VMSA differs from the BSP's in:");
        for d in vmsa_core::vmsa::diff(&vmsas[0], ap) {
            println!("  {:<8} {} -> {}", d.field.name, d.left, d.right);
        }
    }
    let (sev_es, snp) = digests(&image, VCPUS, sig)?;
    println!("\nlaunch digests ({VCPUS} vCPUs, vcpu-type EPYC-v4, vmm-type QEMU):");
    println!("  SEV-ES: {sev_es}");
    println!("  SNP:    {snp}");
    println!();
    if !std::path::Path::new("/dev/kvm").exists() {
        println!("no /dev/kvm on this machine: the vCPUs were computed but not run.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("programming {VCPUS} KVM vCPUs from these VMSAs (strict) and running them:");
    let config = VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: image,
        vcpus: VCPUS as usize,
    };
    let limits = RunLimits {
        max_exits: 1000,
        timeout: Duration::from_secs(5),
    };
    let code = run_vcpus(&vmsas, &config, true, limits)?;
    Ok(code)
}
