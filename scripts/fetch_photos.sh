#!/usr/bin/env bash
# More training photos, offline from the Debian archive: the photographs (not the drawings)
# among Plasma's and Lomiri's wallpapers, largest size of each, into data/photos (git-ignored),
# and, into data/photos-2 (a second set, added later), those of Lomiri's 16.04 wallpapers; into
# data/validation, scikit-image's two colour photographs that are neither trained on nor held out
# (validation only, from x2 stage 15 on).
# Needs apt-get (no root: the packages are downloaded and unpacked, not installed).
#
#   bash scripts/fetch_photos.sh [DEST [DEST2 [DEST3]]]
set -euo pipefail
DEST=${1:-data/photos}
DEST2=${2:-data/photos-2}
DEST3=${3:-data/validation}
PLASMA=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite
  OneStandsOut Path Volna summer_1am)
LOMIRI16=(Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace
  Picture_1A_by_freespace Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi
  analogpattern_by_Peter_Nerlich free_by_Peter_Nerlich friends_by_Aitzol_Berasategi
  greentock_by_Peter_Nerlich life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi
  seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$DEST" "$DEST2"
(cd "$work" && apt-get download plasma-workspace-wallpapers lomiri-wallpapers-20.04 \
  lomiri-wallpapers-16.04 >/dev/null 2>&1)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
for name in "${PLASMA[@]}"; do
  images="$work/root/usr/share/wallpapers/$name/contents/images"
  largest=$(ls -S "$images" | head -1)
  cp "$images/$largest" "$DEST/$name.${largest##*.}"
done
cp "$work/root/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" "$DEST/Kleiber.jpg"
for name in "${LOMIRI16[@]}"; do
  cp "$work/root/usr/share/backgrounds/$name.jpg" "$DEST2/${name%%_by_*}.jpg"
done
mkdir -p "$DEST3"
skimage_data=$(python -c "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))")
cp "$skimage_data/rocket.jpg" "$skimage_data/motorcycle_left.png" "$DEST3/"
ls "$DEST" "$DEST2" "$DEST3"
