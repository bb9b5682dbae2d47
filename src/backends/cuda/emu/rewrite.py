#!/usr/bin/env python3
"""HB_GPU_EMU build step: turn one backend .cu file into C++ for the CPU emulator (hb_gpu_emu.h).
  kernel<<<grid, block[, smem[, stream]]>>>(args);  ->  emu_launch(&kernel, grid, block, smem, stream,
                                                                    [&]() { kernel(args); });
  __shared__ T name[N];           ->  T (&name)[N] = *reinterpret_cast<T (*)[N]>(emu_smem_static(...));
  extern __shared__ T name[];     ->  T *name = reinterpret_cast<T *>(emu_smem_dynamic());
Line numbers are kept (a #line directive, and every rewritten construct keeps its newlines), so compiler
messages and debuggers point at the original .cu file.  Usage: rewrite.py IN.cu OUT.cpp"""
import re
import sys

src_path, out_path = sys.argv[1], sys.argv[2]
s = open(src_path).read()


def split_top(inner):
    parts, depth, cur = [], 0, ''
    for c in inner:
        if c in '([{':
            depth += 1
        elif c in ')]}':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts]


out, i = [], 0
while True:
    j = s.find('<<<', i)
    if j < 0:
        out.append(s[i:])
        break
    k, depth = j, 0  # kernel expression: back over template arguments to the previous delimiter
    while k > 0:
        c = s[k - 1]
        if c == '>':
            depth += 1
        elif c == '<':
            depth -= 1
        elif depth == 0 and (c.isspace() or c in ';{}()'):
            break
        k -= 1
    kern = s[k:j]
    e = s.find('>>>', j)
    cfg = split_top(s[j + 3:e])
    while len(cfg) < 4:
        cfg.append('0' if len(cfg) == 2 else 'nullptr')
    p = e + 3
    while s[p].isspace():
        p += 1
    assert s[p] == '(', 'launch without arguments at %s' % s[k:p + 20]
    d, q = 0, p
    while True:
        if s[q] == '(':
            d += 1
        elif s[q] == ')':
            d -= 1
            if d == 0:
                break
        q += 1
    args = s[p:q + 1]
    text = s[k:q + 1]
    call = 'emu_launch(reinterpret_cast<const void *>(&%s), dim3(%s), dim3(%s), (size_t)(%s), %s, [&]() { %s%s; })' % (
        kern, cfg[0], cfg[1], cfg[2], cfg[3], kern, args.replace('\n', ' '))
    out.append(s[i:k])
    out.append(call + '\n' * text.count('\n'))
    i = q + 1
s = ''.join(out)

s = re.sub(r'extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w:]+(?:\s+[\w:]+)*?)\s+(\w+)\[\];',
           lambda m: '%s *%s = reinterpret_cast<%s *>(emu_smem_dynamic());' % (m.group(1), m.group(2), m.group(1)), s)


def static_shared(m):
    align = m.group(1) or '16'
    t, name, n = m.group(2), m.group(3), m.group(4)
    return '%s(&%s)[%s] = *reinterpret_cast<%s(*)[%s]>(emu_smem_static(sizeof(%s) * (%s), %s));' % (
        t + ' ', name, n, t + ' ', n, t, n, align)


s = re.sub(r'__shared__\s+(?:__align__\((\d+)\)\s+)?([\w:]+(?:\s+[\w:]+)*?)\s+(\w+)\[([^\]]+)\];', static_shared, s)
if re.search(r'^\s*[^/*\n]*\b__shared__\b', s, re.M):  # a declaration left over (comments aside)
    sys.exit('rewrite.py: %s: a __shared__ declaration this script does not handle' % src_path)
with open(out_path, 'w') as f:
    f.write('#line 1 "%s"\n' % src_path)
    f.write(s)
