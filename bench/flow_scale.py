"""Flow runs at scale: a run of 1,000 DUMMY jobs in 100 processes, from its start to its last job.

    .venv/bin/python bench/flow_scale.py [--backend both|sqlite|postgres] [--layers 10] [--width 10]
                                         [--jobs 10] [--sequences pairs|serial|parallel] [--seed 1]
                                         [--chain 50]

The flow: --layers layers of --width processes; every process after the first layer waits for 2
or 3 processes of the layer before (chosen with a seeded random, --seed), and holds --jobs DUMMY
jobs. Their sequences (--sequences): `pairs` (the default) 1, 1, 2, 2, … 5, 5, so two jobs of a
process run side by side and five steps follow one another; `serial` 1 … 10; `parallel` all 1.
The critical path is then layers × distinct sequences jobs long (50 by default).

For each backend it makes a scratch database (a fresh SQLite file under var/, or a PostgreSQL
database it creates and drops), starts a real `manage.py run_dispatcher` and `manage.py qcluster`
against it, both through bench/flow_probe.py, which times every flow step
(`apps.flows.services.step`, the work a finish does for its run) and notes every hand-out to the
queue, warms the workers up with a small run, then runs a chain of --chain jobs (one process,
sequences 1 … n: one job ready at a time, so nothing queues: the hand-off itself), and then the
big flow, each started with `apps.flows.services.start_run` and waited for to its end. Per run:

- wall: from the call of start_run to the last job's finished_at;
- orchestration per job: (start_run + every flow step of the run, minus the steps' waits for the
  run's row lock) / jobs. This is the flow's own work (reading the run's rows, deciding what is
  ready, handing out, keeping reasons and the run's status) and nothing of the queue, the workers
  or the jobs; the wait for the lock (another step of the same run holding it: steps of one run
  go one at a time) is shown on its own. On SQLite, writers queue for the database at BEGIN,
  before the step, so no wait shows there;
- hand-off: for every job that waited for others, its started_at minus the latest finished_at of
  what it waited for (the jobs of the sequence before it in its process, or every job of its
  predecessor processes): the end of a job to the start of the job that waited for it, queue
  and claim included; split where the step that freed it handed it to the queue (after its
  commit): before, the step and the wait for the run's lock; after, the wait for a free worker
  and the claim;
- start tasks queued per job (1.00 when nothing is handed out twice), the CPU of the dispatcher
  and the cluster per job, and the load average.

It prints a table per backend beside the targets (orchestration <= 30 ms a job on PostgreSQL +
Redis; hand-off p50 <= 100 ms, p99 <= 500 ms) and exits 0 whether or not they are met.

The PostgreSQL half uses PostgreSQL + Redis at BENCH_FLOW_POSTGRES_URL / BENCH_FLOW_REDIS_URL (or
--postgres-url / --redis-url), never DATABASE_URL / REDIS_URL: it drops the database it names.
Q_WORKERS and the other settings reach the processes from the environment as usual.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project

from bench.harness import (  # noqa: E402
    BACKENDS,
    ROOT,
    VAR,
    Processes,
    add_scratch_options,
    measured,
    percentile,
    refuse_unless_scratch,
    run_per_backend,
)

ORCHESTRATION_TARGET_MS = 30.0  # on PostgreSQL + Redis
HANDOFF_TARGET_MS = {50: 100.0, 99: 500.0}
PEERS = "Airflow ~4–6 s between dependent tasks, Dagster ~10 s locally"
SEQUENCES = {
    "pairs": lambda j: j // 2 + 1,
    "serial": lambda j: j + 1,
    "parallel": lambda j: 1,
}

# Neither the other benches' PostgreSQL database nor their Redis databases: they can run side by side.
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_bench_flow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
QUEUE_NAME = "batchdesk-flowbench"


def probe_file(backend: str) -> Path:
    return VAR / f"bench_flow-{backend}-steps.txt"


def main() -> int:
    args = parse_args()
    if args.backend != "both":
        # Read by bench/flow_probe.py in every process it starts (they inherit this environment).
        os.environ["FLOW_PROBE_FILE"] = str(probe_file(args.backend))
        probe_file(args.backend).unlink(missing_ok=True)
    return run_per_backend(args, name="bench_flow", measure=measure, queue_name=QUEUE_NAME,
                           manage=[sys.executable, str(ROOT / "bench" / "flow_probe.py")],
                           report=lambda results: print_report(results, args))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--layers", type=int, default=10, help="Layers of processes (default 10).")
    parser.add_argument("--width", type=int, default=10, help="Processes in a layer (default 10).")
    parser.add_argument("--jobs", type=int, default=10, help="DUMMY jobs in a process (default 10).")
    parser.add_argument("--sequences", choices=list(SEQUENCES), default="pairs",
                        help="Sequences of a process's jobs: pairs 1,1,2,2,… (default), serial 1,2,3,…, parallel all 1.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the choice of predecessors (default 1).")
    parser.add_argument("--chain", type=int, default=50,
                        help="Jobs of a chain run first, one ready at a time: the hand-off with no queue (default 50; 0 skips).")
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds to wait for the run (default 900).")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL,
                        env_prefix="BENCH_FLOW", per_backend=True)
    args = parser.parse_args()
    if min(args.layers, args.width, args.jobs) < 1 or (args.layers > 1 and args.width < 2) or args.chain < 0:
        parser.error("--layers, --width and --jobs must be positive, --width at least 2 with several layers, "
                     "--chain not negative")
    refuse_unless_scratch(parser, args)
    return args


# --- the flow -----------------------------------------------------------------------------


def build_flow(name: str, layers: int, width: int, jobs: int, sequences: str, seed: int):
    """The layered flow, built in a few bulk queries; returns it."""
    from apps.catalog.models import Application, Flow, JobDefinition, Process

    application, _ = Application.objects.get_or_create(name="BENCH")
    flow = Flow.objects.create(application=application, name=name, cycle="Bench")
    processes = Process.objects.bulk_create(
        [Process(flow=flow, name=f"L{layer:02d}_P{i:02d}") for layer in range(layers) for i in range(width)])
    grid = [processes[layer * width:(layer + 1) * width] for layer in range(layers)]
    rng = random.Random(seed)
    links = Process.predecessors.through
    links.objects.bulk_create([
        links(from_process=process, to_process=predecessor)
        for layer in range(1, layers) for process in grid[layer]
        for predecessor in rng.sample(grid[layer - 1], rng.choice([2, 3]) if width >= 3 else 2)])
    sequence = SEQUENCES[sequences]
    JobDefinition.objects.bulk_create([
        JobDefinition(name=f"{name}_{process.name}_J{j:02d}", application=application, job_type="DUMMY", command="",
                      process=process, sequence=sequence(j))
        for process in processes for j in range(jobs)], batch_size=500)
    return flow


def run_to_end(flow, processes: Processes, timeout: float, samples: list[float] | None = None):
    """Start a run of `flow` and wait for it to end; (the run, the time of the start call, its seconds)."""
    from apps.flows import services as flows
    from apps.flows.models import FlowRun, RunStatus

    started = time.time()
    run = flows.start_run(flow, triggered_by="bench")
    start_seconds = time.time() - started
    ended = FlowRun.objects.filter(pk=run.pk, status__in=[RunStatus.COMPLETED, RunStatus.ERROR])

    def over() -> bool:
        if samples is not None:
            samples.append(os.getloadavg()[0])
        return ended.exists()

    if not processes.wait_until(over, timeout, interval=0.5):
        raise RuntimeError(f"run {run.pk} did not end within {timeout:g} s; see {processes.log_prefix}-*.log")
    run.refresh_from_db()
    return run, started, start_seconds


# --- one backend, with a real dispatcher and cluster --------------------------------------


def measure(backend: str, args: argparse.Namespace, processes: Processes) -> dict:
    from django_q.conf import Conf

    from bench import flow_probe

    label = BACKENDS[backend]
    flow_probe.install(str(probe_file(backend)))  # start_run's own step runs here, in this process

    # Every worker's first task imports its modules, which is not what is measured: a small run
    # whose layers are wider than the cluster reaches every worker.
    print(f"{label}: warming up", file=sys.stderr)
    run_to_end(build_flow("warmup", 2, max(Conf.WORKERS, 2), 2, "parallel", args.seed), processes, 120)

    results = {"workers": Conf.WORKERS}
    if args.chain:
        print(f"{label}: a chain of {args.chain} jobs, one after another", file=sys.stderr)
        results["chain"] = measure_run(build_flow("chain", 1, 1, args.chain, "serial", args.seed), backend, args,
                                       processes)
    jobs = args.layers * args.width * args.jobs
    print(f"{label}: a flow of {jobs} jobs", file=sys.stderr)
    results["flow"] = measure_run(build_flow("scale", args.layers, args.width, args.jobs, args.sequences, args.seed),
                                  backend, args, processes)
    return results


def measure_run(flow, backend: str, args: argparse.Namespace, processes: Processes) -> dict:
    """Run `flow` to its end and read what it took."""
    from apps.catalog.models import Process
    from apps.engine.models import Execution
    from bench import flow_probe
    from bench.poll_scale import tree_cpu

    dispatcher, cluster = processes.started[:2]
    cpu_before = tree_cpu(dispatcher.pid) + tree_cpu(cluster.pid)
    load = [os.getloadavg()[0]]
    run, started, start_seconds = run_to_end(flow, processes, args.timeout, samples=load)
    cpu = tree_cpu(dispatcher.pid) + tree_cpu(cluster.pid) - cpu_before
    load.append(os.getloadavg()[0])

    rows = list(Execution.objects.filter(flow_run=run).values_list(
        "pk", "job__process_id", "job__sequence", "status", "started_at", "finished_at"))
    predecessors: dict[int, set[int]] = {}
    for process, predecessor in Process.predecessors.through.objects.filter(
            from_process__flow=flow).values_list("from_process_id", "to_process_id"):
        predecessors.setdefault(process, set()).add(predecessor)
    handed, queued = flow_probe.hand_outs(probe_file(backend), started, time.time())
    waits = hand_offs(rows, predecessors, queued)
    last = max((finished for *_, finished in rows if finished), default=None)
    return {
        "jobs": len(rows), "status": run.status, "completed": sum(1 for row in rows if row[3] == "COMPLETED"),
        "wall": (last.timestamp() - started) if last else None, "start_seconds": start_seconds,
        "steps": flow_probe.read(probe_file(backend), run.pk), "handed": handed, **waits,
        "runtimes": [(finished - started_at).total_seconds() * 1000 for *_, started_at, finished in rows
                     if started_at and finished],
        "cpu_seconds": cpu, "load": load,
    }


def hand_offs(rows: list[tuple], predecessors: dict[int, set[int]], queued: dict[int, float]) -> dict:
    """Milliseconds from the end of what each job waited for to its start ("handoffs"), split at the
    moment it was handed to the queue ("to_queue", "queue_to_start"); and how many started before
    that end ("early": a dependency not honoured, 0 expected)."""
    by_process: dict[int, list[tuple]] = {}
    for row in rows:
        by_process.setdefault(row[1], []).append(row)
    handoffs, to_queue, queue_to_start, early = [], [], [], 0
    for pk, process, sequence, _, started_at, _ in rows:
        before = [row for row in by_process[process] if row[2] < sequence]
        if not before:  # the first jobs of their process wait for every job of its predecessors
            before = [row for predecessor in predecessors.get(process, ()) for row in by_process.get(predecessor, [])]
        if not before or started_at is None or any(row[5] is None for row in before):
            continue
        ready = max(row[5] for row in before).timestamp()
        handoffs.append((started_at.timestamp() - ready) * 1000)
        early += started_at.timestamp() < ready
        if pk in queued:
            to_queue.append((queued[pk] - ready) * 1000)
            queue_to_start.append((started_at.timestamp() - queued[pk]) * 1000)
    return {"handoffs": handoffs, "to_queue": to_queue, "queue_to_start": queue_to_start, "early": early}


# --- the report ---------------------------------------------------------------------------


def print_report(results: list[dict], args: argparse.Namespace) -> None:
    workers = next((result["workers"] for result in results if "workers" in result), "?")
    jobs = args.layers * args.width * args.jobs
    distinct = len({SEQUENCES[args.sequences](j) for j in range(args.jobs)})
    print()
    print(f"Flow runs of DUMMY jobs; {workers} workers, {os.cpu_count()} CPUs.")
    print(f"  flow: {jobs} jobs, {args.layers} layers of {args.width} processes, each after 2–3 of the layer before "
          f"(seed {args.seed}); {args.jobs} jobs a process in sequences "
          f"{', '.join(str(SEQUENCES[args.sequences](j)) for j in range(args.jobs))}; critical path "
          f"{args.layers * distinct} jobs.")
    if args.chain:
        print(f"  chain: {args.chain} jobs in one process, sequences 1 … {args.chain}: one ready at a time.")
    header = (f"{'backend':<27}{'run':<7}{'wall':>8}{'jobs/s':>8}{'orch/job':>10}{'lock/job':>10}{'step p50':>10}"
              f"{'step p99':>10}{'q/step':>8}{'hand-off p50':>14}{'p99':>9}{'max':>9}")
    print(header)
    print("-" * len(header))
    verdicts, notes = [], []
    for label, result in measured(results):
        backend = result["backend"]
        for name in ("flow", "chain"):
            if name not in result:
                continue
            r = result[name]
            figures = run_figures(r, backend)
            print(f"{label if name == 'flow' else '':<27}{name:<7}{r['wall']:>7.1f}s{r['jobs'] / r['wall']:>8.0f}"
                  f"{figures['orchestration']:>8.1f}ms{figures['lock']:>8.1f}ms{figures['step_p50']:>8.1f}ms"
                  f"{figures['step_p99']:>8.1f}ms{figures['queries']:>8.1f}{_ms(r['handoffs'])}")
            print(f"{'':<27}{'':<7}{'  of which the end → handed to the queue':<64}{_ms(r['to_queue'])}")
            print(f"{'':<27}{'':<7}{'  of which handed to the queue → RUNNING':<64}{_ms(r['queue_to_start'])}")
            p50, p99 = percentile(r["handoffs"], 50), percentile(r["handoffs"], 99)
            what = f"{label:<27}{name:<7}"
            if backend == "postgres" and name == "flow":
                verdicts.append(f"  {what}orchestration {figures['orchestration']:.1f} ms/job <= "
                                f"{ORCHESTRATION_TARGET_MS:g} ms: "
                                f"{'met' if figures['orchestration'] <= ORCHESTRATION_TARGET_MS else 'MISSED'}")
            verdicts.append(f"  {what}hand-off p50 {p50:.0f} ms <= {HANDOFF_TARGET_MS[50]:g} ms: "
                            f"{'met' if p50 <= HANDOFF_TARGET_MS[50] else 'MISSED'}; p99 {p99:.0f} ms <= "
                            f"{HANDOFF_TARGET_MS[99]:g} ms: {'met' if p99 <= HANDOFF_TARGET_MS[99] else 'MISSED'}")
            handed = r["handed"]
            notes.append(
                f"  {label}, {name}: run {r['status']}, {r['completed']} of {r['jobs']} executions COMPLETED, "
                f"{r['early']} started before what they waited for ended; start_run {r['start_seconds'] * 1000:.0f} ms; "
                f"{len(r['steps'])} steps, {figures['cpu']:.1f} ms CPU each in the worker (the rest of a step is the "
                f"database and the lock); a DUMMY job runs {percentile(r['runtimes'], 50):.1f} ms (p50, RUNNING to "
                f"its end); dispatcher + cluster CPU {r['cpu_seconds'] * 1000 / r['jobs']:.1f} ms/job; start tasks "
                f"queued {sum(handed.values()) / r['jobs']:.2f} a job ("
                + ", ".join(f"{count} by {caller}" for caller, count in sorted(handed.items()))
                + f"); load average (1 min) {r['load'][0]:.2f} at the start, max {max(r['load']):.2f}, "
                  f"{r['load'][-1]:.2f} at the end")
    print()
    print("  wall: start_run called → the last job's finished_at.  orch/job: (start_run + every flow step of the run,")
    print("  less the steps' waits for the run's row lock) / jobs: the flow's own work per job, nothing of the queue,")
    print("  the workers or the jobs.  lock/job: those waits / jobs (steps of one run take turns; on SQLite writers")
    print("  queue at BEGIN, outside the step).  step p50/p99: one step's time, lock wait included.  q/step: queries")
    print("  a step makes.  hand-off: a job's started_at − the latest finished_at of what it waited for, split where")
    print("  the step that freed it handed it to the queue (after its commit).")
    print()
    print(f"Targets (reported, not enforced): orchestration <= {ORCHESTRATION_TARGET_MS:g} ms a job on PostgreSQL + "
          f"Redis; hand-off p50 <= {HANDOFF_TARGET_MS[50]:g} ms, p99 <= {HANDOFF_TARGET_MS[99]:g} ms (peers: {PEERS}).")
    print("\n".join(verdicts))
    print()
    print("Notes:")
    print("\n".join(notes))


def run_figures(r: dict, backend: str) -> dict:
    steps = r["steps"]
    walls = [step[2] for step in steps]
    # The first query of a step locks the run's row: on PostgreSQL its time is the wait for it.
    locks = [step[5] if backend == "postgres" else 0.0 for step in steps]
    return {
        "orchestration": (r["start_seconds"] * 1000 + sum(walls) - sum(locks)) / r["jobs"],
        "lock": sum(locks) / r["jobs"],
        "step_p50": percentile(walls, 50), "step_p99": percentile(walls, 99),
        "queries": statistics.mean(step[4] for step in steps) if steps else math.nan,
        "cpu": statistics.mean(step[3] for step in steps) if steps else math.nan,
    }


def _ms(values: list[float]) -> str:
    return (f"{percentile(values, 50):>12.0f}ms{percentile(values, 99):>7.0f}ms"
            f"{max(values, default=math.nan):>7.0f}ms")


if __name__ == "__main__":
    sys.exit(main())
