//! What an IGVM loader writes into guest memory for one platform: the file's directives as a
//! sequence of placements (GPA, size, bytes), in file order, borrowed from the file.
//!
//! The IGVM rules (`igvm_defs` 0.5 docs; QEMU 10.1 `backends/igvm.c` `qigvm_directive_*`):
//!
//! | directive | placed as |
//! |---|---|
//! | `PAGE_DATA` | its 4 KiB of file data at `gpa`, or zeros when it has none; a 2 MiB page gets the first 4 KiB from the file and zeros after |
//! | `PARAMETER_INSERT` | the area's initial data (or zeros), `number_of_bytes` long, at `gpa` |
//! | `REQUIRED_MEMORY` | zeros: memory that must exist |
//! | parameter usages | the loader's value at `insert gpa + byte_offset`: the vCPU count (`u32`) for `VP_COUNT_PARAMETER`; the other parameters (memory map, MADT, SRAT, command line...) are left as the area's initial bytes and reported as not supplied |
//!
//! Later placements overwrite earlier ones (file order), as a loader copying them in turn does.
//! Parameter usages come before their area's insert in the file; their values are placed right
//! after the insert (which copies the area's initial bytes), at the insert's position.
//! Guest memory plumbing (mappings, memory slots) is the VMM's; this module only says what goes
//! where. It never allocates and never panics; ranges that overflow the address space are
//! refused with [`LoadError::Range`].

use super::{At, Header, IgvmFile};
use igvm_defs::{IgvmPageDataType, IgvmVariableHeaderType};

/// What a placement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadKind {
    /// `PAGE_DATA`.
    Page {
        /// NORMAL, SECRETS, CPUID_DATA or CPUID_XF.
        data_type: IgvmPageDataType,
        /// The `unmeasured` flag.
        unmeasured: bool,
        /// The `shared` flag (host-visible memory).
        shared: bool,
    },
    /// `PARAMETER_INSERT` of a parameter area.
    ParameterArea {
        /// The area index.
        index: u32,
    },
    /// `REQUIRED_MEMORY`.
    RequiredMemory,
    /// A parameter usage whose value the loader writes (`VP_COUNT_PARAMETER`), or leaves as the
    /// area's initial bytes (`value` `None`: not supplied).
    Parameter {
        /// The parameter type.
        kind: IgvmVariableHeaderType,
        /// The value written, little endian, when the loader supplies it.
        value: Option<u32>,
    },
}

/// One placement: `size` bytes at `gpa`, the first `data.len()` of them from `data`, the rest
/// zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load<'a> {
    /// The header it comes from.
    pub at: At,
    /// Guest physical address.
    pub gpa: u64,
    /// Bytes of guest memory covered.
    pub size: u64,
    /// The leading bytes (file data, or the value of a parameter); the rest is zero.
    pub data: LoadData<'a>,
    /// What it is.
    pub kind: LoadKind,
}

/// The bytes of a [`Load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadData<'a> {
    /// Zeros.
    Zero,
    /// Bytes from the file.
    File(&'a [u8]),
    /// A little-endian `u32` the loader supplies.
    U32([u8; 4]),
    /// Nothing is written (a parameter the loader does not supply).
    None,
}

impl LoadData<'_> {
    /// The leading bytes, empty for [`LoadData::Zero`] and [`LoadData::None`].
    pub fn bytes(&self) -> &[u8] {
        match self {
            LoadData::File(b) => b,
            LoadData::U32(b) => b,
            LoadData::Zero | LoadData::None => &[],
        }
    }
}

/// A placement that cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// `gpa + size` overflows the 64-bit address space.
    #[error("{at}: {size:#x} bytes at GPA {gpa:#x} overflow the address space")]
    Range {
        /// The header.
        at: At,
        /// GPA.
        gpa: u64,
        /// Size.
        size: u64,
    },
    /// A parameter insert or usage names an area no `PARAMETER_AREA` declares (the reader
    /// refuses such files; kept so that the loader never assumes it).
    #[error("{at}: parameter area {index} is not declared")]
    UnknownArea {
        /// The header.
        at: At,
        /// The area index.
        index: u32,
    },
}

