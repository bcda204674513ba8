#!/bin/sh
# Stage-1 every-run hook: SSH_PASSWORD (or the file SSH_PASSWORD_FILE names, e.g.
# a compose secret under /run/secrets) becomes the password of SSH_USER (default
# me) and turns password login on; without either, password login stays off and
# the account stays locked. Runs before sshd starts; nothing of it is in the image.
set -eu
DROP_IN=/etc/ssh/sshd_config.d/40-infer-dev-password.conf
user=${SSH_USER:-me}
password=${SSH_PASSWORD:-}
if [ -z "$password" ] && [ -n "${SSH_PASSWORD_FILE:-}" ]; then
  [ -r "$SSH_PASSWORD_FILE" ] || { echo "ssh-password: SSH_PASSWORD_FILE=$SSH_PASSWORD_FILE cannot be read" >&2; exit 1; }
  password=$(head -n 1 "$SSH_PASSWORD_FILE")
fi
if [ -z "$password" ]; then
  # A restart without a password turns password login off again.
  if [ -e "$DROP_IN" ]; then
    rm -f "$DROP_IN"
    passwd --lock "$user" >/dev/null 2>&1 || true
    echo "ssh-password: no SSH_PASSWORD: password login off again for $user"
  fi
  exit 0
fi
[ "$user" != root ] || { echo "ssh-password: refusing a password for root (PermitRootLogin prohibit-password)" >&2; exit 1; }
getent passwd "$user" >/dev/null || { echo "ssh-password: no user $user" >&2; exit 1; }
printf '%s:%s\n' "$user" "$password" | chpasswd
printf '# written at boot from SSH_PASSWORD(_FILE); removed at a boot without it\nPasswordAuthentication yes\n' >"$DROP_IN"
echo "ssh-password: password login on for $user"
