#!/usr/bin/env bash
# Fits the device's draft adapters (docs/calibration.md) into models/, for the quickstart split
# (configs/quickstart.ini [split] a, b) by default:
#   models/calibration.tok                         the self-generated corpus (token ids), made once: every
#                                                  prompt generated twice, greedy and sampled at temperature 0.8
#   models/smollm2-a{A}b{B}.{linear,lowrank}.adapter
# Idempotent: the corpus is regenerated only when the prompts file or the model is newer than it or it was
# made with another recipe (--samples/--temp), an adapter only when the corpus is newer than it (--force
# redoes everything).
#   scripts/calibrate.sh [--splits 2,2:4,4:8,8] [--forms linear,lowrank] [--build DIR] [--threads N] [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build forms=linear,lowrank threads=2 force=0 splits=
while [ $# -gt 0 ]; do
  case $1 in
    --splits) splits=$2; shift 2 ;;
    --forms) forms=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "calibrate.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
prompts=configs/calibration_prompts.txt
corpus=models/calibration.tok
# ridge candidates (relative to the mean eigenvalue of X^T X); hat calibrate keeps the best on held-out prompts
lambdas=0.03,0.1,0.3,1,3
# corpus recipe: generations per prompt (the first greedy, the others sampled at temp) and tokens per generation
samples=2 temp=0.8 gen=128
if [ -z "$splits" ]; then   # the quickstart split: [split] a = .., b = .. (comments after the value)
  ini=configs/quickstart.ini
  val() { awk -v k="$1" '/^\[/{s=$0} s=="[split]" && $1==k && $2=="=" {print $3; exit}' "$ini"; }
  splits="$(val a),$(val b)"
  [[ $splits =~ ^[0-9]+,[0-9]+$ ]] || { echo "calibrate.sh: cannot read [split] a, b from $ini" >&2; exit 1; }
fi
[ -f "$model" ] || ./scripts/fetch_model.sh
./scripts/build.sh "$build"
hat=$build/hat
uptodate() { local out=$1; shift; [ $force = 0 ] && [ -f "$out" ] && for d in "$@"; do [ "$out" -nt "$d" ] || return 1; done; }

# the corpus header's recipe (src/calib/corpus.h): version, --gen, --samples (0 in version 1 files: one generation)
recipe() { echo "$(od -An -tu4 -j8 -N4 "$1") $(od -An -tu4 -j96 -N4 "$1") $(od -An -tu4 -j132 -N4 "$1")"; }
if uptodate "$corpus" "$prompts" "$model" && [ "$(recipe "$corpus" | xargs)" = "2 $gen $samples" ]; then
  echo "calibrate.sh: $corpus is up to date"
else
  echo "calibrate.sh: generating $corpus from $prompts ($samples generations of up to $gen tokens per prompt:" \
    "greedy, then sampled at temperature $temp)"
  "$hat" calibrate --model "$model" --prompts "$prompts" --gen "$gen" --samples "$samples" --temp "$temp" \
    --threads "$threads" --corpus-out "$corpus"
fi
for split in ${splits//:/ }; do
  a=${split%,*} b=${split#*,}
  for form in ${forms//,/ }; do
    out=models/smollm2-a${a}b${b}.$form.adapter
    if uptodate "$out" "$corpus" "$model"; then
      echo "calibrate.sh: $out is up to date"
      continue
    fi
    echo "calibrate.sh: fitting $out"
    "$hat" calibrate --model "$model" --corpus "$corpus" --split "$a,$b" --form "$form" --lambda "$lambdas" \
      --threads "$threads" --out "$out"
  done
done
