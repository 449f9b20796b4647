#!/usr/bin/env bash
# hat generate end to end: a real run prints text and a stats line; bad input gives a clear
# message and a non-zero exit, never a crash or a hang (each call bounded by timeout). Every
# subcommand's command-line conventions (src/cli/cli.h): --help prints the usage to stdout with
# exit 0; an unknown option, a missing argument or a bad number is exit 2 with one line naming it.
# `hat run` and `hat bench-transport` start MPI as a singleton here (no mpirun).
# usage: test_cli.sh HAT_BINARY MODEL
set -u
hat=$1 model=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }

# expect_fail NAME NEEDLE ARGS...: non-zero exit (not a signal), message contains NEEDLE
expect_fail() {
  local name=$1 needle=$2; shift 2
  timeout 60 "$hat" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then bad "$name: exit $rc"; return; fi
  if grep -qF -- "$needle" "$tmp/err"; then ok; echo "  $name -> $(head -c 160 "$tmp/err" | head -1)"
  else bad "$name: stderr lacks '$needle': $(cat "$tmp/err")"; fi
}

# expect_usage NAME NEEDLE ARGS...: exit status 2 (a usage error); stderr's first line names it
expect_usage() {
  local name=$1 needle=$2; shift 2
  timeout 60 "$hat" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -ne 2 ]; then bad "$name: exit $rc, expected 2: $(head -c 300 "$tmp/err")"; return; fi
  if head -1 "$tmp/err" | grep -qF -- "$needle"; then ok; echo "  $name -> $(head -1 "$tmp/err" | head -c 160)"
  else bad "$name: stderr's first line lacks '$needle': $(cat "$tmp/err")"; fi
}

# expect_help ARGS...: exit 0 and a usage text on stdout
expect_help() {
  timeout 60 "$hat" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq 0 ] && grep -q '^usage: ' "$tmp/out"; then ok
  else bad "hat $*: exit $rc, stdout $(head -c 200 "$tmp/out"), stderr $(head -c 300 "$tmp/err")"; fi
}

export OMPI_MCA_pml=ob1   # the MPI singleton of run and bench-transport starts faster without the ofi probe
for cmd in generate run calibrate bench-transport tokens version help; do
  expect_help "$cmd" --help
  expect_usage "$cmd: unknown option" "unknown or incomplete option '--bogus'" "$cmd" --bogus
