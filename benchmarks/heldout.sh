# The held-out photos (never trained or validated on), as the bash array `heldout`; sourced by
# eval_heldout.sh and ablation_x2.sh. benchmarks/precision.py and tiling_quality.py name the same
# photos (the three mate-backgrounds ones for tiling_quality).
skimage_data=$(python -c "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))")
heldout=(
  /usr/share/backgrounds/mate/nature/Storm.jpg
  /usr/share/backgrounds/mate/nature/LadyBird.jpg
  /usr/share/backgrounds/mate/nature/YellowFlower.jpg
  "$skimage_data/astronaut.png"
  "$skimage_data/coffee.png"
  "$skimage_data/chelsea.png"
)
