//! `vmsa id-block`: the ID block and ID authentication information of an SNP launch, signed
//! with the owner's ID key (and author key), as QEMU's `sev-snp-guest` object takes them
//! (`id-block=…,id-auth=…`, base64) and with the key digests the report will carry; the output
//! of sev-snp-measure's `snp-create-id-block`, line for line. `--verify` checks such a pair.
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
    /// The launch digest the ID block binds (base64, as snp-create-id-block takes it, or hex).
    #[arg(long, required_unless_present = "verify")]
    pub measurement: Option<String>,
    /// The ID key: a P-384 private key, PEM (SEC1 or PKCS#8).
    #[arg(long, visible_alias = "idkey", required_unless_present = "verify")]
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
    /// POLICY: the guest policy the launch uses (default 0x30000, QEMU's and the peer's).
    #[arg(long, default_value = "0x30000", value_parser = parse_int)]
    pub policy: u64,
    /// Check a pair instead: `id-block=BASE64,id-auth=BASE64` (the first line this command
    /// prints; QEMU's property syntax); with --measurement, also that the block binds it.
    #[arg(long, value_name = "PAIR", conflicts_with_all = ["id_key", "author_key"])]
    pub verify: Option<String>,
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

/// `vmsa id-block`.
pub fn run(args: &Args) -> CmdResult {
    if let Some(pair) = &args.verify {
        let mut block = None;
        let mut auth = None;
        for part in pair.trim().split(',') {
            match part.split_once('=') {
                Some(("id-block", v)) => block = Some(bytes_of("id-block", v, 96)?),
                Some(("id-auth", v)) => auth = Some(bytes_of("id-auth", v, 4096)?),
                _ => {
                    return Err(format!(
                        "--verify: expected id-block=…,id-auth=…, found {part:?}"
                    ));
                }
            }
        }
        let (Some(block), Some(auth)) = (block, auth) else {
            return Err("--verify: both id-block=… and id-auth=… are needed".into());
        };
        let block = IdBlock::read_from_bytes(&block).map_err(|_| "id-block: 96 bytes")?;
        let auth = IdAuthInfo::read_from_bytes(&auth).map_err(|_| "id-auth: 4096 bytes")?;
        let keys = verify_id_auth(&block, &auth);
        let ld_ok = match &args.measurement {
            Some(m) => bytes_of("--measurement", m, 48)? == block.ld,
            None => true,
        };
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match keys {
            Ok(k) if ld_ok => {
                crate::outln!("ID block verifies: launch digest {}", hex(&block.ld));
                crate::outln!("id_key_digest:     {}", hex(&k.id_key_digest));
                match k.author_key_digest {
                    Some(a) => crate::outln!("author_key_digest: {}", hex(&a)),
                    None => crate::outln!("author_key_digest: none (no author key)"),
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(_) => {
                crate::outln!(
                    "FAIL: the ID block binds launch digest {}, not the measurement given",
                    hex(&block.ld)
                );
                Ok(ExitCode::from(1))
            }
            Err(e) => {
                crate::outln!("FAIL: {e}");
                Ok(ExitCode::from(1))
            }
        }
    } else {
        let ld = bytes_of(
            "--measurement",
            args.measurement.as_deref().unwrap_or(""),
            48,
        )?;
        let ld: [u8; 48] = ld.try_into().map_err(|_| "--measurement: 48 bytes")?;
        let id_path = args.id_key.as_ref().ok_or("--id-key is needed")?;
        let id_key = key(id_path)?;
        let author = args.author_key.as_deref().map(key).transpose()?;
        let block = IdBlock::new(
            ld,
            id16("family-id", &args.family_id)?,
            id16("image-id", &args.image_id)?,
            args.guest_svn,
            args.policy,
        );
        let auth = id_auth(&block, &id_key, author.as_ref());
        let id_digest = auth.id_key.digest();
        let author_digest = author.as_ref().map(|_| auth.author_key.digest());
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
        Ok(ExitCode::SUCCESS)
    }
}