done
expect_help --help
expect_help help run
expect_help generate -h
expect_help run -h
"$hat" --version >"$tmp/a" 2>&1; rc_a=$?
"$hat" version >"$tmp/b" 2>&1; rc_b=$?
if [ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && cmp -s "$tmp/a" "$tmp/b" && grep -q '^hat [0-9][0-9.]* git ' "$tmp/a"; then ok
else bad "hat --version ($rc_a: $(cat "$tmp/a")) and hat version ($rc_b: $(cat "$tmp/b")) differ or fail"; fi
expect_usage "version: stray argument" "unexpected argument 'x'" version x
expect_usage "generate: missing argument" "option '--model' needs an argument" generate --model
expect_usage "generate: stray argument" "unexpected argument 'x'" generate --model "$model" --prompt hi x
expect_usage "generate: bad split" "--split must be" generate --model "$model" --prompt hi --split 2,2x
expect_usage "run: no config" "--config FILE is required" run
expect_usage "run: missing argument" "option '--trace' needs an argument" run --config x.ini --trace
expect_usage "run: value on a flag" "option '--overwrite' takes no argument" run --config x.ini --overwrite=1
expect_usage "bench-transport: bad number" "--dim must be an integer" bench-transport --dim 12x
expect_usage "bench-transport: rank count" "needs exactly 2 ranks" bench-transport
expect_usage "calibrate: bad number" "--rank must be an integer" calibrate --model "$model" --rank x
# calibrate's outputs are checked before its minutes of work: writable, and none of its inputs
printf 'one prompt\n' >"$tmp/p.txt"; cp "$tmp/p.txt" "$tmp/p_keep.txt"
expect_fail "calibrate: --out unwritable" "the directory $tmp/none does not exist" calibrate --model "$model" --prompts "$tmp/p.txt" --split 2,2 --out "$tmp/none/x.adapter"
expect_fail "calibrate: --out = the model" "is the --model file" calibrate --model "$model" --prompts "$tmp/p.txt" --split 2,2 --out "$model"
expect_fail "calibrate: --corpus-out = the prompts" "is the --prompts file" calibrate --model "$model" --prompts "$tmp/p.txt" --corpus-out "$tmp/p.txt"
if cmp -s "$tmp/p.txt" "$tmp/p_keep.txt"; then ok; else bad "calibrate: the prompts file was changed"; fi
expect_usage "no command" "no command given"

timeout 120 "$hat" generate --model "$model" --prompt "The capital of France is" --max-tokens 8 --print-ids >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^stats: .*decode_tok_s=' "$tmp/err" && grep -q '^ids: ' "$tmp/out" && grep -q 'memory: ' "$tmp/err"; then ok
else bad "plain run (exit $rc): $(cat "$tmp/err")"; fi
echo "  output: $(head -c 200 "$tmp/out" | tr '\n' ' ')"

timeout 120 "$hat" generate --model "$model" --chat "What is 2+2?" --max-tokens 16 >"$tmp/out" 2>"$tmp/err" && ok || bad "chat run: $(cat "$tmp/err")"
timeout 120 "$hat" generate --model "$model" --prompt "Once" --max-tokens 6 --temp 0.8 --seed 5 --print-ids >"$tmp/a" 2>/dev/null
timeout 120 "$hat" generate --model "$model" --prompt "Once" --max-tokens 6 --temp 0.8 --seed 5 --print-ids >"$tmp/b" 2>/dev/null
if cmp -s "$tmp/a" "$tmp/b" && [ -s "$tmp/a" ]; then ok; else bad "seeded sampling is not reproducible"; fi

head -c 100000 "$model" >"$tmp/trunc.gguf"
printf 'not a gguf file at all, just text padding padding' >"$tmp/text.gguf"
expect_fail "missing model"     "cannot open"      generate --model "$tmp/none.gguf" --prompt hi
expect_fail "truncated model"   "truncated"        generate --model "$tmp/trunc.gguf" --prompt hi
expect_fail "not a gguf"        "bad magic"        generate --model "$tmp/text.gguf" --prompt hi
expect_fail "directory"         "not a regular file" generate --model "$tmp" --prompt hi
# corrupt weights: one Q4_1 block scale of blk.0.attn_q.weight set to NaN; that tensor's offset
# moved 64 KiB into its neighbour's data (both refused at load, naming the tensor)
python3 - "$model" "$tmp" "$(dirname "$0")/../../experiments" <<'PYEOF'
import struct, sys
sys.path.insert(0, sys.argv[3])
import gguf_prune
src, tmp = sys.argv[1], sys.argv[2]
buf = bytearray(open(src, "rb").read())
meta = gguf_prune.read_meta(src, memoryview(buf))
infos, data0 = meta[7], meta[8]
name = b"blk.0.attn_q.weight"
off = next(o for n, _, _, o in infos if n == name)
nan = bytearray(buf)
nan[data0 + off + 5 * 20: data0 + off + 5 * 20 + 2] = struct.pack("<H", 0x7E00)   # block 5's d (Q4_1: 20-byte blocks)
open(tmp + "/nan.gguf", "wb").write(nan)
at = bytes(buf[:data0]).index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
nd = struct.unpack_from("<I", buf, at)[0]
field = at + 4 + 8 * nd + 4   # n_dims, dims, type, then the offset
struct.pack_into("<Q", buf, field, off + 65536)
open(tmp + "/moved.gguf", "wb").write(buf)
PYEOF
expect_fail "NaN block scale"   "blk.0.attn_q.weight: block 5 is scaled by Inf or NaN" generate --model "$tmp/nan.gguf" --prompt hi
expect_fail "NaN scale, f32"    "blk.0.attn_q.weight: block 5" generate --model "$tmp/nan.gguf" --prompt hi --weights f32
expect_fail "moved offset"      "overlap"          generate --model "$tmp/moved.gguf" --prompt hi
rm -f "$tmp/nan.gguf" "$tmp/moved.gguf"
expect_usage "unknown option"   "unknown or incomplete option" generate --model "$model" --prompt hi --bogus 1
expect_usage "no prompt"        "exactly one of"   generate --model "$model"
expect_usage "bad number"       "--max-tokens must be" generate --model "$model" --prompt hi --max-tokens ten
expect_usage "bad temperature"  "--temp must be"   generate --model "$model" --prompt hi --temp -1
expect_usage "bad weights"      "--weights must be" generate --model "$model" --prompt hi --weights int3
expect_fail "token id range"    "bad token id"     generate --model "$model" --prompt-ids "1 2 999999"
expect_fail "context too small" "exceed --ctx"     generate --model "$model" --prompt hi --max-tokens 100 --ctx 50
expect_usage "unknown command"  "unknown command"  frobnicate

# hat tokens: one line per prompt of a JSON-lines file; its chat count is what generate prefills
printf '{"prompt": "Hello", "source": "t"}\n\n{"tokens": 2, "prompt": "two\\nlines"}\n' >"$tmp/p.jsonl"
timeout 60 "$hat" tokens --model "$model" --prompts "$tmp/p.jsonl" >"$tmp/out" 2>"$tmp/err"; rc=$?
chat_hello=$(awk -F'\t' '$1 == "0" {print $3}' "$tmp/out")
timeout 120 "$hat" generate --model "$model" --chat Hello --max-tokens 0 --quiet >/dev/null 2>"$tmp/gen"
gen_hello=$(sed -n 's/^stats: .*prompt_tokens=\([0-9]*\).*/\1/p' "$tmp/gen")
if [ $rc -eq 0 ] && [ "$(grep -vc '^#' "$tmp/out")" -eq 2 ] && grep -q $'^1\t[0-9]*\t[0-9]*\t9$' "$tmp/out" &&
   [ -n "$chat_hello" ] && [ "$chat_hello" = "$gen_hello" ]; then ok
else bad "tokens (exit $rc, chat $chat_hello vs generate $gen_hello): $(cat "$tmp/out" "$tmp/err")"; fi
# the shipped long prompts still measure what their "tokens" fields say (configs/make_long_prompts.py)
long=$(dirname "$0")/../../configs/prompts_long.jsonl
want=$(python3 -c 'import json, sys; print(" ".join(str(json.loads(l)["tokens"]) for l in open(sys.argv[1])))' "$long")
got=$(timeout 60 "$hat" tokens --model "$model" --prompts "$long" | awk -F'\t' '!/^#/ {printf "%s%s", sep, $3; sep=" "}')
if [ -n "$want" ] && [ "$want" = "$got" ]; then ok; echo "  prompts_long.jsonl -> chat tokens $got"
else bad "prompts_long.jsonl: hat tokens gives '$got', its tokens fields say '$want'"; fi
printf '{"prompt": "fine"}\n\n{"prompt": "broken}\n' >"$tmp/bad.jsonl"
expect_fail "tokens: broken jsonl" "$tmp/bad.jsonl:3: not a JSON object" tokens --model "$model" --prompts "$tmp/bad.jsonl"
expect_usage "tokens: no prompts" "exactly one of --prompts, --prompt" tokens --model "$model"
expect_usage "tokens: no model" "--model is required" tokens --prompt hi
# hat run on a config whose prompts file is a broken JSON-lines file: the file and line named
cfgdir=$(cd "$(dirname "$0")/../../configs" && pwd)   # the profiles, whatever the working directory
printf '[model]\npath = %s\n[profiles]\nlinks = %s\ndevices = %s\n[devices]\ncount = 1\nprompts = %s\n' "$model" \
    "$cfgdir/links.ini" "$cfgdir/devices.ini" "$tmp/bad.jsonl" >"$tmp/bad.ini"
expect_fail "run: broken jsonl prompts" "$tmp/bad.jsonl:3: not a JSON object" run --config "$tmp/bad.ini"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
