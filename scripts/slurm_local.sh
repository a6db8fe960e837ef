#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the tests and for trying
# `sedlib study --executor slurm` without a cluster account.
#
#   bash scripts/slurm_local.sh start    # install if missing (apt), start, wait until the node is idle
#   bash scripts/slurm_local.sh status   # daemons, node, queue; exit 0 when up, 3 when not
#   bash scripts/slurm_local.sh stop     # cancel its jobs, stop every daemon it started
#
# Debian's SLURM (bookworm: 22.05) with munge for authentication and slurmdbd on a private
# MariaDB for accounting: submitit and `sacct` read job states from the accounting database
# (accounting_storage/none has no `sacct`; jobcomp/filetxt only answers `sacct --completion`,
# which submitit does not call). Everything listens on loopback or on a Unix socket: the
# controller and node on 127.0.0.1 addresses, slurmdbd on 127.0.0.1, MariaDB without TCP.
# One partition, "local", with this machine's CPUs (nproc) and memory (/proc/meminfo, less 1 GiB).
# Config, state and logs live in $SEDLIB_SLURM_DIR (default /tmp/sedlib-slurm), independent
# of any checkout. Clients find the config through /etc/slurm/slurm.conf (a link made here when
# no config exists there) or `export SLURM_CONF=$SEDLIB_SLURM_DIR/slurm.conf`.
# Ports: $SEDLIB_SLURM_PORT (default 6817) for slurmctld, +1 slurmd, +2 slurmdbd.
# Needs root (it runs slurmd, which starts jobs as their users, and installs packages).
set -euo pipefail

