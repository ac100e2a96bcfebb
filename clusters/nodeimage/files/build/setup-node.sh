#!/bin/sh
# Runs once inside the node image build (docker build RUN): turns the Debian base into a kind node.
set -eu

mkdir -p /etc/kubernetes/manifests /var/lib/kubelet /etc/cni/net.d /opt/cni/bin /run/flannel \
  /var/local-path-provisioner /kind/bin
# Tools that look for CNI plugins in the conventional place find Debian's.
for p in /usr/lib/cni/*; do ln -sf "$p" /opt/cni/bin/; done

# systemd inside a container: start only what a node needs.
find /etc/systemd/system -path '*.wants/*' -type l ! -name 'containerd.service' -delete
for u in systemd-binfmt.service systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-modules-load.service sys-kernel-debug.mount sys-kernel-tracing.mount getty.target \
  console-getty.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_reap.service e2scrub_all.timer fstrim.timer; do
  systemctl mask "$u" >/dev/null 2>&1 || true
done
systemctl enable containerd.service kubelet.service >/dev/null
systemctl set-default multi-user.target >/dev/null

# Each node gets its own identity at boot (entrypoint).
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id

# Let pods reach services through the node; kube-proxy sets the rest.
cat >/etc/sysctl.d/10-rehearse.conf <<'SYSCTL'
net.ipv4.ip_forward = 1
net.ipv4.conf.all.route_localnet = 1
fs.inotify.max_user_watches = 524288
fs.inotify.max_user_instances = 512
SYSCTL

# journald: keep logs in memory; nodes are disposable.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\n' >/etc/systemd/journald.conf.d/10-rehearse.conf

# kubelet, kubeadm and kubectl are the multi-call binary kube by those names.
for p in kubelet kubeadm kubectl; do ln -s kube "/usr/bin/$p"; done
kubelet --version >/dev/null
kubeadm version -o short >/dev/null
