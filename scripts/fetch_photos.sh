#!/usr/bin/env bash
# The project's photos (training, validation, held-out), offline from Debian's archive, into
# data/ (git-ignored): every row of scripts/photos.tsv, checked against its sha256. Needs
# apt-get and dpkg-deb (packages are downloaded and unpacked, not installed).
#
#   bash scripts/fetch_photos.sh [--split heldout] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/fetch_photos.py "$@"
