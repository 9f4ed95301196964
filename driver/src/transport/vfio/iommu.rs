//! Choosing the container's IOMMU type from what the kernel offers.

use vfio_bindings::bindings::vfio::{
    VFIO_SPAPR_TCE_v2_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_NOIOMMU_IOMMU, VFIO_SPAPR_TCE_IOMMU,
    VFIO_TYPE1_IOMMU,
};

/// An IOMMU model of the legacy VFIO container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IommuType {
    /// `VFIO_TYPE1v2_IOMMU` (x86, arm64).
    Type1v2,
    /// `VFIO_TYPE1_IOMMU`.
    Type1,
    /// `VFIO_SPAPR_TCE_v2_IOMMU` (POWER8 and later).
    SpaprTceV2,
    /// `VFIO_SPAPR_TCE_IOMMU` (POWER, v1: needs `VFIO_IOMMU_ENABLE`).
    SpaprTce,
    /// `VFIO_NOIOMMU_IOMMU`: no isolation; only when the kernel was told to allow it.
    NoIommu,
}

impl IommuType {
    /// The order of preference (DESIGN.md: Type1v2, Type1, sPAPR TCE v2, sPAPR TCE,
    /// no-IOMMU).
    pub const PREFERENCE: [IommuType; 5] = [
        IommuType::Type1v2,
        IommuType::Type1,
        IommuType::SpaprTceV2,
        IommuType::SpaprTce,
        IommuType::NoIommu,
    ];

    /// The VFIO extension number, as passed to `VFIO_CHECK_EXTENSION` / `VFIO_SET_IOMMU`.
    pub const fn extension(self) -> u32 {
        match self {
            IommuType::Type1v2 => VFIO_TYPE1v2_IOMMU,
            IommuType::Type1 => VFIO_TYPE1_IOMMU,
            IommuType::SpaprTceV2 => VFIO_SPAPR_TCE_v2_IOMMU,
            IommuType::SpaprTce => VFIO_SPAPR_TCE_IOMMU,
            IommuType::NoIommu => VFIO_NOIOMMU_IOMMU,
        }
    }

    /// The kernel's name for it.
    pub const fn name(self) -> &'static str {
        match self {
            IommuType::Type1v2 => "VFIO_TYPE1v2_IOMMU",
            IommuType::Type1 => "VFIO_TYPE1_IOMMU",
            IommuType::SpaprTceV2 => "VFIO_SPAPR_TCE_v2_IOMMU",
            IommuType::SpaprTce => "VFIO_SPAPR_TCE_IOMMU",
            IommuType::NoIommu => "VFIO_NOIOMMU_IOMMU",
        }
    }

    /// True for the sPAPR (POWER) models, which have EEH and the TCE info ioctl.
    pub const fn is_spapr(self) -> bool {
        matches!(self, IommuType::SpaprTceV2 | IommuType::SpaprTce)
    }

    /// True when `VFIO_IOMMU_ENABLE` must follow `VFIO_SET_IOMMU` (sPAPR TCE v1 only).
    pub const fn needs_enable(self) -> bool {
        matches!(self, IommuType::SpaprTce)
    }
}

/// Picks the first type of [`IommuType::PREFERENCE`] for which `supported` says yes.
/// `supported` is `VFIO_CHECK_EXTENSION` in production and a fake in tests; an error from
/// it counts as "not supported" (old kernels answer EINVAL for unknown extensions).
pub fn choose<E>(mut supported: impl FnMut(IommuType) -> Result<bool, E>) -> Option<IommuType> {
    IommuType::PREFERENCE
        .into_iter()
        .find(|&t| matches!(supported(t), Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(offered: &[IommuType]) -> Option<IommuType> {
        choose::<()>(|t| Ok(offered.contains(&t)))
    }

    #[test]
    fn extension_numbers_match_the_uapi_header() {
        assert_eq!(IommuType::Type1.extension(), 1);
        assert_eq!(IommuType::SpaprTce.extension(), 2);
        assert_eq!(IommuType::Type1v2.extension(), 3);
        assert_eq!(IommuType::SpaprTceV2.extension(), 7);
        assert_eq!(IommuType::NoIommu.extension(), 8);
    }

    #[test]
    fn type1v2_wins_on_x86() {
        use IommuType::*;
        assert_eq!(pick(&[Type1, Type1v2, NoIommu]), Some(Type1v2));
        assert_eq!(pick(&[Type1, NoIommu]), Some(Type1));
    }

    #[test]
    fn spapr_v2_wins_on_power() {
        use IommuType::*;
        assert_eq!(pick(&[SpaprTce, SpaprTceV2]), Some(SpaprTceV2));
        assert_eq!(pick(&[SpaprTce]), Some(SpaprTce));
        assert!(SpaprTce.needs_enable() && !SpaprTceV2.needs_enable());
        assert!(SpaprTce.is_spapr() && !Type1.is_spapr());
    }

    #[test]
    fn no_iommu_only_as_last_resort() {
        use IommuType::*;
        assert_eq!(pick(&[NoIommu]), Some(NoIommu));
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn check_errors_count_as_unsupported() {
        let got = choose(|t| {
            if t == IommuType::Type1v2 {
                Err("EINVAL")
            } else {
                Ok(t == IommuType::Type1)
            }
        });
        assert_eq!(got, Some(IommuType::Type1));
    }
}
