//! What the subcommands print and write, in one place: hex and base64, a VMSA's fields as text
//! or JSON, and the `vmsaN.bin` pages.
//!
//! Standard output is all or nothing: subcommands write into a buffer (`outln!`), which
//! [`flush`] writes once when the subcommand has succeeded; a subcommand that fails prints
//! nothing there. A closed pipe ends the program quietly (exit 141, as a process killed by
//! SIGPIPE), any other write error is a message and exit 2 — never a panic. Standard error is
//! written without panicking (`errln!`). Pages are written into a temporary directory beside
//! their target and renamed into place only when all are written and synced
//! ([`write_pages`]); an error, SIGINT or SIGTERM leaves nothing new behind.
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FieldKind, FieldValue};

thread_local! {
    static STDOUT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Appends to standard output's buffer (written by [`flush`]).
pub fn out(args: fmt::Arguments<'_>) {
    STDOUT.with(|b| {
        let _ = fmt::Write::write_fmt(&mut *b.borrow_mut(), args);
    });
}

/// `println!` into standard output's buffer.
#[macro_export]
macro_rules! outln {
    () => { $crate::cmd::output::out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::cmd::output::out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` into standard output's buffer.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::cmd::output::out(format_args!($($t)*)) };
}

/// `eprintln!` that never panics (a full or closed standard error loses the line).
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Drops what the failed subcommand put in the standard output buffer.
pub fn discard() {
    STDOUT.with(|b| b.borrow_mut().clear());
}

/// Why standard output could not be written.
#[derive(Debug)]
pub enum FlushError {
    /// The reader went away (a closed pipe): end quietly.
    BrokenPipe,
    /// Anything else (a full disk, a closed descriptor), in words.
    Other(String),
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Notes, before anything else opens a file, whether the program was started with standard
/// output closed (`>&-`). The Rust runtime reopens a closed standard descriptor on `/dev/null`
/// read-write (a shell's `>/dev/null` is write-only), so that is how it shows; writes there
/// would vanish and the program would exit 0 having printed nothing.
pub fn init() {
    let reopened = fs::read_link("/proc/self/fd/1").is_ok_and(|t| t == Path::new("/dev/null"))
        && fs::read_to_string("/proc/self/fdinfo/1").is_ok_and(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|flags| flags & 0o3 == 0o2)
        });
    STDOUT_CLOSED.store(reopened, Ordering::Relaxed);
}

/// Writes the standard output buffer, once.
pub fn flush() -> Result<(), FlushError> {
    let text = STDOUT.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if text.is_empty() {
        return Ok(());
    }
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(FlushError::Other("standard output is closed".into()));
    }
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(FlushError::BrokenPipe),
        Err(e) => Err(FlushError::Other(format!(
            "cannot write standard output: {e}"
        ))),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    vmsa_core::hex::Hex(bytes).to_string()
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A field as JSON shows it.
#[derive(Debug, Serialize)]
struct JsonField {
    name: &'static str,
    offset: usize,
    size: usize,
    kind: FieldKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<vmsa_core::VmcbSegment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    decoded: String,
}

/// Prints a VMSA's non-zero fields as text (`0x178 rip 0xfff0`) or JSON.
pub fn print_vmsa(vmsa: &Vmsa, json: bool) -> Result<(), String> {
    if json {
        let fields: Vec<JsonField> = vmsa
            .nonzero_fields()
            .map(|(f, v)| JsonField {
                name: f.name,
                offset: f.offset,
                size: f.size,
                kind: f.kind,
                value: match v {
                    FieldValue::Int { value, .. } => Some(value),
                    _ => None,
                },
                segment: match v {
                    FieldValue::Segment(s) => Some(s),
                    _ => None,
                },
                hex: match v {
                    FieldValue::Bytes(b) => Some(hex(b)),
                    _ => None,
                },
                decoded: v.to_string(),
            })
            .collect();
        crate::outln!("{}", to_json(&fields)?);
    } else {
        for (f, v) in vmsa.nonzero_fields() {
            crate::outln!("{:#05x} {:<16} {v}", f.offset, f.name);
        }
    }
    Ok(())
}

/// A VMSA's non-zero fields as (`0x178 rip`, value) pairs.
pub fn vmsa_fields(v: &Vmsa) -> Vec<(String, String)> {
    v.nonzero_fields()
        .map(|(f, val)| (format!("{:#05x} {}", f.offset, f.name), val.to_string()))
        .collect()
}

/// Pretty JSON of plain data.
pub fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// Whether existing `vmsaN.bin` files in the target may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse a target that holds `vmsaN.bin` files (`reset --out` without `--replace`).
    Refuse,
    /// Replace them and remove the ones this run does not write (`--replace`).
    Replace,
    /// Replace the ones written, keep the others and name them on stderr (sev-snp-measure's
    /// `--dump-vmsa` into the current directory).
    Overwrite,
}

/// Writes every page as `dir/vmsa{cpu}.bin` (the names sev-snp-measure's `--dump-vmsa` uses),
/// all or nothing: into a temporary directory beside `dir`, each file synced, then renamed
/// into place (the directory itself when `dir` does not exist yet). An error, SIGINT or SIGTERM
/// before the renames leaves nothing new behind.
pub fn write_pages<'v>(
    dir: &Path,
    pages: impl IntoIterator<Item = (u32, &'v Vmsa)>,
    existing: Existing,
) -> Result<(), String> {
    let shown = dir.display();
    let exists = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => return Err(format!("{shown} exists and is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("cannot use {shown}: {e}")),
    };
    let old = if exists { page_files(dir)? } else { Vec::new() };
    if existing == Existing::Refuse && !old.is_empty() {
        return Err(format!(
            "{shown} already holds {} vmsaN.bin file(s) from an earlier run; give --replace to replace them",
            old.len()
        ));
    }
    let stop = Stop::install()?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = TempDir::new(&parent, &name)?;
    let mut written = Vec::new();
    for (cpu, page) in pages {
        stop.check()?;
        let file = format!("vmsa{cpu}.bin");
        let path = tmp.0.join(&file);
        let mut f =
            File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.write_all(page.as_page())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(file);
    }
    sync_dir(&tmp.0)?;
    stop.check()?;
    if !exists {
        fs::rename(&tmp.0, dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
        tmp.keep();
    } else {
        for f in &written {
            fs::rename(tmp.0.join(f), dir.join(f))
                .map_err(|e| format!("cannot write {}: {e}", dir.join(f).display()))?;
        }
        let stale: Vec<&String> = old.iter().filter(|f| !written.contains(f)).collect();
        match existing {
            Existing::Replace => {
                for f in stale {
                    fs::remove_file(dir.join(f))
                        .map_err(|e| format!("cannot remove {}: {e}", dir.join(f).display()))?;
                }
            }
            Existing::Overwrite if !stale.is_empty() => {
                let names: Vec<&str> = stale.iter().map(|s| s.as_str()).collect();
                crate::errln!(
                    "vmsa: note: {} also holds {} from an earlier run (not written now)",
                    shown,
                    names.join(", ")
                );
            }
            _ => {}
        }
    }
    sync_dir(dir)?;
    Ok(())
}

/// Writes `bytes` to `path`, all or nothing: a temporary file beside it, synced, then renamed
/// over it. An error, SIGINT or SIGTERM before the rename leaves `path` as it was.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let stop = Stop::install()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} names no file", path.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = TempDir::new(&parent, &name)?;
    let staged = tmp.0.join(&name);
    File::create(&staged)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    stop.check()?;
    fs::rename(&staged, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    sync_dir(&parent)
}

/// The `vmsaN.bin` files in `dir`.
fn page_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("vmsa")
                .and_then(|r| r.strip_suffix(".bin"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// A temporary directory beside the target, removed on drop unless kept.
struct TempDir(PathBuf, bool);

impl TempDir {
    fn new(parent: &Path, name: &str) -> Result<Self, String> {
        let path = parent.join(format!(".{name}.vmsa-tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path, false))
    }
    fn keep(mut self) {
        self.1 = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// SIGINT and SIGTERM while pages are written: noted, then acted on between files (the
/// temporary directory is removed and the program exits as the signal would have ended it).
struct Stop {
    flags: [(Arc<AtomicBool>, &'static str); 2],
    ids: Vec<signal_hook::SigId>,
}

impl Stop {
    fn install() -> Result<Self, String> {
        let flags = [
            (Arc::new(AtomicBool::new(false)), INTERRUPTED_INT),
            (Arc::new(AtomicBool::new(false)), INTERRUPTED_TERM),
        ];
        let mut ids = Vec::new();
        for (sig, (flag, _)) in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
            .into_iter()
            .zip(&flags)
        {
            let id = signal_hook::flag::register(sig, Arc::clone(flag))
                .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
            ids.push(id);
        }
        Ok(Self { flags, ids })
    }

    /// `Err` once a signal arrived (the caller's temporary directory is then dropped).
    fn check(&self) -> Result<(), String> {
        match self.flags.iter().find(|(f, _)| f.load(Ordering::SeqCst)) {
            Some((_, message)) => Err((*message).into()),
            None => Ok(()),
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The message of a write stopped by SIGINT (main exits 130, as the signal would have).
pub const INTERRUPTED_INT: &str = "interrupted by SIGINT: nothing was written";
/// The message of a write stopped by SIGTERM (main exits 143).
pub const INTERRUPTED_TERM: &str = "interrupted by SIGTERM: nothing was written";

/// The exit code of a subcommand stopped by a signal: 128 + the signal, as a shell reports it.
pub fn interrupted(message: &str) -> Option<u8> {
    match message {
        INTERRUPTED_INT => Some(130),
        INTERRUPTED_TERM => Some(143),
        _ => None,
    }
}
