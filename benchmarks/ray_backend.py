"""Ray backend throughput vs the local backend, Ray's per-piece overhead, and a projection to N GPUs (issue 17).

Both sides run in this one script on the same machine:

1. **Throughput** on a model slow enough that model work dominates: a float32 MLP (d = 11 players, two hidden layers
   of 2048), inner Integrated Gradients with 16 steps, exact (2,047 attribution calls = 32,752 model rows, forward and
   backward), ``batch_size = 64`` rows per pass (4 coalitions). Local with torch's default threads and with one thread
   (a CPU worker computes with one), then Ray with 1 and 2 workers (one CPU each). Times exclude the workers' start
   (reported separately: a new process imports torch and unpickles the adapter) — the start is paid once per run.
   1b: the same run on a *device-bound* model (each pass waits 20 ms and computes almost nothing, as a worker does
   while its GPU computes), with 1, 2 and 4 workers: it scales with workers whatever the CPU count here.
2. **Per-piece overhead** of Ray: the same run on a model that costs nothing (``z.sum``), cut into many pieces, timed
   on 1 worker against the local backend: (T_ray − T_local) / pieces; and the driver's own CPU time per piece
   (submit, wait, collect, write), which bounds how many pieces per second one driver can feed.
3. **Projection** to N GPUs: a piece of model time t on each of N workers, plus the per-piece overhead o, with the
   driver's serial cost c as a ceiling: throughput = min(N / (t + o), 1 / c) pieces/s; speed-up = throughput · t.

Run: ``python benchmarks/ray_backend.py`` (about two minutes). On a machine shared with other work the timings move
by ±20 %; the script prints the load average next to them.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

import metagame
from metagame.domains.tensors.adapter import TensorModel
from metagame.run import backend as backend_module

D = 11
HIDDEN = 2048
STEPS = 16
BATCH = 64  # rows per pass: 64 // 16 = 4 coalitions
REPEATS = 2
SLEEP = 0.02  # seconds per pass of the device-bound model


def slow_adapter() -> TensorModel:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(D, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, 1), torch.nn.Flatten(0),
    )
    return TensorModel(net, torch.linspace(-1, 1, D), batch_size=BATCH)


def device_bound_adapter() -> TensorModel:
    """A model whose passes wait SLEEP seconds and compute almost nothing: the profile of a GPU-bound model, whose
    worker's CPU idles while the device computes (so it scales with workers whatever the CPU count here)."""
    w = torch.linspace(-1, 1, D, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        time.sleep(SLEEP)
        return torch.tanh(z @ w)

    return TensorModel(f, torch.linspace(-1, 1, D, dtype=torch.float64), batch_size=BATCH)


def free_adapter() -> TensorModel:
    return TensorModel(lambda z: z.sum(1), torch.linspace(-1, 1, D, dtype=torch.float64), batch_size=4)


def timed(build, **run) -> tuple[float, float, dict, np.ndarray]:
    """Best of REPEATS: (seconds of work, seconds of worker start, backend record, matrix)."""
    best = None
    original = backend_module.WorkerPool
    for _ in range(REPEATS):
        pools: list = []
        backend_module.WorkerPool = lambda *a, _made=pools, **k: _made.append(original(*a, **k)) or _made[-1]
        try:
            t0 = time.perf_counter()
            res = metagame.explain(build(), "integrated_gradients", method_kwargs={"n_steps": STEPS}, progress=False, **run)
            total = time.perf_counter() - t0
        finally:
            backend_module.WorkerPool = original
        start = pools[0].startup_seconds if pools else 0.0
        out = (total - start, start, res.metadata["backend"], res.matrix)
        if best is None or out[0] < best[0]:
            best = out
    assert best is not None
    return best


def piece_overhead(workers: int, unit: int = 4) -> tuple[float, float, float, int]:
    """Per-piece cost of Ray on a free model: ``(local s, ray s, driver CPU s, pieces)`` for all coalitions sent in
    units of ``unit`` coalitions, one piece each."""
    from metagame.games.masked import AttributionGame
    from metagame.methods.registry import get_method
    from metagame.players import all_coalitions

    rows = all_coalitions(D)[1:]
    method = get_method("integrated_gradients", {"n_steps": STEPS})
    local = AttributionGame(free_adapter(), method, batch_size=unit)
    t0 = time.perf_counter()
    local(rows)
    t_local = time.perf_counter() - t0
    opts = metagame.run.RunOptions(backend="ray", num_workers=workers)
    game = backend_module.make_attribution_game(free_adapter(), method, opts, batch_size=unit)
    game.cut = None  # one piece per unit
    game.pool.start()
    c0, t0 = time.process_time(), time.perf_counter()
    game(rows)
    t_ray, cpu = time.perf_counter() - t0, time.process_time() - c0
    pieces = game.pool.pieces
    game.pool.close()
    return t_local, t_ray, cpu / pieces, pieces


_MATMUL = ("import time, torch; torch.set_num_threads(1); a = torch.randn(64, 2048); w = torch.randn(2048, 2048); "
           "t = time.perf_counter(); [a @ w for _ in range(200)]; print(time.perf_counter() - t)")


def parallel_capacity() -> float:
    """How many single-threaded matmul processes this machine runs at full speed right now: one process's time × 2 ÷
    the slower of two run together (2.0 on two free cores; 1.0 when only one core's worth is free)."""
    import subprocess

    def run(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _MATMUL], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    return 2 * run(1) / run(2)


def main() -> None:
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)  # logical CPUs: see 1b
    threads = torch.get_num_threads()
    print(f"machine: {os.cpu_count()} CPU cores (shared with other work); load average {os.getloadavg()[0]:.2f}; "
          f"torch {torch.__version__}, ray {ray.__version__}; free cores now (two single-thread matmul processes "
          f"at once): {parallel_capacity():.2f}")
    print(f"\n1. throughput: MLP {D}→{HIDDEN}→{HIDDEN}→1 (float32), IG {STEPS} steps, exact: {2**D - 1} attribution "
          f"calls, {(2**D - 1) * STEPS} model rows (forward + backward), {BATCH} rows per pass")
    rows = []
    t_local, _, _, _ = timed(slow_adapter)
    rows.append((f"local ({threads} threads)", t_local, 0.0, None))
    torch.set_num_threads(1)
    t_local1, _, _, ref1 = timed(slow_adapter)
    torch.set_num_threads(threads)
    rows.append(("local (1 thread)", t_local1, 0.0, None))
    results = {}
    for w in (1, 2):
        t, start, info, matrix = timed(slow_adapter, backend="ray", num_workers=w)
        assert np.array_equal(matrix, ref1), "Ray must give the local (1-thread) numbers bit for bit"
        results[w] = (t, info)
        rows.append((f"ray, {w} worker{'s' if w > 1 else ''} (1 thread each)", t, start, info))
    print(f"{'backend':34s} {'work s':>8s} {'calls/s':>9s} {'vs local':>9s} {'vs 1 thread':>11s} {'start s':>8s} "
          f"{'pieces':>7s}  calls per worker")
    for name, t, start, info in rows:
        per = info["coalitions_per_worker"] if info else ""
        pieces = info["pieces"] if info else ""
        print(f"{name:34s} {t:8.2f} {(2**D - 1) / t:9.1f} {t_local / t:8.2f}x {t_local1 / t:10.2f}x {start:8.2f} "
              f"{pieces!s:>7s}  {per}")
    piece_t = results[1][0] / results[1][1]["pieces"]
    overhead_slow = (results[1][0] - t_local1) / results[1][1]["pieces"]
    print(f"bitwise equal to the local 1-thread run: yes; one piece = {piece_t * 1e3:.0f} ms of model work; "
          f"2 workers vs 1: {results[1][0] / results[2][0]:.2f}x on 2 shared cores")

    print(f"\n1b. device-bound model: the same run (d = {D}, IG {STEPS} steps), each pass of {BATCH} rows waits "
          f"{SLEEP * 1e3:g} ms (a GPU-bound model's profile; Ray is told 4 CPUs so 4 waiting workers fit)")
    t_dev, _, _, dev_ref = timed(device_bound_adapter)
    print(f"{'backend':34s} {'work s':>8s} {'calls/s':>9s} {'vs local':>9s} {'start s':>8s} {'pieces':>7s}")
    print(f"{'local':34s} {t_dev:8.2f} {(2**D - 1) / t_dev:9.1f} {1.0:8.2f}x {0.0:8.2f}")
    for w in (1, 2, 4):
        t, start, info, matrix = timed(device_bound_adapter, backend="ray", num_workers=w)
        assert np.array_equal(matrix, dev_ref)
        print(f"{'ray, ' + str(w) + ' worker' + ('s' if w > 1 else ''):34s} {t:8.2f} {(2**D - 1) / t:9.1f} "
              f"{t_dev / t:8.2f}x {start:8.2f} {info['pieces']:7d}")

    print("\n2. per-piece overhead (a model that costs nothing; one piece = 4 coalitions)")
    for w in (1, 2):
        t_free_local, t_free_ray, cpu_w, n = piece_overhead(w)
        print(f"{w} worker{'s' if w > 1 else ' '}: local {t_free_local * 1e3:6.0f} ms, ray {t_free_ray * 1e3:6.0f} ms for "
              f"{n} pieces → {(t_free_ray - t_free_local) / n * 1e3:.2f} ms per piece; driver CPU {cpu_w * 1e3:.2f} ms "
              f"per piece")
        if w == 1:
            overhead, cpu = (t_free_ray - t_free_local) / n, cpu_w
    print(f"(from the slow model, 1 worker: {overhead_slow * 1e3:.1f} ms per piece, within the noise of its "
          f"{piece_t * 1e3:.0f} ms pieces); one driver feeds at most {1 / cpu:.0f} pieces/s")

    print("\n3. projection to N GPUs (one worker per GPU): speed-up over one local GPU = min(N/(t+o), 1/c)·t "
          f"with o = {overhead * 1e3:.2f} ms, c = {cpu * 1e3:.2f} ms (measured above); t = model time of one piece")
    ts = [0.005, 0.05, 0.5]
    print(f"{'N':>5s} " + " ".join(f"{'t=' + format(t * 1e3, 'g') + ' ms':>14s}" for t in ts))
    for N in (1, 2, 4, 8, 16, 32, 64, 128):
        cells = []
        for t in ts:
            speed = min(N / (t + overhead), 1 / cpu) * t
            cells.append(f"{speed:7.1f}x ({speed / N:4.0%})")
        print(f"{N:5d} " + " ".join(f"{c:>14s}" for c in cells))
    print("(cells: speed-up (efficiency per GPU); a 7B LM's IG pass of 32 rows on an H100 is tens of ms, so t = 50 ms "
          "is the typical column)")
    ray.shutdown()


if __name__ == "__main__":
    main()
