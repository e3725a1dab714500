# What a container's process sees, in sections ("== NAME"), run unchanged by
# runc and by runtime-core. Every command's stderr goes to stdout: an error
# message is part of what is compared.
s() { echo "== $1"; }
s status
grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups|Cpus_allowed_list|Mems_allowed_list)' /proc/self/status
s identity
id; echo "umask $(umask)"; echo "cwd $(pwd)"; echo "oom_score_adj $(cat /proc/self/oom_score_adj)"
s env
env | sort
s mountinfo
cat /proc/self/mountinfo
s limits
cat /proc/self/limits
s ulimit
ulimit -a
s uts
hostname; cat /proc/sys/kernel/domainname
s namespaces
for n in cgroup ipc mnt net pid time user uts; do echo "$n $(readlink /proc/self/ns/$n 2>&1)"; done
s sysctl
for k in net/ipv4/ip_forward net/core/somaxconn kernel/shmmni kernel/msgmax fs/mqueue/msg_max; do
  echo "$k $(cat /proc/sys/$k 2>&1)"
done
s cgroup
cat /proc/self/cgroup
s cgroupfs
ls /sys/fs/cgroup 2>&1
for f in memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes memory/memory.memsw.limit_in_bytes \
  memory/memory.swappiness memory/memory.kmem.limit_in_bytes memory/memory.kmem.tcp.limit_in_bytes \
  memory/memory.oom_control cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.rt_runtime_us \
  cpu/cpu.rt_period_us cpu/cpu.cfs_burst_us cpuset/cpuset.cpus cpuset/cpuset.mems pids/pids.max \
  blkio/blkio.bfq.weight blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_iops_device \
  devices/devices.list; do
  # devices.list keeps the order rules were written in, which means nothing for an allow list.
  echo "$f: $(cat /sys/fs/cgroup/$f 2>&1 | sort | tr '\n' ' ')"
done
s dev
stat -c '%N %F %a %u:%g %t:%T' /dev/* /dev/pts/* /dev/.* 2>&1
s masked
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
  echo "$p: $(wc -c <"$p" 2>&1)"
done
for d in /proc/acpi /proc/scsi /proc/asound /sys/firmware; do echo "$d: $(ls -A "$d" 2>&1 | wc -l)"; done
s readonly
for p in /proc/sys/kernel/domainname /proc/sysrq-trigger /proc/irq/default_smp_affinity /proc/bus/x /proc/fs/x /sys/kernel/x /sys/fs/cgroup/x; do
  echo "$p: $( (echo 0 >"$p") 2>&1 | sed 's/.*: //')"
done
s fds
ls /proc/self/fd
