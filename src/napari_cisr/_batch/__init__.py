"""The parts of :mod:`napari_cisr.batch`, one concern each.

``report`` (what a batch tells its caller), ``sources`` (INPUT as lazy arrays), ``store``
(OUTPUT: layout, markers, the job record, OME-Zarr metadata), ``cluster`` (the dask client and
its memory settings) and ``schedule`` (the task graphs, submitted row by row). Only
:mod:`napari_cisr.batch` imports them; they import nothing from it.
"""
