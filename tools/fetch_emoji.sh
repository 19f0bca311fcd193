#!/usr/bin/env bash
# Download the two emoji packages that tools/emoji-corpus builds the cliptune-mini corpus
# from, straight from the npm registry (no npm client needed), and unpack them as
#   DIR/google/  = emoji-datasource-google 16.0.0 (emoji.json + img/google/64/*.png;
#                  data MIT (c) 2013 Cal Henderson, artwork Google Noto Emoji, Apache-2.0)
#   DIR/fluent/  = fluentui-emoji 1.3.0 (icons/{modern,flat,high-contrast}/*.svg; MIT,
#                  Microsoft Fluent UI Emoji packaged by Mohammad Abu Mattar)
# Usage: tools/fetch_emoji.sh DIR      (an existing google/ or fluent/ in DIR is replaced)
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
mkdir -p "$DIR"
REGISTRY=https://registry.npmjs.org

# fetch NAME VERSION DEST: npm tarballs unpack into package/, renamed to DIR/DEST.
fetch() {
    local name=$1 version=$2 dest=$3
    local tgz="$DIR/$name-$version.tgz"
    local tmp
    tmp=$(mktemp -d "$DIR/.unpack.XXXXXX")
    echo "fetching $name@$version" >&2
    curl -fsSL --retry 3 -o "$tgz" "$REGISTRY/$name/-/$name-$version.tgz"
    tar -xzf "$tgz" -C "$tmp"
    if [ ! -d "$tmp/package" ]; then
        echo "$tgz: no package/ folder inside" >&2
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "${DIR:?}/$dest"
    mv "$tmp/package" "$DIR/$dest"
    rmdir "$tmp"
}

fetch emoji-datasource-google 16.0.0 google
fetch fluentui-emoji 1.3.0 fluent
echo "unpacked into $DIR/google and $DIR/fluent" >&2
