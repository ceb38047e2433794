//! `--from-qemu CMDLINE_OR_FILE`: a launch described by a QEMU command line, turned into the
//! flags of the command it is given to (`measure`, `id-block` and `verify` after `--`, `reset`,
//! `solve`, `run`), each derived flag printed on standard error with the QEMU option it came
//! from. The command line is read as QEMU 10.1/10.2 reads it (`qemu-options.hx`, the
//! `sev-guest`/`sev-snp-guest` properties of `target/i386/sev.c`, `-smp` of
//! `hw/core/machine-smp.c`); what QEMU refuses is refused with its words.
//!
//! Modelled: `-machine`/`-M` (`confidential-guest-support`, `memory-encryption`, `pflash0`,
//! `igvm-cfg`), `-object sev-guest|sev-snp-guest|igvm-cfg|…` (with `legacy-vm-type`), `-cpu`
//! (named models; `family=`/`model=`/`stepping=` and `host`/`max` are refused: give
//! `--vcpu-sig`), `-smp`, `-bios`, `-drive if=pflash`, `-blockdev` (a `file` node's
//! `filename`), `-kernel`, `-initrd`, `-append`. The launch is QEMU 10.2's (`--qemu 10.2`, the
//! host profile: legacy SEV-ES init unless `legacy-vm-type=off`, the APs' FPU words 0 under
//! INIT2); another `--qemu` given beside it wins. Other options are read past (their arguments
//! skipped) and do not change a launch digest; a machine type's compat properties (`pc-q35-7.2`'s
//! RNG seed in the hashed kernel) are not read.
//!
//! `--from-libvirt FILE`: the same from a libvirt domain's XML ([`parse_libvirt`]).

use std::collections::HashMap;
use std::path::Path;
use vmsa_core::cpu::CPU_TYPES;

/// The QEMU version whose command line is modelled.
pub const QEMU_VERSION: &str = "QEMU 10.1/10.2";

/// The release `--qemu` names for the launch (the host profile of [`QEMU_VERSION`]); a
/// `--qemu` of the user's own wins.
pub const QEMU_RELEASE: &str = "10.2";

/// QEMU options that take no argument (`qemu-options.hx`, those that can appear in a
/// confidential guest's command line); every other option takes one.
const FLAGS: &[&str] = &[
    "-enable-kvm",
    "-nographic",
    "-no-reboot",
    "-no-shutdown",
    "-S",
    "-s",
    "-daemonize",
    "-snapshot",
    "-nodefaults",
    "-no-user-config",
    "-no-hpet",
    "-no-acpi",
    "-full-screen",
    "-old-param",
    "-only-migratable",
    "-version",
    "-help",
    "-h",
    "-enable-fips",
    "-preconfig",
    "-no-fd-bootchk",
    "-win2k-hack",
    "-alt-grab",
    "-ctrl-grab",
    "-no-quit",
    "-no-frame",
    "-semihosting",
];

/// A launch read from a QEMU command line, with where each part came from.
#[derive(Debug, Default)]
pub struct QemuLaunch {
    /// `sev`, `sev-es` or `snp`.
    pub mode: String,
    /// vCPUs.
    pub vcpus: u32,
    /// The CPU model (a named type), if `-cpu` gave one.
    pub cpu: Option<String>,
    /// The firmware: OVMF (`-bios`, pflash) or an IGVM file (`igvm-cfg`).
    pub ovmf: Option<String>,
    /// The IGVM file.
    pub igvm: Option<String>,
    /// `-kernel`, `-initrd`, `-append` (only with `kernel-hashes=on`).
    pub kernel: Option<String>,
    /// The initrd.
    pub initrd: Option<String>,
    /// The command line.
    pub append: Option<String>,
    /// The guest policy.
    pub policy: Option<u64>,
    /// `host-data`, `id-block`, `id-auth` (base64 as QEMU takes them), `author-key-enabled`,
    /// `vcek-disabled`.
    pub host_data: Option<String>,
    /// `id-block`.
    pub id_block: Option<String>,
    /// `id-auth`.
    pub id_auth: Option<String>,
    /// `author-key-enabled=on`.
    pub author_key_enabled: bool,
    /// `vcek-disabled=on`.
    pub vcek_disabled: bool,
    /// `sev-guest,legacy-vm-type=off`: KVM_SEV_INIT2 (default `auto`, and `on` for machine
    /// types 9.0 and older: the legacy init).
    pub init2: bool,
    /// "flag value (from QEMU option)" lines.
    pub provenance: Vec<String>,
}