/// The placements of `file` for the platform with compatibility mask `mask`, in file order, for
/// a guest with `vcpus` vCPUs (the `VP_COUNT_PARAMETER` value).
pub fn loads<'f, 'a>(
    file: &'f IgvmFile<'a>,
    mask: u32,
    vcpus: u32,
) -> impl Iterator<Item = Result<Load<'a>, LoadError>> + 'f {
    file.directives(mask).flat_map(move |e| {
        let this = load_of(file, e.at, &e.header).transpose();
        let inserted = match e.header {
            Header::ParameterInsert(i) => Some((i.parameter_area_index, i.gpa)),
            _ => None,
        };
        let parameters = inserted.into_iter().flat_map(move |(index, base)| {
            file.directives(mask).filter_map(move |p| match p.header {
                Header::Parameter(par) if par.parameter.parameter_area_index == index => {
                    Some(parameter_load(p.at, &par, base, vcpus))
                }
                _ => None,
            })
        });
        this.into_iter().chain(parameters)
    })
}

/// The value of parameter `p` in an area inserted at `base`.
fn parameter_load<'a>(
    at: At,
    p: &crate::igvm::Parameter,
    base: u64,
    vcpus: u32,
) -> Result<Load<'a>, LoadError> {
    let offset = u64::from(p.parameter.byte_offset);
    let gpa = base.checked_add(offset).ok_or(LoadError::Range {
        at,
        gpa: base,
        size: offset,
    })?;
    let (data, value) = match p.kind {
        IgvmVariableHeaderType::IGVM_VHT_VP_COUNT_PARAMETER => {
            (LoadData::U32(vcpus.to_le_bytes()), Some(vcpus))
        }
        _ => (LoadData::None, None),
    };
    let size = data.bytes().len() as u64;
    checked(at, gpa, size)?;
    Ok(Load {
        at,
        gpa,
        size,
        data,
        kind: LoadKind::Parameter {
            kind: p.kind,
            value,
        },
    })
}

fn checked(at: At, gpa: u64, size: u64) -> Result<(), LoadError> {
    gpa.checked_add(size)
        .map(|_| ())
        .ok_or(LoadError::Range { at, gpa, size })
}

fn load_of<'a>(
    file: &IgvmFile<'a>,
    at: At,
    header: &Header<'a>,
) -> Result<Option<Load<'a>>, LoadError> {
    let load = match *header {
        Header::PageData(p) => Load {
            at,
            gpa: p.gpa,
            size: p.size(),
            data: p.data.map_or(LoadData::Zero, |d| LoadData::File(&d[..])),
            kind: LoadKind::Page {
                data_type: p.data_type,
                unmeasured: p.flags.unmeasured(),
                shared: p.flags.shared(),
            },
        },
        Header::ParameterInsert(ins) => {
            let index = ins.parameter_area_index;
            let area = area(file, index).ok_or(LoadError::UnknownArea { at, index })?;
            Load {
                at,
                gpa: ins.gpa,
                size: area.number_of_bytes,
                data: area.initial_data.map_or(LoadData::Zero, LoadData::File),
                kind: LoadKind::ParameterArea { index },
            }
        }
        Header::RequiredMemory(r) => Load {
            at,
            gpa: r.gpa,
            size: u64::from(r.number_of_bytes),
            data: LoadData::Zero,
            kind: LoadKind::RequiredMemory,
        },
        _ => return Ok(None),
    };
    checked(at, load.gpa, load.size)?;
    Ok(Some(load))
}

/// The parameter area declared with `index` (its size and initial data), if any.
pub fn parameter_area<'a>(
    file: &IgvmFile<'a>,
    index: u32,
) -> Option<crate::igvm::ParameterArea<'a>> {
    area(file, index)
}

/// The area declared with `index`.
fn area<'a>(file: &IgvmFile<'a>, index: u32) -> Option<crate::igvm::ParameterArea<'a>> {
    file.headers().find_map(|e| match e.header {
        Header::ParameterArea(a) if a.parameter_area_index == index => Some(a),
        _ => None,
    })
}

/// The end of the highest placement (exclusive), or `None` when the platform places nothing.
pub fn extent(file: &IgvmFile<'_>, mask: u32) -> Result<Option<u64>, LoadError> {
    let mut end: Option<u64> = None;
    for l in loads(file, mask, 1) {
        let l = l?;
        // `loads` checked that this does not overflow.
        let e = l.gpa.saturating_add(l.size);
        end = Some(end.map_or(e, |x| x.max(e)));
    }
    Ok(end)
}
