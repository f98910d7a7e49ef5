# The held-out photos (never trained or validated on), as the bash array `heldout` of source
# folders: the 45 photos of scripts/photos.tsv's heldout split, fetched into data/heldout/ by
# `bash scripts/fetch_photos.sh --split heldout`. A photo's source is its folder; paper6 is the
# six-photo set of the results before the broad set (Storm, LadyBird, YellowFlower from
# mate-backgrounds; scikit-image's astronaut, coffee, chelsea), so old figures stay comparable.
# Sourced by eval_heldout.sh and ablation_x2.sh.
heldout=(data/heldout/paper6 data/heldout/opencv data/heldout/gcompris data/heldout/tuxtype
  data/heldout/skimage-science)