/// The words of a command line given as a string or as a file holding one (`/proc/PID/cmdline`
/// is NUL-separated; other text is split as a shell would, quotes and `\`-newlines included).
pub fn words(arg: &str) -> Result<Vec<String>, String> {
    let p = Path::new(arg);
    let text = if !arg.contains(' ') && p.is_file() {
        let bytes = super::files::read(p, 1 << 20)?;
        if bytes.contains(&0) {
            return Ok(bytes
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect());
        }
        String::from_utf8(bytes).map_err(|_| format!("{arg}: not text"))?
    } else {
        arg.to_owned()
    };
    shell_split(&text)
}

fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => return Err("the command line ends with a backslash".into()),
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("an unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("an unterminated \" quote".into()),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("an unterminated \" quote".into()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// QEMU's keyval: `implied,key=value,...` with `,,` for a comma; the implied first value (the
/// object type, machine type, CPU model) under `implied_key` when it has no `=`.
fn keyval(s: &str, implied_key: Option<&str>) -> Vec<(String, String)> {
    // libvirt writes -object and -blockdev as JSON (`{"qom-type":"sev-snp-guest",…}`).
    if s.trim_start().starts_with('{') {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(s) {
            return m
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Bool(b) => (if b { "on" } else { "off" }).to_string(),
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect();
        }
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(i, p)| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match (i, implied_key) {
                (0, Some(k)) => (k.to_string(), p),
                _ => (p, "on".to_string()),
            },
        })
        .collect()
}

fn on(v: &str, what: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(format!(
            "{what}: Parameter expects 'on' or 'off', not {v:?} (QEMU)"
        )),
    }
}

fn int(v: &str, what: &str) -> Result<u64, String> {
    super::args::parse_int(v).map_err(|e| format!("{what}: {e}"))
}

/// The properties each confidential-guest object takes (QEMU 10.2 `target/i386/sev.c`).
const SEV_COMMON: &[&str] = &[
    "id",
    "qom-type",
    "sev-device",
    "cbitpos",
    "reduced-phys-bits",
    "kernel-hashes",
];
const SEV_GUEST: &[&str] = &[
    "policy",
    "handle",
    "dh-cert-file",
    "session-file",
    "legacy-vm-type",
];
const SNP_GUEST: &[&str] = &[
    "policy",
    "guest-visible-workarounds",
    "id-block",
    "id-auth",
    "author-key-enabled",
    "host-data",
    "vcek-disabled",
];

