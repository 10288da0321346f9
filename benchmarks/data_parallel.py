"""Speed of data-parallel training: one epoch of ResNet-8 on the bundled mini Fashion-MNIST, 1 process vs
2 MPI ranks (``mpiexec -n 2 minicnn train --distributed``), written up in benchmarks/README.md.

    python benchmarks/data_parallel.py [--repeats 3] [--limit N] [--model resnet8] [--blas-threads]

Each configuration runs the real command in a fresh process (or two) and reads the epoch's training time
from the history it writes (``seconds``: the training loop only, without start-up, test evaluation and
plots); the configurations are interleaved, ``--repeats`` times, and the median is reported:

    1 process, 1 thread        batch 64                       OMP_NUM_THREADS=1
    2 ranks, 1 thread each     batch 32 per rank = 64         the paper's setting: same batch, same steps
    2 ranks, 1 thread each     batch 64 per rank = 128        PyTorch's usual setting: per-rank batch kept
    1 process, 2 threads       batch 64                       with --blas-threads: OMP_NUM_THREADS=2 (BLAS
                                                              and minicnn.set_num_threads)

Before every round, a check of the machine itself: the time of a single-threaded float32 matrix-multiply loop
alone, and of two copies running at once. On two free cores both take the same time (2× the throughput); if
two copies take longer (a loaded or oversubscribed machine), no data-parallel program can reach 2× either.

Needs mpi4py and mpiexec (pip install ".[distributed]").
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIGURATIONS = [
    # name, ranks, threads per rank, batch per rank
    ("1 process, 1 thread", 1, 1, 64),
    ("2 ranks × 1 thread, batch 2 × 32", 2, 1, 32),
    ("2 ranks × 1 thread, batch 2 × 64", 2, 1, 64),
]
BLAS_THREADS = ("1 process, 2 threads", 1, 2, 64)
MATMUL_LOOP = ("import time, numpy as np; a = np.random.default_rng(0).random((384, 384), np.float32); "
               "t = time.perf_counter(); [a @ a for _ in range(1500)]; print(time.perf_counter() - t)")


def one_thread():
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def two_cores_check():
    """(seconds of the matmul loop alone, seconds of each of two copies run together)."""
    alone = float(subprocess.run([sys.executable, "-c", MATMUL_LOOP], capture_output=True, text=True, check=True,
                                 env=one_thread()).stdout)
    copies = [subprocess.Popen([sys.executable, "-c", MATMUL_LOOP], stdout=subprocess.PIPE, text=True,
                               env=one_thread()) for _ in range(2)]
    together = [float(c.communicate()[0]) for c in copies]
    return alone, max(together)


def mpiexec():
    for candidate in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit("no mpiexec: pip install \".[distributed]\"")


def run(ranks, threads, batch, args, out):
    command = [sys.executable, "-m", "minicnn", "train", args.model, "--epochs", "1", "--batch-size", str(batch),
               "--no-progress", "--out", str(out)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command, "--distributed"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    record = json.loads((out / "history.json").read_text())["history"][-1]
    return record["seconds"], wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--blas-threads", action="store_true", help="also 1 process with 2 BLAS threads")
    args = parser.parse_args()
    configurations = CONFIGURATIONS + ([BLAS_THREADS] if args.blas_threads else [])
    epochs, walls, cores = {c[0]: [] for c in configurations}, {c[0]: [] for c in configurations}, []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            alone, together = two_cores_check()
            cores.append(2 * alone / together)
            print(f"round {repeat + 1}: matmul loop alone {alone:.2f} s, two copies at once {together:.2f} s each: "
                  f"two cores give {cores[-1]:.2f}× the throughput of one", flush=True)
            for name, ranks, threads, batch in configurations:
                seconds, wall = run(ranks, threads, batch, args, Path(folder) / f"{repeat}-{ranks}-{threads}-{batch}")
                epochs[name].append(seconds)
                walls[name].append(wall)
                print(f"{name:36s} epoch {seconds:6.1f} s   command {wall:6.1f} s", flush=True)
    base = statistics.median(epochs[CONFIGURATIONS[0][0]])
    print(f"\ntwo cores gave {statistics.median(cores):.2f}× the matmul throughput of one (median of the rounds; "
          f"2.00 on an idle machine)")
    print(f"\n| configuration | training epoch (s) | speed-up over 1 process, 1 thread | whole command (s) |")
    print("|---|---:|---:|---:|")
    for name, *_ in configurations:
        epoch, wall = statistics.median(epochs[name]), statistics.median(walls[name])
        print(f"| {name} | {epoch:.1f} | {base / epoch:.2f}× | {wall:.1f} |")


if __name__ == "__main__":
    main()
