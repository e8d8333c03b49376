#!/bin/sh
# The aggregate: days and mean temperature from the CSV, then every tile's brightness.
set -eu
awk -F, 'NR > 1 { t += $3; n++ } END { printf "days: %d, mean temperature: %.2f C\n", n, t / n }' \
  data/measurements.csv > report.txt
for f in stats/*.txt; do
  echo "$(basename "$f" .txt): brightness $(cat "$f")" >> report.txt
done
