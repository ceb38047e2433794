//! Running the vCPUs: one thread each, every exit handled and reported, until each halts, shuts
//! down, fails, uses up its exits or the deadline passes (then it is kicked out of `KVM_RUN`
//! with a signal).
// UNSAFETY: vCPU threads are kicked out of KVM_RUN with pthread_kill, which takes a raw
// pthread_t; each call has its SAFETY proof.
#![expect(unsafe_code)]

use super::{GuestMemory, REPORT_PORT, Vcpu, VmError};
use core::fmt;
use kvm_ioctls::VcpuExit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bounds on one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Exits per vCPU before it is stopped.
    pub max_exits: u64,
    /// Wall time for the whole run.
    pub timeout: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_exits: 100_000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One vCPU exit, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// `OUT` to a port (data zero-extended, little endian).
    IoOut {
        /// Port.
        port: u16,
        /// Access size in bytes.
        size: usize,
        /// Value written.
        value: u32,
    },
    /// `IN` from a port (answered with all ones, as an empty ISA bus does).
    IoIn {
        /// Port.
        port: u16,
        /// Access size.
        size: usize,
    },
    /// MMIO read (answered with all ones, or with firmware bytes for reads of the flash).
    MmioRead {
        /// Address.
        addr: u64,
        /// Size.
        size: usize,
    },
    /// MMIO write (ignored).
    MmioWrite {
        /// Address.
        addr: u64,
        /// Size.
        size: usize,
    },
    /// `HLT`.
    Hlt,
    /// Triple fault.
    Shutdown,
    /// `KVM_EXIT_FAIL_ENTRY`.
    FailEntry {
        /// Hardware entry failure reason.
        reason: u64,
    },
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError,
    /// `KVM_EXIT_SYSTEM_EVENT`.
    SystemEvent {
        /// Event type.
        kind: u32,
    },
    /// Another exit reason.
    Other(String),
}

impl fmt::Display for Exit {
    /// The exit in words, as `vmsa run` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IoOut { port, size, value } => {
                write!(f, "OUT of {value:#x} ({size} bytes) to port {port:#x}")
            }
            Self::IoIn { port, size } => write!(f, "IN of {size} bytes from port {port:#x}"),
            Self::MmioRead { addr, size } => write!(f, "MMIO read of {size} bytes at {addr:#x}"),
            Self::MmioWrite { addr, size } => {
                write!(f, "MMIO write of {size} bytes at {addr:#x}")
            }
            Self::Hlt => f.write_str("HLT"),
            Self::Shutdown => f.write_str("shutdown (a triple fault)"),
            Self::FailEntry { reason } => write!(
                f,
                "entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}): the CPU refused the vCPU state"
            ),
            Self::InternalError => f.write_str(
                "KVM internal error (KVM_EXIT_INTERNAL_ERROR): KVM could not emulate an instruction or deliver an event",
            ),
            Self::SystemEvent { kind } => {
                let what = match *kind {
                    1 => "shutdown",
                    2 => "reset",
                    3 => "crash",
                    _ => "system event",
                };
                write!(f, "{what} requested by the guest (KVM_EXIT_SYSTEM_EVENT {kind})")
            }
            Self::Other(e) => write!(f, "unhandled exit {e}"),
        }
    }
}

/// Where a vCPU was at an exit, as KVM reports it (`KVM_GET_SREGS`, `KVM_GET_REGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitPoint {
    /// CS selector.
    pub cs_selector: u16,
    /// CS base.
    pub cs_base: u64,
    /// RIP.
    pub rip: u64,
}

impl ExitPoint {
    /// The linear address, CS base + RIP.
    pub fn linear(&self) -> u64 {
        self.cs_base.wrapping_add(self.rip)
    }
}

/// Why a vCPU's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// The vCPU halted.
    Halted,
    /// The vCPU triple-faulted.
    Shutdown,
    /// An exit the VMM cannot continue from.
    Failed(Exit),
    /// `KVM_RUN` failed.
    RunError(String),
    /// The exit budget was used up.
    ExitLimit,
    /// The wall-time limit passed.
    Timeout,
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Halted => f.write_str("halted (HLT)"),
            Self::Shutdown => f.write_str("shutdown (triple fault)"),
            Self::Failed(e) => write!(f, "failed: {e}"),
            Self::RunError(e) => write!(f, "KVM_RUN failed: {e}"),
            Self::ExitLimit => f.write_str("stopped after the exit limit"),
            Self::Timeout => f.write_str("stopped at the time limit"),
        }
    }
}

/// What one vCPU did.
#[derive(Debug, Clone)]
pub struct VcpuRun {
    /// vCPU index.
    pub index: usize,
    /// Values written to [`REPORT_PORT`], in order.
    pub reports: Vec<u32>,
    /// The first exits (up to 64).
    pub first_exits: Vec<Exit>,
    /// Where the vCPU was at its first exit (read from KVM right after it).
    pub first_exit_at: Option<ExitPoint>,
    /// The last exit.
    pub last_exit: Option<Exit>,
    /// Number of exits.
    pub exits: u64,
    /// How it ended.
    pub end: RunEnd,
}

