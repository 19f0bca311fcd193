"""Ctrl-C during `cliptune.train` stops after the current step, leaves a resumable
checkpoint and raises KeyboardInterrupt saying so; the run then resumes from it."""

import os
import re
import signal
import subprocess
import sys
import time

import cliptune
from conftest import CAPTIONS, TINY_HF

OPTS = dict(epochs=100000, batch=4, seed=2, device="cpu", checkpoint_every=1000000)


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    out = tmp_path / "lora"
    code = (
        "import cliptune\n"
        "try:\n"
        f"    cliptune.train({str(TINY_HF)!r}, 'lora', {str(CAPTIONS)!r}, {str(out)!r}, **{OPTS!r})\n"
        "except KeyboardInterrupt as e:\n"
        "    print('INTERRUPTED:', e, flush=True)\n"
        "    raise SystemExit(3)\n"
        "print('FINISHED', flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 300
    while b"[train] step" not in seen:  # training has started: interrupt it mid-run
        chunk = os.read(p.stderr.fileno(), 4096)
        assert chunk and time.monotonic() < deadline, f"no progress line; stderr so far:\n{seen.decode()}"
        seen += chunk
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 3, (stdout.decode(), (seen + stderr).decode())
    m = re.search(r"INTERRUPTED: training interrupted after step (\d+); (\S+) holds a resumable checkpoint", stdout.decode())
    assert m, stdout.decode()
    steps = int(m.group(1))
    assert 1 <= steps < 100000 and m.group(2) == str(out)
    assert (out / "adapter_model.safetensors").is_file() and (out / "trainer_state.safetensors").is_file()
    # The checkpoint continues: two more steps from where it stopped.
    res = cliptune.train(TINY_HF, "lora", CAPTIONS, out, resume=True, stop_after=steps + 2, **OPTS)
    assert res["steps"] == steps + 2
