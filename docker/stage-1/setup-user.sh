#!/bin/sh
# The login user `me` (uid ME_UID, gid ME_GID), with a home, bash, and sudo
# without a password (key login is the gate; `me` has no password unless
# SSH_PASSWORD gives one at run time). An account that already holds the uid
# (Ubuntu 24.04's `ubuntu` at 1000) is removed first; a group that holds the gid
# is renamed to `me`.
set -eu
UID_WANTED=${ME_UID:-1000}
GID_WANTED=${ME_GID:-1000}
NAME=me

holder=$(getent passwd "$UID_WANTED" | cut -d: -f1 || true)
if [ -n "$holder" ] && [ "$holder" != "$NAME" ]; then
  echo "setup-user: uid $UID_WANTED belongs to $holder: removing that account for $NAME"
  userdel --remove "$holder" 2>/dev/null || userdel "$holder"
fi
group=$(getent group "$GID_WANTED" | cut -d: -f1 || true)
if [ -z "$group" ]; then
  groupadd --gid "$GID_WANTED" "$NAME"
elif [ "$group" != "$NAME" ]; then
  echo "setup-user: gid $GID_WANTED belongs to group $group: renaming it to $NAME"
  groupmod --new-name "$NAME" "$group"
fi
if getent passwd "$NAME" >/dev/null; then
  usermod --uid "$UID_WANTED" --gid "$GID_WANTED" --shell /bin/bash "$NAME"
else
  useradd --uid "$UID_WANTED" --gid "$GID_WANTED" --create-home --shell /bin/bash "$NAME"
fi
usermod --append --groups sudo "$NAME"
# Locked password (`!`): key login works through PAM, password login cannot.
passwd --lock "$NAME" >/dev/null
printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$NAME" >/etc/sudoers.d/90-infer-dev-me
chmod 0440 /etc/sudoers.d/90-infer-dev-me
install -d -m 0700 -o "$NAME" -g "$GID_WANTED" "/home/$NAME/.ssh"
id "$NAME"
