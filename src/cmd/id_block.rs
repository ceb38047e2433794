//! `vmsa id-block`: the ID block and ID authentication information of an SNP launch, signed
//! with the owner's ID key (and author key), as QEMU's `sev-snp-guest` object takes them
//! (`id-block=…,id-auth=…`, base64) and with the key digests the report will carry; the output
//! of sev-snp-measure's `snp-create-id-block`, line for line. `--verify` checks such a pair.
//!
//! The launch digest is `--measurement`, or what `vmsa measure` computes from the arguments after
//! `--` (OVMF or IGVM). With `--igvm-out` the signed block is written into a copy of the IGVM
//! file as its `SNP_ID_BLOCK` directive (added, or replacing the platform's), what igvmmeasure's
//! `sign` does; `--verify-igvm` checks the block an IGVM file carries.
use super::CmdResult;
use super::args::{parse_int, parse_u32};
use super::files::{self, limits};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use vmsa_attest::id_block::{SigningKey, id_auth, signing_key, verify_id_auth};
use vmsa_core::id_block::{IdAuthInfo, IdBlock};
use zerocopy::{FromBytes, IntoBytes};

/// Arguments of `vmsa id-block`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The launch digest the ID block binds (base64, as snp-create-id-block takes it, or hex);
    /// or give the launch after `--`, as `vmsa measure` takes it.
    #[arg(long, required_unless_present_any = ["verify", "verify_igvm", "launch"], conflicts_with = "launch")]
    pub measurement: Option<String>,
    /// The ID key: a P-384 private key, PEM (SEC1 or PKCS#8).
    #[arg(long, visible_alias = "idkey", required_unless_present_any = ["verify", "verify_igvm"])]
    pub id_key: Option<PathBuf>,
    /// The author key (optional): signs the ID key; the launch then sets AUTHOR_KEY_EN.
    #[arg(long, visible_alias = "authorkey")]
    pub author_key: Option<PathBuf>,
    /// FAMILY_ID (hex, up to 16 bytes; default zero).
    #[arg(long, default_value = "")]
    pub family_id: String,
    /// IMAGE_ID (hex, up to 16 bytes; default zero).
    #[arg(long, default_value = "")]
    pub image_id: String,
    /// GUEST_SVN.
    #[arg(long, default_value = "0", value_parser = parse_u32)]
    pub guest_svn: u32,
    /// POLICY: the guest policy the launch uses (default 0x30000, QEMU's and the peer's; with
    /// --igvm-out, the file's SNP `GUEST_POLICY`, which QEMU puts in the block).
    #[arg(long, value_parser = parse_int)]
    pub policy: Option<u64>,
    /// Check a pair instead: `id-block=BASE64,id-auth=BASE64` (the first line this command
    /// prints; QEMU's property syntax); with --measurement, also that the block binds it.
    #[arg(long, visible_alias = "check", value_name = "PAIR", conflicts_with_all = ["id_key", "author_key", "verify_igvm"])]
    pub verify: Option<String>,
    /// Check the SNP_ID_BLOCK of an IGVM file as QEMU launches it: both signatures, the key
    /// digests, and its launch digest against the file's (the launch after `--`, default
    /// `--mode snp --igvm FILE`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["id_key", "author_key", "measurement"])]
    pub verify_igvm: Option<PathBuf>,
    /// Write the IGVM file of the launch (after `--`, with `--igvm`) to FILE with the signed
    /// SNP_ID_BLOCK (replacing the platform's, if it has one).
    #[arg(long, value_name = "FILE", requires = "launch")]
    pub igvm_out: Option<PathBuf>,
    /// The launch whose digest to sign: `vmsa measure`'s arguments (`-- --mode snp --vcpus 4
    /// --vcpu-type EPYC-v4 --ovmf OVMF.fd`, or `-- --mode snp --igvm FILE`).
    #[arg(last = true, value_name = "MEASURE ARGS")]
    pub launch: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn bytes_of(what: &str, text: &str, len: usize) -> Result<Vec<u8>, String> {
    super::args::hex_or_base64(what, text, len, false)
}