/// Reads a QEMU command line's launch.
pub fn parse(words: &[String]) -> Result<QemuLaunch, String> {
    let mut it = words.iter().peekable();
    if it.peek().is_some_and(|w| !w.starts_with('-')) {
        it.next(); // the program
    }
    let mut opts: Vec<(String, String)> = Vec::new();
    while let Some(w) = it.next() {
        let name = w
            .strip_prefix('-')
            .map(|n| format!("-{}", n.trim_start_matches('-')));
        let Some(name) = name else {
            return Err(format!("{w:?}: not an option (QEMU reads options only)"));
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (name, None),
        };
        if FLAGS.contains(&name.as_str()) {
            opts.push((name, String::new()));
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("{name} requires an argument (QEMU)"))?
                .clone(),
        };
        opts.push((name, value));
    }
    let mut l = QemuLaunch::default();
    let mut objects: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut blockdevs: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut machine: Vec<(String, String)> = Vec::new();
    let mut pflash: Vec<(String, String)> = Vec::new();
    let (mut cpu, mut smp, mut bios) = (None, None, None);
    for (name, value) in &opts {
        match name.as_str() {
            "-machine" | "-M" => machine.extend(keyval(value, Some("type"))),
            "-object" => {
                let kv = keyval(value, Some("qom-type"));
                let id = kv
                    .iter()
                    .find(|(k, _)| k == "id")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("-object {value}: Parameter 'id' is missing (QEMU)"))?;
                objects.insert(id, kv);
            }
            "-blockdev" => {
                let kv = keyval(value, None);
                if let Some((_, n)) = kv.iter().find(|(k, _)| k == "node-name") {
                    blockdevs.insert(n.clone(), kv.clone());
                }
            }
            "-drive" => {
                let kv = keyval(value, None);
                if kv.iter().any(|(k, v)| k == "if" && v == "pflash") {
                    let unit = kv
                        .iter()
                        .find(|(k, _)| k == "unit")
                        .map(|(_, v)| v.as_str());
                    if let (Some((_, f)), None | Some("0")) =
                        (kv.iter().find(|(k, _)| k == "file"), unit)
                    {
                        if pflash.is_empty() {
                            pflash.push(("-drive if=pflash".into(), f.clone()));
                        }
                    }
                }
            }
            "-cpu" => cpu = Some(value.clone()),
            "-smp" => smp = Some(value.clone()),
            "-bios" => bios = Some(value.clone()),
            "-kernel" => l.kernel = Some(value.clone()),
            "-initrd" => l.initrd = Some(value.clone()),
            "-append" => l.append = Some(value.clone()),
            _ => {}
        }
    }
    let get = |kv: &[(String, String)], k: &str| {
        kv.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // The confidential guest.
    let cgs = get(&machine, "confidential-guest-support")
        .or_else(|| get(&machine, "memory-encryption"))
        .ok_or(
            "the QEMU command line has no -machine confidential-guest-support=…: not an SEV guest",
        )?;
    let obj = objects
        .get(&cgs)
        .ok_or_else(|| format!("-machine confidential-guest-support={cgs}: no -object with id={cgs} (QEMU: \"Device '{cgs}' not found\")"))?;
    let typ = get(obj, "qom-type").unwrap_or_default();
    let allowed: Vec<&str> = match typ.as_str() {
        "sev-snp-guest" => SEV_COMMON.iter().chain(SNP_GUEST).copied().collect(),
        "sev-guest" => SEV_COMMON.iter().chain(SEV_GUEST).copied().collect(),
        other => {
            return Err(format!(
                "confidential-guest-support={cgs} is a {other:?} object; vmsa models sev-guest and sev-snp-guest"
            ));
        }
    };
    for (k, _) in obj {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("QEMU: Property '{typ}.{k}' not found"));
        }
    }
    let policy = get(obj, "policy").map(|p| int(&p, "policy")).transpose()?;
    l.policy = policy;
    l.mode = match typ.as_str() {
        "sev-snp-guest" => "snp".into(),
        // SEV_POLICY_ES (bit 2) makes an SEV-ES guest (`sev_es_enabled`).
        _ if policy.unwrap_or(1) & 0x4 != 0 => "seves".into(),
        _ => "sev".into(),
    };
    l.provenance.push(format!(
        "--mode {} (-object {typ},id={cgs}{})",
        l.mode,
        policy.map_or(String::new(), |p| format!(",policy={p:#x}"))
    ));
    let kernel_hashes = get(obj, "kernel-hashes")
        .map(|v| on(&v, "kernel-hashes"))
        .transpose()?
        .unwrap_or(false);
    if l.kernel.is_some() && !kernel_hashes {
        return Err(format!(
            "-kernel without {typ}.kernel-hashes=on: QEMU boots that kernel unmeasured (the launch digest covers the firmware only), so there is no digest of this launch that binds the kernel; add kernel-hashes=on"
        ));
    }
    if l.kernel.is_none() && (l.initrd.is_some() || l.append.is_some()) {
        return Err(
            "-initrd or -append without -kernel (QEMU: \"-initrd is only valid with -kernel\")"
                .into(),
        );
    }
    // `legacy-vm-type` (QEMU 9.1: on/off/auto, default auto = legacy; `pc_compat_9_0` sets
    // on). Only `off` asks for KVM_SEV_INIT2.
    if let Some(v) = get(obj, "legacy-vm-type") {
        l.init2 = match v.as_str() {
            "off" | "false" | "no" => true,
            "on" | "true" | "yes" | "auto" => false,
            _ => {
                return Err(format!(
                    "QEMU: Parameter '{typ}.legacy-vm-type' does not accept value '{v}' (on, off, auto)"
                ));
            }
        };
        if l.init2 {
            l.provenance.push(format!(
                "--legacy-vm-type off (-object {typ},legacy-vm-type={v}): KVM_SEV_INIT2"
            ));
        }
    }
    l.host_data = get(obj, "host-data");
    l.id_block = get(obj, "id-block");
    l.id_auth = get(obj, "id-auth");
    l.author_key_enabled = get(obj, "author-key-enabled")
        .map(|v| on(&v, "author-key-enabled"))
        .transpose()?
        .unwrap_or(false);
    l.vcek_disabled = get(obj, "vcek-disabled")
        .map(|v| on(&v, "vcek-disabled"))
        .transpose()?
        .unwrap_or(false);
    // vCPUs (`-smp`: cpus, or the product of the topology; 1 without -smp).
    l.vcpus = match &smp {
        None => 1,
        Some(s) => {
            let kv = keyval(s, Some("cpus"));
            match get(&kv, "cpus") {
                Some(n) => int(&n, "-smp cpus")? as u32,
                None => ["sockets", "dies", "clusters", "modules", "cores", "threads"]
                    .iter()
                    .map(|k| get(&kv, k).map_or(Ok(1), |v| int(&v, "-smp")))
                    .try_fold(1u64, |acc, n| n.map(|n| acc.saturating_mul(n)))?
                    .min(u64::from(u32::MAX)) as u32,
            }
        }
    };
    l.provenance.push(format!(
        "--vcpus {} ({})",
        l.vcpus,
        smp.as_deref()
            .map_or("no -smp: 1".into(), |s| format!("-smp {s}"))
    ));
    // The CPU model.
    if let Some(c) = &cpu {
        let props = keyval(c, Some("model"));
        let model = props
            .iter()
            .find(|(k, _)| k == "model")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // `-cpu NAME,family=…,model=…,stepping=…` changes CPUID leaf 1, which QEMU puts in RDX:
        // not modelled here, so refused rather than measured with the named model's signature.
        if let Some((k, _)) = props
            .iter()
            .skip(1)
            .find(|(k, _)| matches!(k.as_str(), "family" | "model" | "stepping"))
        {
            return Err(format!(
                "-cpu {c}: {k}= changes the vCPU signature QEMU puts in RDX; give the resulting signature with --vcpu-sig instead"
            ));
        }
        if model == "host" || model == "max" {
            return Err(format!(
                "-cpu {model}: the vCPU signature is the host's; give it with --vcpu-sig (the host's CPUID leaf 1 EAX, `cpuid -1 -l 1` or /proc/cpuinfo family, model, stepping)"
            ));
        }
        if !CPU_TYPES.iter().any(|t| t.name == model) {
            return Err(format!(
                "-cpu {model}: not a CPU model vmsa knows the signature of (vmsa measure --help lists them)"
            ));
        }
        l.provenance.push(format!("--vcpu-type {model} (-cpu {c})"));
        l.cpu = Some(model);
    }
    // The firmware: IGVM, -bios, or pflash unit 0.
    if let Some(id) = get(&machine, "igvm-cfg") {
        let o = objects
            .get(&id)
            .ok_or_else(|| format!("-machine igvm-cfg={id}: no -object with id={id}"))?;
        let f = get(o, "file").ok_or_else(|| format!("igvm-cfg {id}: no file="))?;
        l.provenance
            .push(format!("--igvm {f} (-object igvm-cfg,id={id})"));
        l.igvm = Some(f);
    } else if let Some(b) = bios {
        l.provenance.push(format!("--ovmf {b} (-bios)"));
        l.ovmf = Some(b);
    } else if let Some(node) = get(&machine, "pflash0") {
        let mut n = node.clone();
        // A format node names its file node; a file node has the filename.
        for _ in 0..4 {
            let bd = blockdevs
                .get(&n)
                .ok_or_else(|| format!("-machine pflash0={node}: no -blockdev node-name={n}"))?;
            if let Some(f) = get(bd, "filename") {
                l.provenance
                    .push(format!("--ovmf {f} (-machine pflash0={node}, -blockdev)"));
                l.ovmf = Some(f);
                break;
            }
            n = get(bd, "file").ok_or_else(|| format!("-blockdev {n}: no filename or file"))?;
        }
    } else if let Some((from, f)) = pflash.first() {
        l.provenance.push(format!("--ovmf {f} ({from},unit=0)"));
        l.ovmf = Some(f.clone());
    }
    if l.ovmf.is_none() && l.igvm.is_none() {
        return Err("the QEMU command line names no firmware (-bios, -drive if=pflash, -machine pflash0= or igvm-cfg)".into());
    }
    l.note_direct_boot(["-kernel, kernel-hashes=on", "-initrd", "-append"]);
    Ok(l)
}

