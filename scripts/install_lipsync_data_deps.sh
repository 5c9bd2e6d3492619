#!/usr/bin/env bash
# Debian packages for the lip-sync training-data generator (tools/lipsync/data.py).
# espeak-ng (main) is enough for the tests; MBROLA and its diphone voices (contrib / non-free) are only
# needed to regenerate the full dataset. Uses a separate sources list so the system's list is untouched.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "run as root" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq espeak-ng libespeak-ng1
SRC=/etc/apt/lipsync-contrib-nonfree.list
cat > "$SRC" <<'LIST'
deb http://deb.debian.org/debian bookworm contrib non-free
LIST
OPTS=(-o Dir::Etc::SourceList="$SRC" -o Dir::Etc::SourceParts=/nonexistent)
apt-get "${OPTS[@]}" update -qq
# voices used by tools/lipsync/data.py (training + held-out)
VOICES="mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-de7 mbrola-fr1 mbrola-fr2 mbrola-fr3 mbrola-fr4 mbrola-fr5 mbrola-fr6 mbrola-es1 mbrola-es2 mbrola-es3 mbrola-es4 mbrola-mx1 mbrola-it1 mbrola-it3 mbrola-it4 mbrola-nl1 mbrola-nl2 mbrola-nl3 mbrola-pt1 mbrola-br1 mbrola-br3 mbrola-cz2 mbrola-tr1 mbrola-ro1 mbrola-hu1 mbrola-gr2 mbrola-id1 mbrola-af1 mbrola-cr1 mbrola-pl1 mbrola-sw1 mbrola-sw2"
apt-get "${OPTS[@]}" install -y -qq --no-install-recommends mbrola $VOICES
