#!/usr/bin/env bash
# Installs the Debian packages that libtrain's build, tests and examples need; extra package names may be given as
# arguments (CI adds clang-format). Idempotent: when everything is installed it only asks dpkg, in well under a second,
# and runs `apt-get update` only when something is missing. Uses sudo when not run as root.
set -euo pipefail

packages=(
    build-essential cmake pkg-config             # compilers and the build
    libopenblas-openmp-dev                       # GEMM: the OpenMP build, one thread pool with libtrain's loops
    libopenmpi-dev openmpi-bin                   # data-parallel training over MPI (LT_MPI)
    libhdf5-dev hdf5-tools                       # checkpoints (LT_HDF5)
    python3-numpy python3-torch python3-pytest python3-h5py # reference tests against PyTorch, Python checks
    python3-matplotlib                           # tools/plot_metrics.py draws the loss curve
    python3-venv python3-setuptools              # pip install ./python-bindings-ctypes into a venv, offline
    fortunes                                     # a 2.6 MB English corpus for the byte-level examples
    clang-14 libclang-rt-14-dev libomp-14-dev    # tools/fuzz.sh: libFuzzer (+ OpenMP for clang) for the ckpt reader
    "$@"
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup.sh: not a Debian system; install the equivalents of: ${packages[*]}" >&2
    exit 0
fi

installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null |
    awk '$2 == "installed" { print $1 }' || true)
missing=()
for p in "${packages[@]}"; do
    grep -qxF -- "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env)
else
    echo "setup.sh: missing packages and neither root nor sudo; install them with:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "setup.sh: installing ${missing[*]}"
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