impl QemuLaunch {
    /// Notes the kernel, initrd and command line, each with where it came from.
    fn note_direct_boot(&mut self, from: [&str; 3]) {
        let parts = [
            ("--kernel", self.kernel.clone()),
            ("--initrd", self.initrd.clone()),
            ("--append", self.append.as_ref().map(|a| format!("{a:?}"))),
        ];
        for ((flag, value), source) in parts.into_iter().zip(from) {
            if let Some(v) = value {
                self.provenance.push(format!("{flag} {v} ({source})"));
            }
        }
    }

    /// The launch as `vmsa measure`'s flags (also those of `id-block` and `verify` after `--`).
    pub fn measure_words(&self) -> Vec<String> {
        let mut w = vec!["--mode".to_string(), self.mode.clone()];
        if self.mode != "sev" || self.igvm.is_some() {
            w.extend(["--vcpus".into(), self.vcpus.to_string()]);
        }
        if let Some(c) = &self.cpu {
            w.extend(["--vcpu-type".into(), c.clone()]);
        }
        self.firmware_words(&mut w);
        self.qemu_words(&mut w);
        w
    }

    /// The QEMU release whose launch this is (`vmsa profiles`): its init, its APs' state.
    fn qemu_words(&self, w: &mut Vec<String>) {
        w.extend(["--qemu".into(), QEMU_RELEASE.into()]);
        if self.init2 {
            w.extend(["--legacy-vm-type".into(), "off".into()]);
        }
    }

