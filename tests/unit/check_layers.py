#!/usr/bin/env python3
"""The folder layers of src/: every #include "folder/file.h" must name an existing file of the same
folder or of a folder below it, and files must not include each other in a circle.

The layer order is the order of add_subdirectory() in src/CMakeLists.txt (lowest first), so the
build and this check read one list. Usage:
    check_layers.py SRC_DIR        check a tree (exit 1 and one line per problem on failure)
    check_layers.py --self-test    prove the check fails on an upward include, a circle, a missing
                                   file and a file outside every layer
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SUBDIR = re.compile(r'^\s*add_subdirectory\(\s*([A-Za-z0-9_]+)\s*\)', re.M)


def layer_order(src):
    with open(os.path.join(src, 'CMakeLists.txt')) as f:
        return SUBDIR.findall(f.read())


def check(src):
    order = layer_order(src)
    rank = {name: i for i, name in enumerate(order)}
    problems, edges = [], {}
    if not order:
        return ['%s/CMakeLists.txt: no add_subdirectory() lines: no layer order' % src]
    for dirpath, _, files in os.walk(src):
        for fn in sorted(files):
            if not fn.endswith(('.c', '.h', '.cu', '.cuh')):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, src).replace(os.sep, '/')
            folder = rel.split('/')[0]
            if '/' not in rel or folder not in rank:
                problems.append('%s: not in a layer folder (%s)' % (rel, ', '.join(order)))
                continue
            with open(path, encoding='utf-8', errors='replace') as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                inc = m.group(1)
                line = text.count('\n', 0, m.start()) + 1
                if '/' not in inc:
                    if os.path.exists(os.path.join(dirpath, inc)) or any(
                            os.path.exists(os.path.join(src, d, inc)) for d in order):
                        problems.append('%s:%d: "%s": include src/ files by folder ("engine/model.h")'
                                        % (rel, line, inc))
                    continue   # a header from outside src/ (kernels/hat_kernels.h, generated)
                to = inc.split('/')[0]
                if to not in rank:
                    problems.append('%s:%d: "%s": no layer folder %s' % (rel, line, inc, to))
                    continue
                if not os.path.exists(os.path.join(src, inc)) and inc != 'core/build_info.h':
                    problems.append('%s:%d: "%s": no such file' % (rel, line, inc))
                    continue
                if rank[to] > rank[folder]:
                    problems.append('%s:%d: "%s": %s is above %s (layer order: %s)'
                                    % (rel, line, inc, to, folder, ' < '.join(order)))
                edges.setdefault(rel, set()).add(inc)
    problems += ['include circle: ' + ' -> '.join(c) for c in circles(edges)]
    return problems


def circles(edges):
    """Every include circle among files, each once (depth-first search, back edges)."""
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def self_test():
    cases = {
        'clean': ({}, 0),
        'upward include': ({'core/bad.c': '#include "engine/a.h"\n'}, 1),
        'circle': ({'engine/b.h': '#include "engine/c.h"\n', 'engine/c.h': '#include "engine/b.h"\n'}, 1),
        'missing file': ({'engine/d.c': '#include "core/nope.h"\n'}, 1),
        'bare include of a src file': ({'engine/e.c': '#include "a.h"\n'}, 1),
        'file outside the layers': ({'loose.c': '\n'}, 1),
    }
    base = {'CMakeLists.txt': 'add_subdirectory(core)\nadd_subdirectory(engine)\n',
            'core/common.h': '', 'engine/a.h': '#include "core/common.h"\n#include <stdio.h>\n',
            'engine/a.c': '#include "engine/a.h"\n#include "hat_kernels.h"\n'}
    ok = True
    for name, (extra, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in {**base, **extra}.items():
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                with open(os.path.join(d, rel), 'w') as f:
                    f.write(text)
            got = len(check(d)) > 0
            print('%-28s %s' % (name, 'refused' if got else 'accepted'))
            ok &= got == bool(want)
    print('self-test', 'passed' if ok else 'FAILED')
    return 0 if ok else 1


def main(argv):
    if len(argv) == 2 and argv[1] == '--self-test':
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p)
    if problems:
        print('%d layering problem(s)' % len(problems))
        return 1
    print('layers ok: %s' % ' < '.join(layer_order(argv[1])))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
