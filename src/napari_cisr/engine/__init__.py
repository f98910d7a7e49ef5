"""The inference engine under :mod:`napari_cisr.inference` and :mod:`napari_cisr.tiling`.

``core`` (image checks, layouts, the network call, self-ensemble, model cache, progress and
result types), ``plan`` (receptive field, halo, memory, tile choice, windows, blend weights:
pure geometry), ``grid`` (the compression grid of a whole plane), ``tile`` (one tile's
prediction and its packing), ``local`` (the numpy driver) and ``lazy`` (the dask driver).
Nothing here imports napari, Qt, or :mod:`napari_cisr.inference`.
"""