    fn firmware_words(&self, w: &mut Vec<String>) {
        if let Some(f) = &self.ovmf {
            w.extend(["--ovmf".into(), f.clone()]);
        }
        if let Some(f) = &self.igvm {
            w.extend(["--igvm".into(), f.clone()]);
        }
        for (flag, v) in [
            ("--kernel", &self.kernel),
            ("--initrd", &self.initrd),
            ("--append", &self.append),
        ] {
            if let Some(v) = v {
                w.extend([flag.into(), v.clone()]);
            }
        }
    }

    /// The words for subcommand `sub` (`None`: it takes no launch).
    pub fn words_for(&self, sub: &str) -> Option<Vec<String>> {
        Some(match sub {
            "measure" | "id-block" | "verify" | "capture" => self.measure_words(),
            "solve" => {
                let mut w = vec!["--vcpus".to_string(), self.vcpus.to_string()];
                if let Some(c) = &self.cpu {
                    w.extend(["--vcpu-type".into(), c.clone()]);
                }
                self.firmware_words(&mut w);
                w.extend(["--qemu".into(), QEMU_RELEASE.into()]);
                w
            }
            "reset" => {
                let mut w = vec!["--vcpus".to_string(), self.vcpus.to_string()];
                if self.igvm.is_none() {
                    w.extend(["--mode".into(), self.mode.clone()]);
                }
                if let Some(c) = &self.cpu {
                    w.extend(["--vcpu-type".into(), c.clone()]);
                }
                if let Some(f) = &self.ovmf {
                    w.extend(["--ovmf".into(), f.clone()]);
                }
                if let Some(f) = &self.igvm {
                    w.extend(["--igvm".into(), f.clone()]);
                }
                self.qemu_words(&mut w);
                w
            }
            "run" => {
                let mut w = vec!["--vcpus".to_string(), self.vcpus.to_string()];
                if let Some(c) = &self.cpu {
                    w.extend(["--vcpu-type".into(), c.clone()]);
                }
                if let Some(f) = &self.ovmf {
                    w.extend(["--ovmf".into(), f.clone()]);
                }
                if let Some(f) = &self.igvm {
                    w.extend(["--igvm".into(), f.clone()]);
                }
                w.extend(["--launch".into(), self.mode.replace("seves", "sev-es")]);
                if let Some(p) = self.policy {
                    w.extend(["--policy".into(), format!("{p:#x}")]);
                }
                if let (Some(b), Some(a)) = (&self.id_block, &self.id_auth) {
                    w.extend(["--id-block".into(), format!("id-block={b},id-auth={a}")]);
                }
                if self.author_key_enabled {
                    w.push("--author-key-enabled".into());
                }
                if let Some(h) = &self.host_data {
                    w.extend(["--host-data".into(), h.clone()]);
                }
                if self.vcek_disabled {
                    w.push("--vcek-disabled".into());
                }
                w
            }
            _ => return None,
        })
    }
}

