//! Walking the variable-header section as type/length/value records.
//!
//! Each record is an `IGVM_VHS_VARIABLE_HEADER {u32 type; u32 length}` followed by `length`
//! bytes of body and zero padding to the next multiple of 8 (`igvm_defs` 0.5 crate docs,
//! "Variable Header"). The record must lie entirely inside the section, padding included.

use super::error::{At, IgvmError};
use igvm_defs::{IGVM_VHS_VARIABLE_HEADER, IgvmVariableHeaderType};
use zerocopy::FromBytes;

/// One variable header, not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    /// Where it is.
    pub at: At,
    /// Its type, optional bit included.
    pub typ: IgvmVariableHeaderType,
    /// Its body (`length` bytes, padding excluded).
    pub body: &'a [u8],
}

/// Iterator over the records of a variable-header section. After an error it ends.
#[derive(Debug, Clone)]
pub struct RawHeaders<'a> {
    rest: &'a [u8],
    offset: u32,
    index: u32,
    failed: bool,
}

impl<'a> RawHeaders<'a> {
    /// Walks `section`, which starts at file offset `offset`.
    pub fn new(section: &'a [u8], offset: u32) -> Self {
        RawHeaders {
            rest: section,
            offset,
            index: 0,
            failed: false,
        }
    }

    fn step(&mut self) -> Result<RawHeader<'a>, IgvmError> {
        let at = At {
            index: self.index,
            offset: self.offset,
        };
        let truncated = IgvmError::HeaderTruncated { at };
        let (tl, after) =
            IGVM_VHS_VARIABLE_HEADER::read_from_prefix(self.rest).map_err(|_| truncated)?;
        let length = usize::try_from(tl.length).map_err(|_| truncated)?;
        let padded = length.checked_add(7).ok_or(truncated)? & !7;
        let record = after.get(..padded).ok_or(truncated)?;
        let (body, padding) = record.split_at(length);
        if padding.iter().any(|&b| b != 0) {
            return Err(IgvmError::NonZeroPadding { at });
        }
        let consumed =
            u32::try_from(padded + size_of::<IGVM_VHS_VARIABLE_HEADER>()).map_err(|_| truncated)?;
        self.rest = after.get(padded..).unwrap_or(&[]);
        self.offset = self.offset.checked_add(consumed).ok_or(truncated)?;
        self.index = self.index.saturating_add(1);
        Ok(RawHeader {
            at,
            typ: tl.typ,
            body,
        })
    }
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = Result<RawHeader<'a>, IgvmError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.step();
        self.failed = item.is_err();
        Some(item)
    }
}
