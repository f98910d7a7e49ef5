"""The parts of :mod:`napari_cisr.batch`, one concern each.

``report`` (what a batch tells its caller), ``sources`` (INPUT as lazy arrays), ``store``
(OUTPUT: layout, markers, completion flags, OME-Zarr metadata), ``job`` (the job record: the
settings it pins, whether a rerun resumes, replaces or is refused), ``cluster`` (the dask
client and its memory settings), ``schedule`` (the task graphs, submitted row by row) and
``photos`` (a folder of photos, one task per photo). Only :mod:`napari_cisr.batch` imports
them; they import nothing from it.
"""
