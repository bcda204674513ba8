#!/bin/sh
# sshd for a container: keys only, no root password, no host keys in the image.
# The settings go to a drop-in that Debian's and Ubuntu's sshd_config include
# first (the first value of a keyword wins there); SSH_PASSWORD at run time adds
# 40-infer-dev-password.conf, which sorts before it.
set -eu
CONF_D=/etc/ssh/sshd_config.d
mkdir -p "$CONF_D"
grep -Eq '^Include /etc/ssh/sshd_config.d/\*\.conf' /etc/ssh/sshd_config \
  || sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' /etc/ssh/sshd_config
cat >"$CONF_D/50-infer-dev.conf" <<'CONF'
# infer-dev: key login only (a password only through SSH_PASSWORD at run time).
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
# UsePAM yes: a locked account (`me:!`) still logs in with a key; PAM also reads /etc/environment.
UsePAM yes
X11Forwarding no
PrintMotd no
CONF
# openssh-server's postinst made host keys: every container makes its own at boot instead.
rm -f /etc/ssh/ssh_host_*
