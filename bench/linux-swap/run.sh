#!/bin/bash
# Real Linux swap on this machine, for comparison with `mf bench vmemdirect`'s naive model: a process in a memory cgroup of
# BUDGET_MIB writes a VM of VM_MIB in page order (the first copies), rewrites its first 1/16 (the active VM's retransfers)
# and reads every page once (a sweep after the migration). Needs root, swapon and the cgroup v1 memory controller.
set -euo pipefail
VM_MIB=${VM_MIB:-4096}; BUDGET_MIB=${BUDGET_MIB:-1024}; SWAP=${SWAP:-/tmp/mf-linux-swap}; RUNS=${RUNS:-2}
CG=/sys/fs/cgroup/memory/mf-linux-swap
here=$(cd "$(dirname "$0")" && pwd)
gcc -O2 -o /tmp/mf-linux-swap-fill "$here/fill.c"
cleanup() { swapoff "$SWAP" 2>/dev/null || true; rm -f "$SWAP"; rmdir "$CG" 2>/dev/null || true; }
trap cleanup EXIT
# Written blocks, as a swap device's are (fallocate's unwritten extents would be converted by the first swap-outs).
dd if=/dev/zero of="$SWAP" bs=4M count=$(( (VM_MIB * 3 / 2) / 4 )) oflag=direct status=none
chmod 600 "$SWAP"; mkswap "$SWAP" >/dev/null; swapon "$SWAP"
mkdir -p "$CG"; echo $(( BUDGET_MIB << 20 )) > "$CG/memory.limit_in_bytes"; echo 100 > "$CG/memory.swappiness"
echo "kernel $(uname -r), vm.page-cluster $(cat /proc/sys/vm/page-cluster), VM $VM_MIB MiB, cgroup limit $BUDGET_MIB MiB, swap file $SWAP"
for i in $(seq 1 "$RUNS"); do
  bash -c "echo \$\$ > $CG/cgroup.procs; exec /usr/bin/time -f '%e s wall, %U s user, %S s system' /tmp/mf-linux-swap-fill $VM_MIB" 2>&1
done
