#!/usr/bin/env bash
# Here, before a device call: build what the GPU machine runs (it has no Rust toolchain)
# and fetch the Vulkan loader it lacks. Writes dist/ (the stripped x86-64 binary) and .gl/
# (Debian packages); both are git-ignored and travel with `carry: ["dist", ".gl"]`.
#
#   tools/device/prepare.sh          # then, in one device call:
#   run(command="bash tools/device/check.sh", carry=["dist", ".gl"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin cliptune
mkdir -p dist
strip -o dist/cliptune target/release/cliptune
if ! ls .gl/*.deb >/dev/null 2>&1; then
  # The device README's recipe: the loader packages, downloaded for amd64, unpacked there.
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -ch dist .gl | tail -1
echo "ready: carry dist and .gl; the tree plus these must stay under 64 MiB"
