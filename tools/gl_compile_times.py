#!/usr/bin/env python3
"""Pipeline creation + first dispatch time of WGSL entry points, per wgpu adapter.

Why: llvmpipe's GL path compiles some kernels for minutes (LLVM's coroutine split of
workgroup barriers), lavapipe in about a second. This measures each entry point on
each software adapter so a kernel change is judged in seconds (docs/PERFORMANCE.md,
GL section). Needs `pip install wgpu` (wgpu-py, bundles wgpu-native); runs each
measurement in a child process under a time limit, with Mesa's shader cache off.

  python3 tools/gl_compile_times.py [--timeout S] [--backend gl|vulkan|both] [FILTER...]

FILTER picks entry points whose label contains it: labels are `attention.wgsl:attn_fwd`,
`matmul.wgsl:<variant>` (generated like src/backend/wgpu/matmul.rs does).
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SH = os.path.join(ROOT, "shaders")


def read(name):
    with open(os.path.join(SH, name)) as f:
        return f.read()


def matmul_variant(cfg, trans_a=False, trans_b=True, vec=True, b_dtype=0, bias=True,
                   act=0, keep_pre=False, split=False):
    """The WGSL of one matmul variant: the template with its header regenerated the way
    src/backend/wgpu/matmul.rs `header()` does (kept in step by hand; only for timing)."""
    name, bm, bn, bk, tm, tn = cfg
    body = read("matmul.wgsl")
    end = "// ---- end of the variant header ----\n"
    body = body[body.index(end) + len(end):]
    wx, wy = bn // tn, bm // tm
    nt = wx * wy
    ga, gb = bm * bk // 4, bn * bk // 4
    b = lambda x: "true" if x else "false"
    h = [f"const BM: u32 = {bm}u;", f"const BN: u32 = {bn}u;", f"const BK: u32 = {bk}u;",
         f"const TM: u32 = {tm}u;", f"const TN: u32 = {tn}u;", f"const TM4: u32 = {tm // 4}u;",
         f"const TN4: u32 = {tn // 4}u;", f"const WX: u32 = {wx}u;", f"const WY: u32 = {wy}u;",
         f"const SA2: u32 = {2 * bk * bm // 4}u;", f"const SB2: u32 = {2 * bk * bn // 4}u;",
         f"const ACC_N: u32 = {tm * tn // 4}u;", f"const LA: u32 = {-(-ga // nt)}u;",
         f"const LB: u32 = {-(-gb // nt)}u;", f"const TRANS_A: bool = {b(trans_a)};",
         f"const TRANS_B: bool = {b(trans_b)};", f"const VEC_A: bool = {b(vec)};",
         f"const VEC_B: bool = {b(vec)};", f"const VEC_C: bool = {b(vec)};",
         f"const HAS_BIAS: bool = {b(bias)};", f"const KEEP_PRE: bool = {b(keep_pre)};",
         f"const SPLIT: bool = {b(split)};", f"const ACT: u32 = {act}u;"]

    def f32_operand(binding, var, f, vec):
        if vec:
            return (f"@group(0) @binding({binding}) var<storage, read> {var}: array<vec4<f32>>;\n"
                    f"fn {f}4(i: u32) -> vec4<f32> {{ return {var}[i >> 2u]; }}\n"
                    f"fn {f}1(i: u32) -> f32 {{ return {var}[i >> 2u][i & 3u]; }}")
        return (f"@group(0) @binding({binding}) var<storage, read> {var}: array<f32>;\n"
                f"fn {f}1(i: u32) -> f32 {{ return {var}[i]; }}\n"
                f"fn {f}4(i: u32) -> vec4<f32> {{ return vec4<f32>({var}[i], {var}[i + 1u], {var}[i + 2u], {var}[i + 3u]); }}")

    def output(binding, var, f, vec):
        if vec:
            return (f"@group(0) @binding({binding}) var<storage, read_write> {var}: array<vec4<f32>>;\n"
                    f"fn {f}4(i: u32, v: vec4<f32>) {{ {var}[i >> 2u] = v; }}\n"
                    f"fn {f}1(i: u32, x: f32) {{ {var}[i >> 2u][i & 3u] = x; }}")
        return (f"@group(0) @binding({binding}) var<storage, read_write> {var}: array<f32>;\n"
                f"fn {f}1(i: u32, x: f32) {{ {var}[i] = x; }}\n"
                f"fn {f}4(i: u32, v: vec4<f32>) {{ {var}[i] = v.x; {var}[i + 1u] = v.y; {var}[i + 2u] = v.z; {var}[i + 3u] = v.w; }}")

    h.append(f32_operand(1, "mat_a", "a", vec))
    if b_dtype == 0:
        h.append(f32_operand(2, "mat_b", "b", vec))
    else:
        if b_dtype == 2:
            h.append("fn halves(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }")
        else:
            h.append("fn halves(w: u32) -> vec2<f32> { return unpack2x16float(w); }")
        if vec:
            h.append("@group(0) @binding(2) var<storage, read> mat_b: array<vec2<u32>>;\n"
                     "fn b4(i: u32) -> vec4<f32> { let w = mat_b[i >> 2u]; return vec4<f32>(halves(w.x), halves(w.y)); }\n"
                     "fn b1(i: u32) -> f32 { let w = mat_b[i >> 2u]; return halves(select(w.x, w.y, (i & 2u) != 0u))[i & 1u]; }")
        else:
            h.append("@group(0) @binding(2) var<storage, read> mat_b: array<u32>;\n"
                     "fn b1(i: u32) -> f32 { return halves(mat_b[i >> 1u])[i & 1u]; }\n"
                     "fn b4(i: u32) -> vec4<f32> { return vec4<f32>(b1(i), b1(i + 1u), b1(i + 2u), b1(i + 3u)); }")
    h.append(f32_operand(3, "bias", "bias", vec))
    h.append(output(4, "mat_out", "out", vec))
    if keep_pre:
        h.append(output(5, "mat_pre", "pre", vec))
    else:
        h.append("fn pre4(i: u32, v: vec4<f32>) {}\nfn pre1(i: u32, x: f32) {}")
    return "\n".join(h) + "\n" + body


TILES = {
    "tile128": ("tile128", 128, 128, 8, 8, 8),
    "tile128x64": ("tile128x64", 128, 64, 8, 8, 4),
    "tile64": ("tile64", 64, 64, 16, 4, 4),
    "skinny": ("skinny", 128, 16, 8, 4, 4),
}


def cases():
    """(label, wgsl without common.wgsl, entry point)."""
    out = []
    for name in ["attention.wgsl", "attention_d64.wgsl"]:
        src = read(name)
        for ep in re.findall(r"@compute[^\n]*\n\s*fn (\w+)", src):
            out.append((f"{name}:{ep}", src, ep))
    for t in TILES:
        for dt, dn in [(0, "f32"), (1, "f16"), (2, "bf16")]:
            for tb in [True, False]:
                for vec in [True, False]:
                    label = f"matmul.wgsl:{t}/{dn}/{'nt' if tb else 'nn'}/{'vec' if vec else 'scalar'}"
                    out.append((label, matmul_variant(TILES[t], trans_b=tb, vec=vec, b_dtype=dt), "matmul"))
    for ep in ["matmul"]:
        out.append(("matmul_naive.wgsl:matmul", read("matmul_naive.wgsl"), ep))
    return out


def functions(src):
    """name -> body text, by brace matching."""
    fns = {}
    for m in re.finditer(r"\bfn (\w+)\s*\(", src):
        i = src.index("{", m.end())
        depth, j = 0, i
        while True:
            c = src[j]
            depth += c == "{"
            depth -= c == "}"
            j += 1
            if depth == 0:
                break
        fns[m.group(1)] = src[m.start():j]
    return fns


def bindings_used(src, ep):
    """(binding, kind) the entry point reaches, kind: uniform | read | read_write."""
    fns = functions(src)
    seen, todo, text = set(), [ep], []
    while todo:
        f = todo.pop()
        if f in seen or f not in fns:
            continue
        seen.add(f)
        text.append(fns[f])
        for g in re.findall(r"\b(\w+)\s*\(", fns[f]):
            todo.append(g)
    body = "\n".join(text)
    used = {}
    for m in re.finditer(r"@binding\((\d+)\)\s*var<(\w+)(?:,\s*(\w+))?>\s*(\w+)", src):
        b, space, access, name = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        if re.search(rf"\b{name}\b", body):
            used[b] = "uniform" if space == "uniform" else access
    return used


def child(label, backend):
    import wgpu
    want = {"gl": "OpenGL", "vulkan": "Vulkan"}[backend]
    adapter = next(a for a in wgpu.gpu.enumerate_adapters_sync() if a.info["backend_type"] == want)
    dev = adapter.request_device_sync()
    case = next(c for c in cases() if c[0] == label)
    _, src, ep = case
    full = read("common.wgsl") + "\n" + src
    used = bindings_used(full, ep)
    t0 = time.perf_counter()
    mod = dev.create_shader_module(code=full)
    entries, bg = [], []
    for b, kind in sorted(used.items()):
        ty = {"uniform": wgpu.BufferBindingType.uniform, "read": wgpu.BufferBindingType.read_only_storage,
              "read_write": wgpu.BufferBindingType.storage}[kind]
        entries.append({"binding": b, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": ty}})
        usage = wgpu.BufferUsage.UNIFORM if kind == "uniform" else wgpu.BufferUsage.STORAGE
        # Zeroed params: every kernel returns early for an empty problem.
        buf = dev.create_buffer(size=1024, usage=usage | wgpu.BufferUsage.COPY_SRC)
        last = buf
        bg.append({"binding": b, "resource": {"buffer": buf, "offset": 0, "size": 1024}})
    bgl = dev.create_bind_group_layout(entries=entries)
    layout = dev.create_pipeline_layout(bind_group_layouts=[bgl])
    pipe = dev.create_compute_pipeline(layout=layout, compute={"module": mod, "entry_point": ep})
    t1 = time.perf_counter()
    group = dev.create_bind_group(layout=bgl, entries=bg)
    enc = dev.create_command_encoder()
    p = enc.begin_compute_pass()
    p.set_pipeline(pipe)
    p.set_bind_group(0, group)
    p.dispatch_workgroups(1, 1, 1)
    p.end()
    dev.queue.submit([enc.finish()])
    # A readback waits for the dispatch (llvmpipe compiles at the first launch).
    dev.queue.read_buffer(last)
    t2 = time.perf_counter()
    print(json.dumps({"label": label, "backend": backend, "pipeline_s": round(t1 - t0, 2),
                      "total_s": round(t2 - t0, 2)}))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--child":
        return child(args[1], args[2])
    timeout, backends = 600, ["gl", "vulkan"]
    filters = []
    while args:
        a = args.pop(0)
        if a == "--timeout":
            timeout = float(args.pop(0))
        elif a == "--backend":
            b = args.pop(0)
            backends = ["gl", "vulkan"] if b == "both" else [b]
        else:
            filters.append(a)
    env = dict(os.environ, MESA_SHADER_CACHE_DISABLE="true", XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    for label, _, _ in cases():
        if filters and not any(f in label for f in filters):
            continue
        for be in backends:
            t0 = time.perf_counter()
            try:
                r = subprocess.run([sys.executable, __file__, "--child", label, be], env=env,
                                   capture_output=True, text=True, timeout=timeout)
                line = [l for l in r.stdout.splitlines() if l.startswith("{")]
                if r.returncode != 0 or not line:
                    print(f"{label:45} {be:7} FAILED: {r.stderr.strip()[-400:]}", flush=True)
                    continue
                d = json.loads(line[-1])
                print(f"{label:45} {be:7} {d['total_s']:8.2f} s", flush=True)
            except subprocess.TimeoutExpired:
                print(f"{label:45} {be:7} >{timeout:.0f} s (timed out)", flush=True)


if __name__ == "__main__":
    main()
