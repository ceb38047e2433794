//! Fuzz the SNP attestation report reader: any bytes are a report or a typed error, for every
//! product a reader may name, and a report's decoded parts are all reachable without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsa_core::report::{KeyInfo, Product, Report, TcbVersion};

fuzz_target!(|data: &[u8]| {
    for product in [None, Some(Product::Milan), Some(Product::Turin)] {
        let Ok(r) = Report::parse(data, product) else {
            continue;
        };
        let _ = (r.signature_be(), r.chip_id().len(), r.signed_bytes().len());
        let p = r.policy();
        let _ = (p.abi_major(), p.abi_minor(), p.flags(), p.unknown_bits());
        let _ = (
            r.platform_info(),
            r.current_version(),
            r.committed_version(),
        );
        // What was decoded encodes back to the same bytes.
        assert_eq!(KeyInfo::decode(r.key_info.encode()), Ok(r.key_info));
        for (t, raw) in [
            (r.current_tcb, r.raw.current_tcb),
            (r.reported_tcb, r.raw.reported_tcb),
        ] {
            assert_eq!(t.encode(r.product), raw);
            assert_eq!(TcbVersion::decode(raw, r.product), Some(t));
            let _ = t.to_string();
        }
    }
});
