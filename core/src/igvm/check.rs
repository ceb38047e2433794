//! Checks across headers: parameter area life cycle, relocation regions, once-only headers.
//!
//! State lives in fixed-capacity `heapless` tables, so the reader never allocates; a file
//! with more parameter areas or relocation regions than the capacity is refused with
//! [`IgvmError::CapacityExceeded`] rather than read partly.

use super::error::{At, IgvmError, ParameterAreaProblem};
use super::header::{Entry, Header};

/// Parameter areas a file may declare.
pub const MAX_PARAMETER_AREAS: usize = 256;
/// Relocatable and page-table regions a file may declare.
pub const MAX_REGIONS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Area {
    index: u32,
    size: u64,
    inserted: bool,
}

/// A relocation or page-table region, kept to check overlaps and VP references.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub at: At,
    pub mask: u32,
    pub gpa: u64,
    pub size: u64,
    pub vp_index: u16,
    pub vtl: u8,
    pub page_table: bool,
}

/// What the checks remember while walking the headers.
#[derive(Debug, Default)]
pub(crate) struct State {
    areas: heapless::Vec<Area, MAX_PARAMETER_AREAS>,
    pub regions: heapless::Vec<Region, MAX_REGIONS>,
    page_table_masks: u32,
    id_block_masks: u32,
    corim_documents: u32,
    corim_signatures: u32,
    version_string: bool,
}

impl State {
    fn area(&mut self, at: At, index: u32) -> Result<&mut Area, IgvmError> {
        let area = self.areas.iter_mut().find(|a| a.index == index);
        let area = area.ok_or(IgvmError::ParameterArea {
            at,
            area: index,
            problem: ParameterAreaProblem::Undeclared,
        })?;
        if area.inserted {
            return Err(IgvmError::ParameterArea {
                at,
                area: index,
                problem: ParameterAreaProblem::AlreadyInserted,
            });
        }
        Ok(area)
    }

    fn once_per_mask(
        at: At,
        seen: &mut u32,
        mask: u32,
        what: &'static str,
    ) -> Result<(), IgvmError> {
        if *seen & mask != 0 {
            return Err(IgvmError::Duplicate {
                at,
                what,
                mask: *seen & mask,
            });
        }
        *seen |= mask;
        Ok(())
    }

    fn region(&mut self, region: Region) -> Result<(), IgvmError> {
        let end = region.gpa.saturating_add(region.size);
        let overlaps = self.regions.iter().any(|r| {
            r.mask & region.mask != 0 && r.gpa < end && region.gpa < r.gpa.saturating_add(r.size)
        });
        if overlaps {
            return Err(IgvmError::RegionsOverlap {
                at: region.at,
                gpa: region.gpa,
                size: region.size,
            });
        }
        self.regions
            .push(region)
            .map_err(|_| IgvmError::CapacityExceeded {
                at: region.at,
                what: "relocation and page-table regions",
                capacity: MAX_REGIONS,
            })
    }

    /// Checks one decoded header against what came before it.
    pub(crate) fn observe(&mut self, entry: &Entry<'_>) -> Result<(), IgvmError> {
        let at = entry.at;
        match entry.header {
            Header::RelocatableRegion(r) => self.region(Region {
                at,
                mask: r.compatibility_mask,
                gpa: r.relocation_region_gpa,
                size: r.relocation_region_size,
                vp_index: r.vp_index,
                vtl: r.vtl,
                page_table: false,
            }),
            Header::PageTableRelocation(r) => {
                Self::once_per_mask(
                    at,
                    &mut self.page_table_masks,
                    r.compatibility_mask,
                    "PAGE_TABLE_RELOCATION_REGION",
                )?;
                self.region(Region {
                    at,
                    mask: r.compatibility_mask,
                    gpa: r.gpa,
                    size: r.size,
                    vp_index: r.vp_index,
                    vtl: r.vtl,
                    page_table: true,
                })
            }
            Header::CorimDocument(c) => Self::once_per_mask(
                at,
                &mut self.corim_documents,
                c.compatibility_mask,
                "CORIM_DOCUMENT",
            ),
            Header::CorimSignature(c) => {
                let missing = c.compatibility_mask & !self.corim_documents;
                if missing != 0 {
                    return Err(IgvmError::CorimSignatureWithoutDocument { at, mask: missing });
                }
                Self::once_per_mask(
                    at,
                    &mut self.corim_signatures,
                    c.compatibility_mask,
                    "CORIM_SIGNATURE",
                )
            }
            Header::VersionString(_) => {
                if self.version_string {
                    return Err(IgvmError::Duplicate {
                        at,
                        what: "VERSION_STRING",
                        mask: 0,
                    });
                }
                self.version_string = true;
                Ok(())
            }
            Header::SnpIdBlock(b) => {
                // QEMU: "IGVM: Multiple ID blocks encountered in IGVM file." (backends/igvm.c)
                Self::once_per_mask(
                    at,
                    &mut self.id_block_masks,
                    b.compatibility_mask(),
                    "SNP_ID_BLOCK",
                )
            }
            Header::ParameterArea(p) => {
                if self.areas.iter().any(|a| a.index == p.parameter_area_index) {
                    return Err(IgvmError::ParameterArea {
                        at,
                        area: p.parameter_area_index,
                        problem: ParameterAreaProblem::DeclaredTwice,
                    });
                }
                let area = Area {
                    index: p.parameter_area_index,
                    size: p.number_of_bytes,
                    inserted: false,
                };
                self.areas
                    .push(area)
                    .map_err(|_| IgvmError::CapacityExceeded {
                        at,
                        what: "parameter areas",
                        capacity: MAX_PARAMETER_AREAS,
                    })
            }
            Header::Parameter(p) => {
                let index = p.parameter.parameter_area_index;
                let size = p.min_size();
                let area = self.area(at, index)?;
                let end = u64::from(p.parameter.byte_offset) + u64::from(size);
                if end > area.size {
                    return Err(IgvmError::ParameterOutsideArea {
                        at,
                        area: index,
                        byte_offset: p.parameter.byte_offset,
                        size,
                        area_size: area.size,
                    });
                }
                Ok(())
            }
            Header::ParameterInsert(p) => {
                self.area(at, p.parameter_area_index)?.inserted = true;
                let inside = self.regions.iter().any(|r| {
                    r.page_table
                        && r.mask & p.compatibility_mask != 0
                        && p.gpa >= r.gpa
                        && p.gpa - r.gpa < r.size
                });
                if inside {
                    return Err(IgvmError::InsertInPageTableRegion { at, gpa: p.gpa });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