/// A libvirt domain's launch (`formatdomain.rst`: `<launchSecurity type='sev'|'sev-snp'>`,
/// `<os>` loader, kernel, initrd, cmdline, `<vcpu>`, `<cpu>`), as libvirt 10.x turns it into
/// QEMU's command line (`qemuBuildSEVCommandLine`, `qemuBuildSEVSNPCommandLine`).
pub fn parse_libvirt(xml: &str) -> Result<QemuLaunch, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let domain = doc.root_element();
    if domain.tag_name().name() != "domain" {
        return Err(format!(
            "<{}>: not a libvirt <domain>",
            domain.tag_name().name()
        ));
    }
    fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
        n.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
    }
    fn text(n: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
        n.and_then(|n| n.text()).map(|t| t.trim().to_string())
    }
    let mut l = QemuLaunch::default();
    let ls = child(domain, "launchSecurity")
        .ok_or("the domain has no <launchSecurity>: not an SEV guest")?;
    let typ = ls.attribute("type").unwrap_or("");
    let policy = text(child(ls, "policy"))
        .map(|p| int(&p, "<policy>"))
        .transpose()?;
    l.policy = policy;
    l.mode = match typ {
        "sev-snp" => "snp".into(),
        "sev" if policy.unwrap_or(0) & 0x4 != 0 => "seves".into(),
        "sev" => "sev".into(),
        other => {
            return Err(format!(
                "<launchSecurity type='{other}'>: vmsa models sev and sev-snp"
            ));
        }
    };
    l.provenance.push(format!(
        "--mode {} (<launchSecurity type='{typ}'>{})",
        l.mode,
        policy.map_or(String::new(), |p| format!(" <policy>{p:#x}</policy>"))
    ));
    let yes = |a: Option<&str>| matches!(a, Some("yes"));
    let kernel_hashes = yes(ls.attribute("kernelHashes"));
    l.author_key_enabled = yes(ls.attribute("authorKey"));
    l.vcek_disabled = matches!(ls.attribute("vcek"), Some("no"));
    l.host_data = text(child(ls, "hostData"));
    l.id_block = text(child(ls, "idBlock"));
    l.id_auth = text(child(ls, "idAuth"));
    // vCPUs: those present at boot (`current`), else the maximum.
    let vcpu = child(domain, "vcpu");
    let count = vcpu
        .and_then(|v| {
            v.attribute("current")
                .map(str::to_string)
                .or_else(|| v.text().map(|t| t.trim().to_string()))
        })
        .unwrap_or_else(|| "1".into());
    l.vcpus = int(&count, "<vcpu>")? as u32;
    l.provenance.push(format!("--vcpus {} (<vcpu>)", l.vcpus));
    match child(domain, "cpu") {
        Some(cpu)
            if matches!(
                cpu.attribute("mode"),
                Some("host-passthrough" | "host-model" | "maximum")
            ) =>
        {
            return Err(format!(
                "<cpu mode='{}'>: the vCPU signature is the host's; give it with --vcpu-sig",
                cpu.attribute("mode").unwrap_or_default()
            ));
        }
        Some(cpu) => {
            let model =
                text(child(cpu, "model")).ok_or("<cpu> without <model>: give --vcpu-type")?;
            if !CPU_TYPES.iter().any(|t| t.name == model) {
                return Err(format!(
                    "<model>{model}</model>: not a CPU model vmsa knows the signature of"
                ));
            }
            l.provenance
                .push(format!("--vcpu-type {model} (<cpu><model>)"));
            l.cpu = Some(model);
        }
        None => {}
    }
    let os = child(domain, "os").ok_or("the domain has no <os>")?;
    if let Some(loader) = text(child(os, "loader")) {
        l.provenance.push(format!("--ovmf {loader} (<os><loader>)"));
        l.ovmf = Some(loader);
    } else {
        return Err(
            "<os> names no <loader>: the firmware libvirt would pick is the host's; give --ovmf"
                .into(),
        );
    }
    l.kernel = text(child(os, "kernel"));
    l.initrd = text(child(os, "initrd"));
    l.append = text(child(os, "cmdline"));
    if l.kernel.is_some() && !kernel_hashes {
        return Err("<os><kernel> without <launchSecurity kernelHashes='yes'>: the kernel boots unmeasured, so no digest binds it".into());
    }
    l.note_direct_boot([
        "<os><kernel>, kernelHashes='yes'",
        "<os><initrd>",
        "<os><cmdline>",
    ]);
    Ok(l)
}

