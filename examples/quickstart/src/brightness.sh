#!/bin/sh
# One datum: the mean brightness of one 16x16 greyscale tile (its last 256 bytes are pixels).
set -eu
name=$(basename "$DVX_INPUT" .pgm)
tail -c 256 "$DVX_INPUT" | od -An -v -tu1 |
  awk '{ for (i = 1; i <= NF; i++) { s += $i; n++ } } END { printf "%.1f\n", s / n }' \
  > "$DVX_OUTPUT/$name.txt"
echo "$name: brightness $(cat "$DVX_OUTPUT/$name.txt")"
