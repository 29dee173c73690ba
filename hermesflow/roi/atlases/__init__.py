"""Atlas registry: a name or a path becomes ROI masks on any image grid.

The default atlas is the Juelich cytoarchitectonic probabilistic atlas, reduced to the four
maps of primary motor cortex: Brodmann 4a (``mi4a``) and 4p (``mi4p``), left and right.
"""

from hermesflow.roi.atlases.registry import (
    ROI_NAMES,
    Atlas,
    atlas_label,
    load_atlas,
    roi_masks,
    template_path,
)

__all__ = ["ROI_NAMES", "Atlas", "atlas_label", "load_atlas", "roi_masks", "template_path"]