/// Runs every vCPU of `vcpus` on its own thread (see [`super::Vm::run`]); `flash` is the
/// firmware's GPA and mapping, which serves MMIO reads of it.
pub(super) fn run_all(
    vcpus: &mut [Vcpu],
    limits: RunLimits,
    flash: (u64, Option<&GuestMemory>),
) -> Result<Vec<VcpuRun>, VmError> {
    let deadline = Instant::now() + limits.timeout;
    let n = vcpus.len();
    let threads: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let done: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = vcpus
            .iter_mut()
            .zip(threads.iter().zip(&done))
            .map(|(v, (tid, done))| {
                s.spawn(move || {
                    // SAFETY: pthread_self has no preconditions.
                    tid.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
                    let run = run_vcpu(v, limits, deadline, flash);
                    done.store(true, Ordering::SeqCst);
                    run
                })
            })
            .collect();
        // No thread is joined before every thread is done, so every pthread_t signalled
        // below belongs to a live (or finished but unjoined) thread.
        kick_until_done(&threads, &done, deadline);
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| h.join().map_err(|_| VmError::VcpuThread(i)))
            .collect()
    })
}

/// Signal used to kick vCPU threads out of `KVM_RUN` at the deadline.
fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn kick_until_done(threads: &[AtomicU64], done: &[AtomicBool], deadline: Instant) {
    while !done.iter().all(|d| d.load(Ordering::SeqCst)) {
        if Instant::now() >= deadline {
            for (tid, d) in threads.iter().zip(done) {
                let tid = tid.load(Ordering::SeqCst);
                if tid != 0 && !d.load(Ordering::SeqCst) {
                    // SAFETY: `tid` is the pthread_t of a vCPU thread of this scope that has not
                    // been joined (joins happen only after this loop ends); the signal has a
                    // no-op handler installed by that thread, so it only interrupts KVM_RUN.
                    unsafe { libc::pthread_kill(tid as libc::pthread_t, kick_signal()) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_vcpu(
    v: &mut Vcpu,
    limits: RunLimits,
    deadline: Instant,
    flash: (u64, Option<&GuestMemory>),
) -> VcpuRun {
    // A no-op handler: the signal only makes KVM_RUN return EINTR.
    let _ = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick);
    let mut run = VcpuRun {
        index: v.index,
        reports: Vec::new(),
        first_exits: Vec::new(),
        first_exit_at: None,
        last_exit: None,
        exits: 0,
        end: RunEnd::ExitLimit,
    };
    loop {
        if run.exits >= limits.max_exits {
            run.end = RunEnd::ExitLimit;
            break;
        }
        if Instant::now() >= deadline {
            run.end = RunEnd::Timeout;
            break;
        }
        let exit = match v.fd.run() {
            Ok(e) => e,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => {
                run.end = RunEnd::RunError(e.to_string());
                break;
            }
        };
        let (exit, end) = handle_exit(exit, flash, &mut run.reports);
        run.exits += 1;
        if run.exits == 1 {
            if let (Ok(r), Ok(s)) = (v.fd.get_regs(), v.fd.get_sregs()) {
                run.first_exit_at = Some(ExitPoint {
                    cs_selector: s.cs.selector,
                    cs_base: s.cs.base,
                    rip: r.rip,
                });
            }
        }
        if run.first_exits.len() < 64 {
            run.first_exits.push(exit.clone());
        }
        run.last_exit = Some(exit);
        if let Some(end) = end {
            run.end = end;
            break;
        }
    }
    run
}

fn le_value(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    u32::from_le_bytes(b)
}

fn handle_exit(
    exit: VcpuExit<'_>,
    flash: (u64, Option<&GuestMemory>),
    reports: &mut Vec<u32>,
) -> (Exit, Option<RunEnd>) {
    match exit {
        VcpuExit::IoOut(port, data) => {
            let value = le_value(data);
            if port == REPORT_PORT && reports.len() < 4096 {
                reports.push(value);
            }
            (
                Exit::IoOut {
                    port,
                    size: data.len(),
                    value,
                },
                None,
            )
        }
        VcpuExit::IoIn(port, data) => {
            data.fill(0xff);
            (
                Exit::IoIn {
                    port,
                    size: data.len(),
                },
                None,
            )
        }
        VcpuExit::MmioRead(addr, data) => {
            // Reads of the read-only flash are served from the image (KVM routes them here only
            // if the slot could not be mapped); anything else reads as all ones.
            let (base, mem) = flash;
            let off = addr.checked_sub(base).and_then(|o| usize::try_from(o).ok());
            if off.zip(mem).and_then(|(o, m)| m.read(o, data)).is_none() {
                data.fill(0xff);
            }
            (
                Exit::MmioRead {
                    addr,
                    size: data.len(),
                },
                None,
            )
        }
        VcpuExit::MmioWrite(addr, data) => (
            Exit::MmioWrite {
                addr,
                size: data.len(),
            },
            None,
        ),
        VcpuExit::Hlt => (Exit::Hlt, Some(RunEnd::Halted)),
        VcpuExit::Shutdown => (Exit::Shutdown, Some(RunEnd::Shutdown)),
        VcpuExit::FailEntry(reason, _) => {
            let e = Exit::FailEntry { reason };
            (e.clone(), Some(RunEnd::Failed(e)))
        }
        VcpuExit::InternalError => (
            Exit::InternalError,
            Some(RunEnd::Failed(Exit::InternalError)),
        ),
        VcpuExit::SystemEvent(kind, _) => {
            let e = Exit::SystemEvent { kind };
            (e.clone(), Some(RunEnd::Failed(e)))
        }
        other => {
            let e = Exit::Other(format!("{other:?}"));
            (e.clone(), Some(RunEnd::Failed(e)))
        }
    }
}