DIR="${SEDLIB_SLURM_DIR:-/tmp/sedlib-slurm}"
PORT="${SEDLIB_SLURM_PORT:-6817}"
CLUSTER=sedlib
PARTITION=local
PACKAGES=(munge slurmctld slurmd slurmdbd slurm-client mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stop is the reverse
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF="$DIR/slurm.conf" MYSQL_UNIX_PORT="$DIR/run/mysql.sock"

die() { echo "slurm_local: error: $*" >&2; exit 1; }
say() { echo "[slurm_local] $*"; }

pid_of() { [ -f "$DIR/run/$1.pid" ] && cat "$DIR/run/$1.pid" 2>/dev/null || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds
wait_for() {
  local limit="$1" what="$2"; shift 2
  local i
  for ((i = 0; i < limit * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (slurmd and the apt install need it): sudo bash $0 $*"
}

install_if_missing() {
  local missing=() cmd
  for cmd in munged mungekey mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
    command -v "$cmd" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install ${PACKAGES[*]}"
  say "installing ${PACKAGES[*]} (apt; missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the packages' own services must not start (this script runs its own daemons)
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1; fi
  local ok=1
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || ok=0
  [ "$made_policy" = 1 ] && rm -f "$policy"
  [ "$ok" = 1 ] || die "apt-get install ${PACKAGES[*]} failed"
}

write_configs() {
  mkdir -p "$DIR"/{run,log,munge,state/ctld,state/slurmd,db}
  chmod 755 "$DIR/munge"  # the socket: every user; the key: root only
  local host cpus mem topo
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem=$(( $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))  # MiB, 1 GiB for the OS
  # sockets/cores/threads as slurmd sees them, when they add up to nproc (else CPUs alone)
  topo="$(slurmd -C 2>/dev/null | head -1 | grep -o 'Boards=.*ThreadsPerCore=[0-9]*' || true)"
  if [ -z "$topo" ] || [ "$(slurmd -C | head -1 | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')" != "$cpus" ]; then
    topo=""
  fi
  cat > "$DIR/slurm.conf" <<EOF
# written by scripts/slurm_local.sh: a one-node cluster on loopback
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: also how long a requeued (preempted, timed-out) job waits before it may start again
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups: runs in containers too
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
SchedulerType=sched/backfill
# a small cluster: look at pending jobs every few seconds (defaults: 60 s and 30 s)
SchedulerParameters=sched_interval=2,bf_interval=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
# the munge socket for slurmdbd connections (AuthInfo covers the others)
AccountingStoragePass=$DIR/munge/munge.socket
JobCompType=jobcomp/none
ReturnToService=2
# bind to the configured addresses (127.0.0.1), not to every interface
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
# scancel: SIGTERM, then SIGKILL after KillWait seconds
KillWait=5
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus ${topo} RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$DIR/slurmdbd.conf" <<EOF
# written by scripts/slurm_local.sh
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
  [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key"
  chmod 600 "$DIR/munge/munge.key"
  # clients (sbatch, sacct, submitit) read /etc/slurm/slurm.conf unless SLURM_CONF says otherwise
  mkdir -p "$(dirname "$ETC_CONF")"
  if [ ! -e "$ETC_CONF" ] && [ ! -L "$ETC_CONF" ]; then ln -s "$DIR/slurm.conf" "$ETC_CONF"; fi
}

# start_daemon NAME LOG COMMAND...: run COMMAND detached (it writes run/NAME.pid itself, or we do)
start_daemon() {
  local name="$1" logfile="$2"; shift 2
  if alive "$name"; then return 0; fi
  setsid "$@" >>"$logfile" 2>&1 < /dev/null &
  local pid=$!
  case "$name" in mariadbd) echo "$pid" > "$DIR/run/$name.pid" ;; esac
  wait_for 30 "$name pid file" alive "$name" || { sleep 1; die "$name did not start; see $logfile"; }
}

db_ready() { mariadb -S "$MYSQL_UNIX_PORT" -u root -e 'SELECT 1'; }
node_idle() { [ "$(sinfo -h -n "$(hostname -s)" -o %T 2>/dev/null)" = idle ]; }

start() {
  need_root start
  install_if_missing
  write_configs
  say "starting in $DIR"
  if ! alive munged; then
    start_daemon munged "$DIR/log/munged.out" munged --force --key-file="$DIR/munge/munge.key" \
      --socket="$DIR/munge/munge.socket" --pid-file="$DIR/run/munged.pid" \
      --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
  fi
  if [ ! -d "$DIR/db/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/db" --auth-root-authentication-method=normal \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  start_daemon mariadbd "$DIR/log/mariadb.log" mariadbd --user=root --datadir="$DIR/db" \
    --socket="$MYSQL_UNIX_PORT" --skip-networking --pid-file="$DIR/run/mariadbd.real.pid"
  wait_for 60 "MariaDB" db_ready || die "MariaDB did not answer; see $DIR/log/mariadb.log"
  start_daemon slurmdbd "$DIR/log/slurmdbd.out" slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 30 "slurmdbd" timeout 5 sacctmgr -n list cluster || die "slurmdbd did not answer; see $DIR/log/slurmdbd.log"
  if [ -z "$(sacctmgr -n -P list cluster format=cluster | grep -x "$CLUSTER" || true)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  start_daemon slurmctld "$DIR/log/slurmctld.out" slurmctld -D -f "$SLURM_CONF"
  start_daemon slurmd "$DIR/log/slurmd.out" slurmd -D -f "$SLURM_CONF"
  if ! wait_for 60 "node" node_idle; then
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for 30 "node" node_idle || die "the node is not idle: $(sinfo -h -o '%T %E'); see $DIR/log/slurmd.log"
  fi
  say "up: partition $PARTITION, $(sinfo -h -o '%c CPUs, %m MiB' -p "$PARTITION"); SLURM_CONF=$SLURM_CONF"
}

stop() {
  need_root stop
  if alive slurmctld; then  # cancel this cluster's jobs first, so no job step outlives slurmd
    scancel --full --partition="$PARTITION" >/dev/null 2>&1 || true
    wait_for 30 "jobs to end" test -z "$(squeue -h -o %i 2>/dev/null)" \
      || say "WARNING: jobs still listed: $(squeue -h -o '%i %T' | tr '\n' ' ')"
  fi
  local i name pid
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name="${DAEMONS[$i]}"
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      wait_for 30 "$name to exit" bash -c "! kill -0 $pid" || { kill -9 "$pid" 2>/dev/null || true; }
    fi
    rm -f "$DIR/run/$name.pid"
  done
  if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$DIR/slurm.conf" ]; then rm -f "$ETC_CONF"; fi
  say "stopped (config, state and logs kept in $DIR)"
}

status() {
  local name up=1
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; up=0; fi
  done
  if [ "$up" = 1 ]; then
    sinfo -o '%P %a %D %T %c %m' || up=0
    squeue -o '%i %j %T %M %R' || up=0
    echo "SLURM_CONF=$SLURM_CONF"
  fi
  [ "$up" = 1 ] || exit 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: bash $0 start|stop|status (state in \$SEDLIB_SLURM_DIR, default /tmp/sedlib-slurm)" >&2; exit 2 ;;
esac
