//! GUIDs in the byte order EFI stores them: the one encoder the OVMF footer table, the SEV
//! kernel-hashes table and the IGVM files use.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A GUID in the byte order EFI stores it (the first three fields little-endian, as Python's
/// `uuid.bytes_le` and QEMU's `qemu_uuid_bswap` produce).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(transparent)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]` in text.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses the usual text form (`96b582de-1fb2-45f7-baea-a366c55a082d`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.as_bytes();
        if t.len() != 36 {
            return None;
        }
        // Position in the text of each byte of the big-endian (RFC 4122) form.
        let mut be = [0u8; 16];
        let mut i = 0;
        for (n, out) in be.iter_mut().enumerate() {
            if matches!(n, 4 | 6 | 8 | 10) {
                if t.get(i) != Some(&b'-') {
                    return None;
                }
                i += 1;
            }
            let hi = hex_digit(*t.get(i)?)?;
            let lo = hex_digit(*t.get(i + 1)?)?;
            *out = hi << 4 | lo;
            i += 2;
        }
        let [a0, a1, a2, a3, b0, b1, c0, c1, r @ ..] = be;
        Some(Self::from_fields(
            u32::from_be_bytes([a0, a1, a2, a3]),
            u16::from_be_bytes([b0, b1]),
            u16::from_be_bytes([c0, c1]),
            r,
        ))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, rest @ ..] = self.0;
        write!(
            f,
            "{a3:02x}{a2:02x}{a1:02x}{a0:02x}-{b1:02x}{b0:02x}-{c1:02x}{c0:02x}-{d0:02x}{d1:02x}-"
        )?;
        for b in rest {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOOTER: Guid = Guid::from_fields(
        0x96b582de,
        0x1fb2,
        0x45f7,
        [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
    );

    #[test]
    fn text_round_trip_and_byte_order() {
        assert_eq!(
            FOOTER.0[..4],
            [0xde, 0x82, 0xb5, 0x96],
            "first field little-endian, as in the image"
        );
        let text = "96b582de-1fb2-45f7-baea-a366c55a082d";
        assert_eq!(Guid::parse(text), Some(FOOTER));
        let mut s = Buf([0; 64], 0);
        core::fmt::write(&mut s, format_args!("{FOOTER}")).unwrap();
        assert_eq!(core::str::from_utf8(&s.0[..s.1]).unwrap(), text);
        assert_eq!(Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082"), None);
        assert_eq!(Guid::parse("96b582de+1fb2-45f7-baea-a366c55a082d"), None);
        assert_eq!(Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082g"), None);
    }

    struct Buf([u8; 64], usize);
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
}
