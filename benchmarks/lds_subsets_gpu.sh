#!/bin/bash
# More seed sets of the LDS benchmark's subset models on one GPU: for each seed set, its 16 subset models sharded over
# P processes. The work folder must already hold dataset.pt, generated.pt and full-model.pt from a CPU run
# (`attribution_lds.py --subsets-only` makes them); copy the subset*-set*.json files back and run
# `attribution_lds.py --analyse-only --seed-sets 0,1,...` where the features are.
#   W=var/benchmarks/lds-gpu SETS="1 2 3" P=8 BUDGET=380 bash benchmarks/lds_subsets_gpu.sh
# On the device tool, $OUT receives subsets.tgz (the JSONs) after each finished seed set.
set -u
export PYTHONUNBUFFERED=1
W=${W:-var/benchmarks/lds-gpu}
P=${P:-8}
OUT=${OUT:-$W}
nvidia-smi -L
start=$(date +%s)
for j in ${SETS:-1 2 3 4 5 6 7}; do
  if (($(date +%s) - start > ${BUDGET:-100000})); then echo "time budget spent before seed set $j"; break; fi
  for i in $(seq 0 $((P - 1))); do
    python3 benchmarks/attribution_lds.py --work "$W" --subsets-only --device cuda --threads 1 --seed-sets "$j" \
      --shard "$i/$P" 2>&1 | grep -v "^data:" &
  done
  wait
  echo "seed set $j done at $(($(date +%s) - start)) s"
  (cd "$W" && tar czf "$OUT/subsets.tgz" ./*/subset*.json)
done
