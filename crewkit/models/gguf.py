"""GGUF models in process with llama.cpp: loaded once per file, run on the cores that are free.

- `load(name, path, n_ctx, n_threads)`: one `Llama` per (file, context, threads), shared by every
  role that maps to it, with a RAM prompt cache (an agent's next turn, a retry, reuse the KV
  states of earlier prompts with the same prefix); a file llama.cpp cannot read is a one-line
  `ModelUnavailable` naming the entry and the file.
- `free_cores()`: the usable cores other processes leave free right now. llama.cpp's worker
  threads wait for each other at every step, so threads on busy cores collapse (2 threads on 2
  busy cores measured ~40x slower than 1); each call sets its thread count from this.

No CrewAI import here. Loading is not moved to a background thread on purpose: with
verbose=False llama_cpp silences a load by redirecting the process's stdout/stderr file
descriptors (and swapping sys.stdout), which would swallow or un-redirect the main thread's output.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from crewkit.errors import ModelUnavailable

PROMPT_CACHE_BYTES = 256 << 20
PROMPT_BATCH = 128

_LOAD_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _runnable_threads() -> int | None:
    """Threads runnable on the whole machine right now (/proc/loadavg), this one included."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores() -> int:
    """Usable cores not taken by other runnable threads right now (median of a few samples; >= 1)."""
    cores = usable_cores()
    samples = []
    for i in range(5):
        n = _runnable_threads()
        if n is None:
            return cores
        samples.append(n)
        if i < 4:
            time.sleep(0.002)
    others = max(0, sorted(samples)[len(samples) // 2] - 1)
    return max(1, min(cores, (os.cpu_count() or cores) - others))


def load(name: str, path: str, n_ctx: int, n_threads: int) -> tuple[Any, threading.Lock]:
    """The shared `Llama` for this file and context, and the lock its generation must hold."""
    threads = n_threads or usable_cores()
    key = (path, n_ctx, threads)
    with _LOAD_LOCK:
        if key not in _MODELS:
            from llama_cpp import Llama, LlamaRAMCache

            try:
                llama = Llama(
                    model_path=path,
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    # smaller batches keep the prompt cache cheap: each saved state copies the
                    # batch's logits (512 x vocab floats: ~0.3 s a call); prompt speed is the same
                    n_batch=PROMPT_BATCH,
                    n_ubatch=PROMPT_BATCH,
                    verbose=False,
                    seed=0,
                )
            except Exception as exc:  # llama.cpp says ValueError; a bad file can raise others
                reason = " ".join(str(exc).replace(path, "").split()).rstrip(": ")
                if not reason or reason.startswith("Failed to load model"):
                    reason = "llama.cpp cannot read it (corrupt, truncated or not a GGUF model)"
                raise ModelUnavailable(
                    f"model '{name}': cannot load {path}: {reason}; fix 'file:' in config/models.yaml"
                ) from None
            llama.set_cache(LlamaRAMCache(capacity_bytes=PROMPT_CACHE_BYTES))
            _MODELS[key] = (llama, threading.Lock())
        return _MODELS[key]
