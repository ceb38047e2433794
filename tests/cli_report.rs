//! `vmsa report FILE`: a real report (`tests/data/reports`) as raw bytes, hex and base64 gives
//! the same decoding; the fields printed are the report's bytes (known answers by hand from
//! the file); bad inputs are one-line errors.
mod common;

use base64::Engine;
use common::{TempDir, vmsa_bin};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/reports")
        .join(name)
}

#[test]
fn raw_hex_and_base64_read_the_same() {
    let raw = std::fs::read(data("milan-v2-virtee.report.bin")).unwrap();
    let dir = TempDir::new("report");
    let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
    // Wrapped at 64 columns, as a person might paste it.
    let wrapped: String = hex
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let inputs = [
        data("milan-v2-virtee.report.bin"),
        // The sev crate's own test file: uppercase hex, no newline.
        data("milan-v2-virtee.report.hex"),
        dir.write("wrapped.hex", wrapped.as_bytes()),
        dir.write("report.b64", format!("{b64}\n").as_bytes()),
    ];
    let mut outs = Vec::new();
    for p in &inputs {
        let (code, out, err) = vmsa_bin(&["report", "--product", "milan", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", p.display());
        outs.push(out);
    }
    assert!(outs.iter().all(|o| *o == outs[0]));
    let out = &outs[0];
    // By hand from the bytes: 0x090 is the measurement, 0x180 REPORTED_TCB 03 00 00 00 00 00 08 73.
    let measurement: String = raw[0x90..0xc0].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        out.contains(&format!("0x090 measurement        {measurement}")),
        "{out}"
    );
    assert!(out.contains("0x180 reported_tcb       boot loader 3, tee 0, snp 8, microcode 115"));
    assert!(out.contains("0x048 key_info           0x0: signed by VCEK"));
    assert!(out.contains("0x1e8 current_version    1.52.4"));
    assert!(out.contains("Milan (as named: the report does not say)"));
}

#[test]
fn json_has_every_field() {
    let (code, out, err) = vmsa_bin(&[
        "report",
        "--json",
        data("turin-v5-oak.report.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 5);
    assert_eq!(v["product"], "turin");
    assert_eq!(v["product_from"], "report");
    assert_eq!(v["reported_tcb"]["fmc"], 0);
    assert_eq!(v["reported_tcb"]["microcode"], 71);
    assert_eq!(v["key_info"]["signing_key"], "VCEK");
    assert_eq!(v["cpuid"]["family"], 0x1a);
    // Turin sets platform-info bit 6, which the ABI the peers follow reserves.
    assert_eq!(v["platform_info"]["unknown_bits"], "0x40");
    for key in [
        "guest_svn",
        "policy",
        "family_id",
        "image_id",
        "vmpl",
        "signature_algo",
        "current_tcb",
        "report_data",
        "measurement",
        "host_data",
        "id_key_digest",
        "author_key_digest",
        "report_id",
        "report_id_ma",
        "chip_id",
        "committed_tcb",
        "current_version",
        "committed_version",
        "launch_tcb",
        "launch_mit_vector",
        "current_mit_vector",
        "signature_r",
        "signature_s",
    ] {
        assert!(!v[key].is_null(), "{key}");
    }
}

#[test]
fn bad_reports_are_one_line_errors() {
    let dir = TempDir::new("bad");
    let raw = std::fs::read(data("genoa-v5-oak.report.bin")).unwrap();
    let mut v9 = raw.clone();
    v9[0] = 9;
    let cases: Vec<(PathBuf, &[&str], &str)> = vec![
        (
            data("milan-v2-go-sev-guest.report.bin"),
            &[],
            "name the product",
        ),
        (
            dir.write("short.bin", &raw[..1000]),
            &[],
            "not a report: 1000 bytes, neither the 1184 raw bytes",
        ),
        (
            dir.write("odd.hex", b"abc"),
            &[],
            "hex text of odd length (3 digits)",
        ),
        (
            dir.write("short.hex", b"abcd"),
            &[],
            "the hex text holds 2 bytes; a report has 1184",
        ),
        (
            dir.write("v9.bin", &v9),
            &[],
            "report version 9 is not one this reader knows",
        ),
        (dir.write("empty", b""), &[], "not a report: 0 bytes"),
        (
            data("genoa-v5-oak.report.bin"),
            &["--product", "zen9"],
            "unknown product",
        ),
    ];
    for (path, extra, msg) in cases {
        let mut args = vec!["report", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = vmsa_bin(&args);
        assert_eq!(code, 2, "{}: {out}{err}", path.display());
        assert!(err.contains(msg), "{}: {err}", path.display());
        // (clap's own argument errors carry a hint line.)
        if extra.is_empty() {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        assert!(out.is_empty());
    }
}
