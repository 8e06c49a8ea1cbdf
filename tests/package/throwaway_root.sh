#!/bin/bash
# Install a .deb the way dpkg does on this Debian system, into a throwaway root,
# and record what it did. Run as root through
#     unshare --mount --propagation private --net -- throwaway_root.sh WORK DEB
# The root is this system seen through overlays (/usr, /etc and /var, with
# dpkg's database: the package's dependencies are checked for real); every
# change lands in WORK/upper, and the mounts and the empty network namespace
# vanish with this process. Results go to WORK/*.txt for the test to read.
set -euo pipefail
work=$1
deb=$2
root=$work/root
mkdir -p "$root"
for d in usr etc var; do
    mkdir -p "$work/upper/$d" "$work/overlay-work/$d" "$root/$d"
    mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=$work/upper/$d,workdir=$work/overlay-work/$d" "$root/$d"
done
for d in bin sbin lib lib64; do
    [ -L "/$d" ] && ln -s "$(readlink "/$d")" "$root/$d"
done
mkdir -p "$root/tmp" "$root/run" "$root/proc" "$root/dev" "$root/root"
chmod 1777 "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
cp "$deb" "$root/tmp/package.deb"

in_root() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$root" "$@"
}
manifest() {
    (cd "$work/upper" && find . -path ./var/lib/dpkg -prune -o -path ./var/cache -prune \
        -o -path ./var/log -prune -o -printf '%m %u:%g %y %p\n' | sort)
}

set +e
in_root dpkg -i /tmp/package.deb >"$work/install.txt" 2>&1
echo $? >"$work/install.rc"
manifest >"$work/installed.txt"
in_root ipkeeperd --check-config >"$work/check.txt" 2>&1
echo $? >"$work/check.rc"
in_root ipkeeper --help >"$work/help.txt" 2>&1
echo $? >"$work/help.rc"
in_root ipkeeperd --version >"$work/version.txt" 2>&1
in_root /usr/lib/ipkeeper/bin/python3 -c 'import ipkeeper; print(ipkeeper.__file__)' \
    >"$work/where.txt" 2>&1
in_root systemd-analyze verify /lib/systemd/system/ipkeeperd.service >"$work/verify.txt" 2>&1
echo $? >"$work/verify.rc"
in_root bash -c 'source /usr/share/bash-completion/completions/ipkeeper
    COMP_WORDS=(ipkeeper sta); COMP_CWORD=1; _ipkeeper_completion ipkeeper; echo "${COMPREPLY[@]}"
    source /usr/share/bash-completion/completions/ipkeeperd
    COMP_WORDS=(ipkeeperd --check); COMP_CWORD=1; _ipkeeperd; echo "${COMPREPLY[@]}"' \
    >"$work/completion.txt" 2>&1
in_root dpkg-query -W -f='${Status}\n' ipkeeper >"$work/status.txt" 2>&1
in_root dpkg --purge ipkeeper >"$work/purge.txt" 2>&1
echo $? >"$work/purge.rc"
manifest >"$work/purged.txt"
