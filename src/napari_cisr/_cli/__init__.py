"""The ``napari-cisr`` subcommands, one module each (:mod:`napari_cisr.cli` is the entry point):
``common`` (what they share), ``run`` (run, demo), ``batch``, ``lab`` (train, eval)."""
