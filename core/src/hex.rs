//! Bytes as lowercase hex, and back: the one encoding every front end prints digests, GUID
//! data and pages in.

use core::fmt;

/// `bytes` displayed as lowercase hex, two digits a byte, no separators.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hex({self})")
    }
}

/// `N` bytes from exactly `2 * N` hex digits (either case), surrounding blanks ignored.
pub fn parse<const N: usize>(text: &str) -> Option<[u8; N]> {
    let t = text.trim().as_bytes();
    if t.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
        let [hi, lo] = [pair.first()?, pair.get(1)?].map(|c| (*c as char).to_digit(16));
        *o = (hi? << 4 | lo?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 8];
        let mut w = Buf(&mut buf, 0);
        core::fmt::write(&mut w, format_args!("{}", Hex(&[0x00, 0xab, 0x7f, 0x10]))).unwrap();
        assert_eq!(&buf, b"00ab7f10");
        assert_eq!(parse::<4>(" 00AB7f10\n"), Some([0x00, 0xab, 0x7f, 0x10]));
        assert_eq!(parse::<4>("00ab7f1"), None);
        assert_eq!(parse::<4>("00ab7f1g"), None);
        assert_eq!(parse::<2>("+1ab"), None);
    }

    struct Buf<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for Buf<'_> {
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