fn id16(what: &str, hex: &str) -> Result<[u8; 16], String> {
    let mut out = [0u8; 16];
    let t = hex.trim().trim_start_matches("0x");
    if t.len() > 32 || !t.len().is_multiple_of(2) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--{what}: up to 32 hex digits, an even number: {hex:?}"
        ));
    }
    for (i, o) in out.iter_mut().enumerate().take(t.len() / 2) {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn key(path: &std::path::Path) -> Result<SigningKey, String> {
    let pem = files::read(path, limits::REPORT_TEXT)?;
    let text = String::from_utf8(pem).map_err(|_| format!("{}: not PEM text", path.display()))?;
    signing_key(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `id-block=BASE64,id-auth=BASE64` (QEMU's `sev-snp-guest` properties, the first line
/// `vmsa id-block` prints), for the flag `what`.
pub fn parse_pair(what: &str, pair: &str) -> Result<(IdBlock, IdAuthInfo), String> {
    let mut block = None;
    let mut auth = None;
    for part in pair.trim().split(',') {
        match part.split_once('=') {
            Some(("id-block", v)) => block = Some(bytes_of("id-block", v, 96)?),
            Some(("id-auth", v)) => auth = Some(bytes_of("id-auth", v, 4096)?),
            _ => {
                return Err(format!(
                    "{what}: expected id-block=…,id-auth=…, found {part:?}"
                ));
            }
        }
    }
    let (Some(block), Some(auth)) = (block, auth) else {
        return Err(format!("{what}: both id-block=… and id-auth=… are needed"));
    };
    let block = IdBlock::read_from_bytes(&block).map_err(|_| "id-block: 96 bytes")?;
    let auth = IdAuthInfo::read_from_bytes(&auth).map_err(|_| "id-auth: 4096 bytes")?;
    Ok((block, auth))
}

/// The launch given after `--`: its arguments and SNP digest.
fn launch(words: &[String]) -> Result<(super::measure::Args, [u8; 48]), String> {
    let m = super::measure::parse_launch(words)?;
    if m.mode.mode != vmsa_core::SevMode::Snp || m.mode.ovmf_hash {
        return Err(
            "the launch after --: ID blocks are for SNP launches (--mode snp or snp:svsm)".into(),
        );
    }
    let d = super::measure::launch_digest(&m).map_err(|e| format!("the launch after --: {e}"))?;
    let d: [u8; 48] = d
        .try_into()
        .map_err(|_| "the launch after --: not an SNP digest")?;
    Ok((m, d))
}

/// `vmsa id-block`.
pub fn run(args: &Args) -> CmdResult {
    if let Some(path) = &args.verify_igvm {
        return verify_igvm(args, path);
    }
    if let Some(pair) = &args.verify {
        let (block, auth) = parse_pair("--verify", pair)?;
        let expected = match &args.measurement {
            Some(m) => Some(bytes_of("--measurement", m, 48)?),
            None => None,
        };
        verdict(args.json, &block, &auth, expected.as_deref())
    } else {
        let (ld, measure) = match &args.measurement {
            Some(m) => {
                let ld = bytes_of("--measurement", m, 48)?;
                let ld: [u8; 48] = ld.try_into().map_err(|_| "--measurement: 48 bytes")?;
                (ld, None)
            }
            None => {
                let (m, ld) = launch(&args.launch)?;
                (ld, Some(m))
            }
        };
        let igvm = match (
            &args.igvm_out,
            measure.as_ref().and_then(|m| m.igvm.as_ref()),
        ) {
            (Some(out), Some(input)) => Some((input, out)),
            (Some(_), None) => {
                return Err(
                    "--igvm-out needs the launch of an IGVM file (-- --mode snp --igvm FILE)"
                        .into(),
                );
            }
            (None, _) => None,
        };
        let igvm_in = match igvm {
            Some((input, _)) => Some(files::read(input, limits::IGVM)?),
            None => None,
        };
        let policy = match (&igvm_in, args.policy) {
            (Some(bytes), given) => {
                let file_policy = super::igvm_sign::snp_policy(bytes)?;
                if given.is_some_and(|p| p != file_policy) {
                    return Err(format!(
                        "--policy {:#x}: the IGVM file's SNP GUEST_POLICY is {file_policy:#x}, and QEMU puts the file's in the ID block",
                        given.unwrap_or(0)
                    ));
                }
                file_policy
            }
            (None, given) => given.unwrap_or(0x30000),
        };
        let id_path = args.id_key.as_ref().ok_or("--id-key is needed")?;
        let id_key = key(id_path)?;
        let author = args.author_key.as_deref().map(key).transpose()?;
        let block = IdBlock::new(
            ld,
            id16("family-id", &args.family_id)?,
            id16("image-id", &args.image_id)?,
            args.guest_svn,
            policy,
        );
        let auth = id_auth(&block, &id_key, author.as_ref());
        let id_digest = auth.id_key.digest();
        let author_digest = author.as_ref().map(|_| auth.author_key.digest());
        if let (Some((input, out)), Some(bytes)) = (igvm, &igvm_in) {
            let signed = super::igvm_sign::with_id_block(bytes, &block, &auth, author.is_some())
                .map_err(|e| format!("{}: {e}", input.display()))?;
            // Parsed back: our reader and the igvm crate accept it, and it launches with the
            // digest the block binds.
            super::igvm_sign::check_signed(&signed, measure.as_ref(), &ld)?;
            super::output::write_file(out, &signed)?;
        }
        if args.json {
            let out = json!({
                "id_block": B64.encode(block.as_bytes()),
                "id_auth": B64.encode(auth.as_bytes()),
                "id_key_digest": B64.encode(id_digest),
                "author_key_digest": author_digest.map(|d| B64.encode(d)),
                "author_key_en": author.is_some(),
            });
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
            );
        } else {
            // snp-create-id-block's output, line for line.
            crate::outln!(
                "id-block={},id-auth={}",
                B64.encode(block.as_bytes()),
                B64.encode(auth.as_bytes())
            );
            crate::outln!("id_key_hash: {}", B64.encode(id_digest));
            if let Some(d) = author_digest {
                crate::outln!("author_key: {}", B64.encode(d));
            }
        }
        if let Some((_, out)) = igvm {
            crate::errln!(
                "vmsa id-block: wrote {} with the SNP_ID_BLOCK",
                out.display()
            );
            if author.is_some() {
                crate::errln!(
                    "vmsa id-block: note: QEMU sets AUTHOR_KEY_EN from `sev-snp-guest,author-key-enabled=on`, not from the file"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `--verify-igvm FILE`: the file's SNP_ID_BLOCK as QEMU passes it to the firmware.
fn verify_igvm(args: &Args, path: &std::path::Path) -> CmdResult {
    let words: Vec<String> = if args.launch.is_empty() {
        ["--mode", "snp", "--igvm"]
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once(path.display().to_string()))
            .collect()
    } else {
        args.launch.clone()
    };
    let (_, digest) = launch(&words)?;
    let bytes = files::read(path, limits::IGVM)?;
    let (block, auth, _) =
        super::igvm_sign::id_block_of(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    verdict(args.json, &block, &auth, Some(&digest))
}

/// The verdict on an ID block and its authentication information, as the firmware checks them
/// (and, with `expected`, that the block binds that launch digest): text or JSON, exit 0 when
/// it verifies, 1 when not.
fn verdict(json: bool, block: &IdBlock, auth: &IdAuthInfo, expected: Option<&[u8]>) -> CmdResult {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let result = verify_id_auth(block, auth).and_then(|k| match expected {
        Some(ld) if ld != block.ld => Err(format!(
            "the ID block binds launch digest {}, the launch's is {}",
            hex(&block.ld),
            hex(ld)
        )),
        _ => Ok(k),
    });
    if json {
        let out = match &result {
            Ok(k) => json!({
                "verifies": true,
                "ld": hex(&block.ld),
                "policy": format!("{:#x}", block.policy),
                "id_key_digest": hex(&k.id_key_digest),
                "author_key_digest": k.author_key_digest.map(|d| hex(&d)),
            }),
            Err(e) => json!({ "verifies": false, "ld": hex(&block.ld), "error": e }),
        };
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        match &result {
            Ok(k) => {
                crate::outln!("ID block verifies: launch digest {}", hex(&block.ld));
                crate::outln!("policy:            {:#x}", block.policy);
                crate::outln!("id_key_digest:     {}", hex(&k.id_key_digest));
                match k.author_key_digest {
                    Some(a) => crate::outln!("author_key_digest: {}", hex(&a)),
                    None => crate::outln!("author_key_digest: none (no author key)"),
                }
            }
            Err(e) => crate::outln!("FAIL: {e}"),
        }
    }
    Ok(match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    })
}
