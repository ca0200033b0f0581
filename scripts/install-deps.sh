#!/usr/bin/env bash
# Installs every Debian package that Pythmata's build, tests and benchmarks need.
# Idempotent: packages already installed are skipped, and nothing is done when all are present.
# Debian's archive only; no other downloads.
set -euo pipefail

PACKAGES=(
    # toolchain
    build-essential cmake ninja-build ccache pkg-config clang clang-format
    libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes (only recommended by clang)
    # libraries
    libboost1.81-dev libpqxx-dev libpq-dev libhiredis-dev nlohmann-json3-dev
    prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
    libpugixml-dev liblua5.4-dev libsqlite3-dev libtomlplusplus-dev zlib1g-dev libssl-dev
    libjemalloc-dev  # the server's allocator (CMake option PYTHMATA_JEMALLOC)
    # servers and tools the tests start or call
    postgresql-15 postgresql-client-15 redis-server prometheus curl procps nginx
    # load generators and plotting for `make bench`
    wrk apache2-utils gnuplot-nox python3-locust
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The packaged services must not start on their default ports on a dev box: the tests start
# their own instances on free loopback ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
