#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (tests/fuzz/README.md): builds build-fuzz/ with clang
# (-DHAT_FUZZ=ON: every source with coverage, ASan and UBSan), makes the seed corpora from real
# files, replays every kept crash input (tests/fuzz/crashes/), then fuzzes each target for
# --seconds. A crash is saved to tests/fuzz/crashes/<target>-<hash> (keep it: it becomes a
# regression input) and the script exits 1.
# usage: scripts/fuzz.sh [--seconds 30] [TARGET...]   (targets: fuzz_gguf fuzz_ini fuzz_wire
#        fuzz_adapter fuzz_corpus fuzz_tokenizer; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=30
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) secs=$2; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_gguf fuzz_ini fuzz_wire fuzz_adapter fuzz_corpus fuzz_tokenizer)
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (Debian: apt-get install clang)" >&2; exit 2; }
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || ./scripts/fetch_model.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHAT_CUDA=OFF -DHAT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" fuzz_seeds hat >/dev/null
B=build-fuzz/tests/fuzz
S=build-fuzz/fuzz-seeds
mkdir -p "$S"/{gguf,ini,wire,adapter,corpus,tokenizer} tests/fuzz/crashes
"$B"/fuzz_seeds "$S"
mv -f "$S"/tiny.gguf "$S"/gguf/
for w in hidden_up_f16 hidden_down_f32 tokens; do mv -f "$S/$w" "$S"/wire/; done
head -c 65536 "$model" >"$S"/gguf/real_head.gguf
cp configs/*.ini "$S"/ini/
cp configs/prompts.txt configs/calibration_prompts.txt "$S"/tokenizer/ 2>/dev/null || true
printf 'abcd\nbadc\ncafe\nfade\nhead\n' >"$S"/prompts.txt   # the tiny model's 8 tokens: a..h
if [ ! -f "$S"/adapter/tiny.adapter ]; then   # an adapter and a corpus fitted for the tiny model
  build-fuzz/hat calibrate --model "$S"/gguf/tiny.gguf --prompts "$S"/prompts.txt --gen 8 --chat off --split 1,1 \
    --out "$S"/adapter/tiny.adapter --corpus-out "$S"/corpus/tiny.tok >/dev/null 2>&1 || \
    echo "fuzz.sh: no adapter/corpus seed (calibrate on the tiny model failed); those targets start empty"
fi
export HAT_FUZZ_MODEL=$model
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1
status=0
for t in "${targets[@]}"; do
  kind=${t#fuzz_}
  crashes=$(ls tests/fuzz/crashes/"$t"-* 2>/dev/null || true)
  if [ -n "$crashes" ]; then   # every kept crash input must now pass
    "$B/$t" $crashes >/dev/null 2>&1 || { echo "fuzz.sh: $t fails on a kept crash input again"; status=1; }
  fi
  mkdir -p build-fuzz/fuzz-corpus/"$t"
  if "$B/$t" build-fuzz/fuzz-corpus/"$t" "$S/$kind" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
       -max_len=65536 -artifact_prefix=tests/fuzz/crashes/"$t"- -print_final_stats=1 >build-fuzz/"$t".log 2>&1; then
    echo "fuzz.sh: $t: ${secs} s clean ($(grep -o 'stat::number_of_executed_units: *[0-9]*' build-fuzz/"$t".log | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz.sh: $t FOUND A CRASH: build-fuzz/$t.log, input in tests/fuzz/crashes/"; status=1
  fi
done
exit $status
