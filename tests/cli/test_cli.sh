#!/usr/bin/env bash
# hat generate end to end: a real run prints text and a stats line; bad input gives a clear
# message and a non-zero exit, never a crash or a hang (each call bounded by timeout).
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
expect_fail "unknown option"    "unknown or incomplete option" generate --model "$model" --prompt hi --bogus 1
expect_fail "no prompt"         "exactly one of"   generate --model "$model"
expect_fail "bad number"        "--max-tokens must be" generate --model "$model" --prompt hi --max-tokens ten
expect_fail "bad temperature"   "--temp must be"   generate --model "$model" --prompt hi --temp -1
expect_fail "bad weights"       "--weights must be" generate --model "$model" --prompt hi --weights int3
expect_fail "token id range"    "bad token id"     generate --model "$model" --prompt-ids "1 2 999999"
expect_fail "context too small" "exceed --ctx"     generate --model "$model" --prompt hi --max-tokens 100 --ctx 50
expect_fail "unknown command"   "unknown command"  frobnicate

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
