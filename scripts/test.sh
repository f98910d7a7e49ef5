#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it headless.
# Used verbatim by CI (.ci/run) and by the README's quick start.
set -euo pipefail
cd "$(dirname "$0")/.."

# napari draws through vispy/OpenGL even headless: it needs an X server (Xvfb) and Qt's xcb libs.
apt_packages=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libgl1 libgl1-mesa-dri
  libglx-mesa0 libegl1 libfontconfig1 libglib2.0-0 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0
  libxcursor1 mate-backgrounds python3-venv)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# tox in a virtual environment of its own, made with the distribution's python3 (3.11-3.12; the package needs zarr 3, which needs 3.11):
# Debian's python3 refuses `pip install` into the system (externally-managed-environment).
bootstrap=.tox/.bootstrap
[ -x "$bootstrap/bin/tox" ] || {
  python3 -m venv "$bootstrap"
  "$bootstrap/bin/python" -m pip install --quiet "tox>=4"
}
status=0
"$bootstrap/bin/tox" -e py -- "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected": the suite is never empty, so this is a broken checkout.
  echo "scripts/test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
