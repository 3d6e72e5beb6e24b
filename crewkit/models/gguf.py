"""GGUF models in process with llama.cpp: loaded once per file, run on the cores that are free.

- `load(name, path, n_ctx, n_threads)`: one `Llama` per (file, context, threads), shared by every
  role that maps to it, with a RAM prompt cache (an agent's next turn, a retry, reuse the KV
  states of earlier prompts with the same prefix); a file llama.cpp cannot read is a one-line
  `ModelUnavailable` naming the entry and the file.
- `free_cores()`: the usable cores other processes leave free right now. llama.cpp's worker
  threads wait for each other at every step, so threads on busy cores collapse (2 threads on 2
  busy cores measured ~40x slower than 1); each call sets its thread count from this.
- `generation(...)`: a llama.cpp context is not re-entrant, so one `Llama` generates one reply at
  a time. Calls that arrive together (batched subtasks) each get an instance of their own from
  the file's `Pool`: the first time a call finds every instance busy, another is loaded in the
  background (the call takes whichever instance is free first, so a short burst never waits
  for a load), up to a limit (the usable cores; `params.parallel` sets it, 1 turns it off). The weights are
  memory-mapped, so instances share them; each has its own KV cache and prompt cache. The cores
  are split between the instances generating at the same time (or within the last seconds), so
  two calls on 2 cores run with a thread each instead of three threads fighting for two cores.

No CrewAI import here. The first instance is loaded in the calling thread on purpose: with
verbose=False llama_cpp silences a load by redirecting the process's stdout/stderr file
descriptors (and swapping sys.stdout), which would swallow or un-redirect the main thread's output.
A further instance loads in the background only while calls overlap (a batch is running, the
main thread waits for the flow); what another thread prints during that load (about a second)
can be lost.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crewkit.errors import ModelUnavailable

log = logging.getLogger(__name__)

PROMPT_CACHE_BYTES = 256 << 20
PROMPT_BATCH = 128

RECENT_S = 2.0  # an instance that generated this recently counts as busy when cores are split
MAX_INSTANCES = 4

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
            _MODELS[key] = (new_instance(name, path, n_ctx, n_threads), threading.Lock())
        return _MODELS[key]


def new_instance(name: str, path: str, n_ctx: int, n_threads: int) -> Any:
    """A new `Llama` for this file (with its prompt cache); `load` shares the first one."""
    from llama_cpp import Llama, LlamaRAMCache

    threads = n_threads or usable_cores()
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
    return llama


@dataclass
class _Slot:
    llama: Any
    lock: threading.Lock
    last_end: float = float("-inf")


class Pool:
    """The instances of one model file; each generates one reply at a time (see the module doc)."""

    def __init__(self, first: Any, lock: threading.Lock) -> None:
        self.slots = [_Slot(first, lock)]
        self.changed = threading.Condition()
        self.loading = False
        self.cannot_grow: str | None = None  # why another instance could not be loaded

    def _take(self, make: Callable[[], Any], limit: int) -> _Slot:
        """The first idle instance. When every one is busy and the pool may grow, another is
        loaded in the background meanwhile: the caller takes whichever is free first (a busy
        instance finishing, or the new one), so a short burst never waits for a load."""
        while True:
            with self.changed:
                for slot in self.slots:
                    if slot.lock.acquire(blocking=False):
                        return slot
                if not self.loading and self.cannot_grow is None and len(self.slots) < limit:
                    self.loading = True
                    threading.Thread(
                        target=self._grow, args=(make,), name="crewkit-llama-load", daemon=True
                    ).start()
                # the primary's lock may be released without a notify (eval compare holds it)
                self.changed.wait(0.05)

    def _grow(self, make: Callable[[], Any]) -> None:
        slot = None
        try:
            slot = _Slot(make(), threading.Lock())
        except Exception as exc:  # noqa: BLE001 - the pool goes on with the instances it has
            self.cannot_grow = str(exc) or type(exc).__name__
            log.warning("embedded model: no further instance for calls at once: %s", self.cannot_grow)
        finally:
            with self.changed:
                if slot is not None:
                    self.slots.append(slot)
                self.loading = False
                self.changed.notify_all()

    def _sharing(self, mine: _Slot) -> int:
        """Instances generating now or a moment ago, this one included."""
        now = time.monotonic()
        return 1 + sum(
            1 for s in self.slots if s is not mine and (s.lock.locked() or now - s.last_end < RECENT_S)
        )

    @contextmanager
    def generation(
        self, make: Callable[[], Any], *, limit: int, n_threads: int = 0
    ) -> Iterator[tuple[Any, int]]:
        """An idle instance (loading another while all are busy, up to `limit`), set to run on
        `n_threads` threads if given, else on its share of the cores (at most the free ones).
        Instances already generating give up threads above the share at their next token."""
        slot = self._take(make, max(1, limit))
        try:
            free = free_cores() if not n_threads else 0
            with self.changed:
                share = max(1, usable_cores() // self._sharing(slot))
                threads = n_threads or max(1, min(share, free))
                apply_threads(slot.llama, threads)
                if not n_threads:
                    for other in self.slots:
                        busy = other is not slot and other.lock.locked()
                        if busy and (getattr(other.llama, "_crewkit_threads", None) or 0) > share:
                            apply_threads(other.llama, share)
            yield slot.llama, threads
        finally:
            slot.last_end = time.monotonic()
            slot.lock.release()
            with self.changed:
                self.changed.notify_all()


def apply_threads(llama: Any, threads: int) -> None:
    """Set an instance's generation threads (llama.cpp reads them at each decode step)."""
    if getattr(llama, "_crewkit_threads", None) != threads and hasattr(llama, "_ctx"):
        llama._ctx.set_n_threads(threads, threads)
        llama._crewkit_threads = threads


_POOLS: dict[int, tuple[Any, Pool]] = {}


def pool(first: Any, lock: threading.Lock) -> Pool:
    """The pool whose first instance is `first` (the one `load` shares)."""
    with _LOAD_LOCK:
        if not _POOLS:
            atexit.register(close_pools)
        entry = _POOLS.get(id(first))
        if entry is None or entry[0] is not first:
            entry = _POOLS[id(first)] = (first, Pool(first, lock))
        return entry[1]


def close_pools(wait_s: float = 30.0) -> None:
    """Free the pools' instances while llama_cpp is still whole (at exit).

    An instance left to the interpreter's shutdown is freed by its `__del__` after llama_cpp's
    bindings were torn down, which prints a `TypeError` traceback on stderr. A load in flight is
    waited for; an instance still generating (a run interrupted by Ctrl-C) is left alone.
    """
    for _, p in list(_POOLS.values()):
        with p.changed:
            p.changed.wait_for(lambda p=p: not p.loading, timeout=wait_s)
            slots = list(p.slots)
        for slot in slots:
            if slot.lock.acquire(blocking=False):
                with contextlib.suppress(Exception):
                    slot.llama.close()


def instance_limit(parallel: int, n_threads: int) -> int:
    """How many instances of one file may generate at once: `parallel` if set, else as many as
    the usable cores hold at `n_threads` each (at most MAX_INSTANCES)."""
    if parallel:
        return parallel
    return max(1, min(MAX_INSTANCES, usable_cores() // max(1, n_threads or 1)))
