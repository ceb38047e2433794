//! Soak on real KVM (not a timed test; `scripts/soak.sh` runs it): creates, programs, runs and
//! destroys VMs in one process and shows that open file descriptors and resident memory stay
//! flat; then one VM with as many vCPUs as KVM allows (1024 here), every one programmed from
//! its launch VMSA, run, and its register report checked against what it was programmed with.
//!
//! `cargo run --release -p vmsa-kvm --example soak [VMS] [VCPUS_PER_VM]` (default 1000 and 2).
//! Exits 1 if a VM's vCPUs do not report what they were programmed with, or if descriptors or
//! RSS grow from the 10th VM to the last (RSS: more than 4 MiB).

use std::time::{Duration, Instant};
use vmsa_core::launch::{Firmware, Launch, LaunchConfig};
use vmsa_core::ovmf::OvmfImage;
use vmsa_core::reset::VmmType;
use vmsa_core::{CpuSignature, SevMode, Vmsa};
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{RunEnd, RunLimits, Vm, VmConfig};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn launch_vmsas(img: &[u8], vcpus: u32) -> Result<Vec<Vmsa>, String> {
    let fw = Firmware::Ovmf(OvmfImage::parse(img).map_err(|e| e.to_string())?);
    let cfg = LaunchConfig::new(SevMode::Snp, vcpus, CpuSignature(0x800f12), VmmType::Qemu);
    let launch = Launch::new(&fw, &cfg).map_err(|e| e.to_string())?;
    launch
        .vmsas()
        .map(|v| v.map(|v| v.vmsa).map_err(|e| e.to_string()))
        .collect()
}

/// Creates, programs and runs one VM of `vmsas.len()` vCPUs; checks every vCPU halted having
/// reported the registers it was programmed with. Returns the vCPUs that did not.
fn one_vm(img: &[u8], vmsas: &[Vmsa], timeout: Duration) -> Result<Vec<String>, String> {
    let mut vm = Vm::new(&VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: img.to_vec(),
        vcpus: vmsas.len(),
    })
    .map_err(|e| e.to_string())?;
    vm.program(vmsas, false).map_err(|e| e.to_string())?;
    let held: Vec<Vmsa> = (0..vmsas.len())
        .map(|i| {
            let r = vm.vcpus[i].report.as_ref()?;
            zerocopy::FromBytes::read_from_bytes(r.expected().as_page()).ok()
        })
        .collect::<Option<_>>()
        .ok_or("a vCPU without a program report")?;
    let runs = vm
        .run(RunLimits {
            max_exits: 10_000,
            timeout,
        })
        .map_err(|e| e.to_string())?;
    let mut bad = Vec::new();
    for r in &runs {
        let expected = testfw::expected_report(&held[r.index], r.index == 0, &r.reports);
        match (&r.end, expected) {
            (RunEnd::Halted, Some(e)) if testfw::compare(&e, &r.reports).is_empty() => {}
            (end, _) => bad.push(format!("vCPU {}: {end}", r.index)),
        }
    }
    Ok(bad)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let vms: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let per_vm: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let img = testfw::image();
    let mut failed = false;

    let vmsas = match launch_vmsas(&img, per_vm) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let mut at_10 = (0, 0);
    println!("{:>6} {:>8} {:>10}", "VM", "open fds", "RSS KiB");
    for n in 1..=vms {
        match one_vm(&img, &vmsas, Duration::from_secs(10)) {
            Ok(bad) if bad.is_empty() => {}
            Ok(bad) => {
                eprintln!("VM {n}: {}", bad.join("; "));
                failed = true;
            }
            Err(e) => {
                eprintln!("VM {n}: {e}");
                std::process::exit(2);
            }
        }
        if n == 10 {
            at_10 = (open_fds(), rss_kib());
        }
        if n == 1 || n == 10 || n % 100 == 0 || n == vms {
            println!("{n:>6} {:>8} {:>10}", open_fds(), rss_kib());
        }
    }
    let (fds, rss) = (open_fds(), rss_kib());
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{vms} VMs of {per_vm} vCPUs in {secs:.1} s ({:.2} ms each): open fds {} → {fds}, RSS {} → {rss} KiB from the 10th VM to the last",
        secs * 1000.0 / vms as f64,
        at_10.0,
        at_10.1
    );
    if vms >= 10 && (fds > at_10.0 || rss > at_10.1 + 4096) {
        eprintln!("soak: descriptors or memory grew");
        failed = true;
    }

    // One VM with KVM's maximum vCPU count, each vCPU from its launch VMSA.
    let max = kvm_ioctls::Kvm::new()
        .map_or(0, |k| k.get_max_vcpus())
        .min(1024);
    match launch_vmsas(&img, max as u32) {
        Ok(vmsas) => {
            let t = Instant::now();
            match one_vm(&img, &vmsas, Duration::from_secs(120)) {
                Ok(bad) if bad.is_empty() => println!(
                    "one VM of {max} vCPUs: programmed from {max} launch VMSAs, every vCPU ran and reported its registers as programmed ({:.1} s)",
                    t.elapsed().as_secs_f64()
                ),
                Ok(bad) => {
                    eprintln!(
                        "{max} vCPUs: {} did not report as programmed: {}",
                        bad.len(),
                        bad.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                    );
                    failed = true;
                }
                Err(e) => {
                    eprintln!("{max} vCPUs: {e}");
                    failed = true;
                }
            }
        }
        Err(e) => {
            eprintln!("{max} vCPUs: {e}");
            failed = true;
        }
    }
    std::process::exit(i32::from(failed));
}
