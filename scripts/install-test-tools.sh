#!/usr/bin/env bash
# The system tools the test suite drives (`npm test` runs this first, as does .ci/run): qemu for
# the backup tests, the S3 clients of the interop tests, a browser for the console test. What is
# missing is installed from Debian's packages (and pip for the aws CLI and boto3) when this runs
# as root with apt-get; otherwise it says what to install and fails.
set -euo pipefail

need_apt=()
need() { command -v "$1" >/dev/null || need_apt+=("$2"); }
need qemu-img qemu-utils
need qemu-storage-daemon qemu-system-common
need chromium chromium
for client in rclone s3cmd restic; do need "$client" "$client"; done
need nbdinfo libnbd-bin        # reads a serve-nbd export
need mkfs.ext4 e2fsprogs       # builds guest filesystems
need python3 python3

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing test tools: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "the tests need these Debian packages: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

python3 -c 'import boto3' 2>/dev/null || pip install -q boto3 || true
command -v aws >/dev/null || pip install -q awscli || true
python3 -c 'import boto3' 2>/dev/null && command -v aws >/dev/null || {
  echo "the tests need boto3 and the aws CLI in python3 (pip install boto3 awscli)" >&2
  exit 1
}