/// `argv` with `--from-qemu X` (or `--from-qemu=X`) replaced by the flags the QEMU command line
/// gives the subcommand (for `id-block` and `verify`, after `--`), each printed on standard
/// error with its source. `argv` unchanged when it has no `--from-qemu`.
pub fn expand(argv: Vec<String>) -> Result<Vec<String>, String> {
    let is = |a: &str, flag: &str| a == flag || a.starts_with(&format!("{flag}="));
    let Some(at) = argv
        .iter()
        .position(|a| is(a, "--from-qemu") || is(a, "--from-libvirt"))
    else {
        return Ok(argv);
    };
    let libvirt = is(&argv[at], "--from-libvirt");
    let flag = if libvirt {
        "--from-libvirt"
    } else {
        "--from-qemu"
    };
    let (value, consumed) = match argv[at].strip_prefix(&format!("{flag}=")) {
        Some(v) => (v.to_string(), 1),
        None => (
            argv.get(at + 1)
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
            2,
        ),
    };
    let sub = argv
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    let launch = match libvirt {
        true => {
            let xml = super::files::read(Path::new(&value), 4 << 20)?;
            parse_libvirt(&String::from_utf8_lossy(&xml)).map_err(|e| format!("{value}: {e}"))?
        }
        false => parse(&words(&value)?)?,
    };
    let mut add = launch
        .words_for(&sub)
        .ok_or_else(|| format!("{flag}: `vmsa {sub}` takes no launch"))?;
    // The user's own --qemu names the release (and its legacy-vm-type) instead.
    if argv
        .iter()
        .any(|a| a == "--qemu" || a.starts_with("--qemu="))
    {
        if let Some(i) = add.iter().position(|a| a == "--qemu") {
            add.drain(i..i + 2);
        }
    }
    match libvirt {
        true => {
            crate::errln!("vmsa: from the libvirt domain {value} (libvirt 10.x, {QEMU_VERSION}):")
        }
        false => crate::errln!("vmsa: from the QEMU command line ({QEMU_VERSION} semantics):"),
    }
    for p in &launch.provenance {
        crate::errln!("  {p}");
    }
    if add.iter().any(|a| a == "--qemu") {
        crate::errln!(
            "  --qemu {QEMU_RELEASE} (the release modelled: its KVM init and APs' state, `vmsa profiles`; give --qemu VERSION for another)"
        );
    }
    let mut out: Vec<String> = argv[..at].to_vec();
    let rest = &argv[at + consumed..];
    let after_dashdash = argv[..at].iter().any(|a| a == "--");
    if matches!(sub.as_str(), "id-block" | "verify" | "capture") && !after_dashdash {
        out.extend(rest.iter().cloned());
        if !out.iter().any(|a| a == "--") {
            out.push("--".into());
        }
        out.extend(add);
    } else {
        out.extend(add);
        out.extend(rest.iter().cloned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        shell_split(s).unwrap()
    }

    #[test]
    fn the_sev_snp_example_of_qemus_documentation() {
        // docs/system/i386/amd-memory-encryption.rst (QEMU 10.x), the SEV-SNP example.
        let l = parse(&w(
            "qemu-system-x86_64 -machine q35,confidential-guest-support=sev0,vmport=off \\\n -object memory-backend-memfd,id=ram1,size=1G,share=true,prealloc=false \\\n -machine memory-backend=ram1 \\\n -object sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1 \\\n -bios OVMF.fd -smp 4 -cpu EPYC-v4",
        ))
        .unwrap();
        assert_eq!(
            (
                l.mode.as_str(),
                l.vcpus,
                l.cpu.as_deref(),
                l.ovmf.as_deref()
            ),
            ("snp", 4, Some("EPYC-v4"), Some("OVMF.fd"))
        );
        assert_eq!(
            l.measure_words().join(" "),
            "--mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd --qemu 10.2"
        );
    }

    #[test]
    fn smp_forms_policy_pflash_and_refusals() {
        let base = "-machine q35,confidential-guest-support=s -bios F";
        let l = parse(&w(&format!(
            "{base} -object sev-guest,id=s,policy=0x5 -smp sockets=2,cores=3,threads=2"
        )))
        .unwrap();
        assert_eq!((l.mode.as_str(), l.vcpus), ("seves", 12));
        let l = parse(&w(&format!(
            "{base} -object sev-guest,id=s,policy=1 -smp 8,sockets=2"
        )))
        .unwrap();
        assert_eq!((l.mode.as_str(), l.vcpus), ("sev", 8));
        let l = parse(&w("-M q35,confidential-guest-support=s,pflash0=fmt -object sev-snp-guest,id=s -blockdev node-name=file0,driver=file,filename=/fw/OVMF_CODE.fd,read-only=on -blockdev node-name=fmt,driver=raw,file=file0")).unwrap();
        assert_eq!(l.ovmf.as_deref(), Some("/fw/OVMF_CODE.fd"));
        let l = parse(&w("-M q35,confidential-guest-support=s -object sev-snp-guest,id=s -drive if=pflash,format=raw,unit=0,file=/a/b,,c.fd,readonly=on -drive if=pflash,unit=1,file=vars.fd")).unwrap();
        assert_eq!(l.ovmf.as_deref(), Some("/a/b,c.fd"));
        let e = parse(&w(&format!("{base} -object sev-snp-guest,id=s,bogus=1"))).unwrap_err();
        assert_eq!(e, "QEMU: Property 'sev-snp-guest.bogus' not found");
        let e = parse(&w(&format!(
            "{base} -object sev-snp-guest,id=s -kernel vmlinuz"
        )))
        .unwrap_err();
        assert!(e.contains("kernel-hashes=on"), "{e}");
        let e = parse(&w(&format!("{base} -object sev-snp-guest,id=s -cpu host"))).unwrap_err();
        assert!(e.contains("--vcpu-sig"), "{e}");
        let e = parse(&w("-machine q35 -bios F")).unwrap_err();
        assert!(e.contains("not an SEV guest"), "{e}");
    }

    #[test]
    fn libvirts_json_objects() {
        // The form libvirt 10.x writes for an SEV-SNP domain (qemuBuildSEVSNPCommandLine).
        let l = parse(&w(r#"/usr/bin/qemu-system-x86_64 -name guest=snp -machine pc-q35-9.0,usb=off,dump-guest-core=off,memory-backend=pc.ram,confidential-guest-support=lsec0,pflash0=libvirt-pflash0-format -blockdev '{"driver":"file","filename":"/usr/share/OVMF/OVMF.amdsev.fd","node-name":"libvirt-pflash0-storage","auto-read-only":true,"discard":"unmap"}' -blockdev '{"node-name":"libvirt-pflash0-format","read-only":true,"driver":"raw","file":"libvirt-pflash0-storage"}' -cpu EPYC-Genoa -smp 2,sockets=2,cores=1,threads=1 -object '{"qom-type":"sev-snp-guest","id":"lsec0","cbitpos":51,"reduced-phys-bits":1,"policy":196608,"kernel-hashes":true}' -kernel /k -append 'console=ttyS0 root=/dev/vda'"#)).unwrap();
        assert_eq!(
            (
                l.mode.as_str(),
                l.vcpus,
                l.cpu.as_deref(),
                l.ovmf.as_deref(),
                l.policy,
                l.append.as_deref()
            ),
            (
                "snp",
                2,
                Some("EPYC-Genoa"),
                Some("/usr/share/OVMF/OVMF.amdsev.fd"),
                Some(0x30000),
                Some("console=ttyS0 root=/dev/vda")
            )
        );
    }

    #[test]
    fn cpu_properties_that_change_the_signature_are_refused() {
        let base = "-machine q35,confidential-guest-support=s -object sev-snp-guest,id=s -bios F";
        for cpu in [
            "EPYC-v4,family=25",
            "EPYC-v4,model=1",
            "EPYC-Milan,stepping=2",
        ] {
            let e = parse(&w(&format!("{base} -cpu {cpu}"))).unwrap_err();
            assert!(e.contains("--vcpu-sig instead"), "{cpu}: {e}");
        }
        let l = parse(&w(&format!("{base} -cpu EPYC-v4,+avx2,-pku"))).unwrap();
        assert_eq!(l.cpu.as_deref(), Some("EPYC-v4"));
    }

    #[test]
    fn proc_cmdline_and_shell_quoting() {
        assert_eq!(
            w(r#"a 'b c' "d \"e\"" f\ g"#),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert!(shell_split("a 'b").is_err());
    }
}
