"""Pure-torch CISR-PSI architecture: no file IO, dask, napari or Qt in this package."""

from napari_cisr.model.cisr import CISRPSI, CISROutput, build_model
from napari_cisr.model.config import VARIANTS, CISRConfig, variant_config

__all__ = ["CISRPSI", "VARIANTS", "CISRConfig", "CISROutput", "build_model", "variant_config"]
