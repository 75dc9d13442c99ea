"""A flow's processes as a graph, for the API and the console: each process with its predecessors,
its jobs in sequence order (in a run: each job's latest execution and the status the run shows),
and a layered layout by topological depth for the SVG drawing (DESIGN.md: enough for the tens to
a hundred processes operators write). A few queries, whatever the size of the flow."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.catalog.models import Flow, JobDefinition, Process
from apps.engine.models import Execution, Status
from apps.flows.models import FlowRun

NODE_WIDTH, NODE_HEIGHT, GAP_X, GAP_Y, MARGIN = 170, 46, 60, 18, 10
# What the graph's users read of each job's latest execution in a run (the run page, the API, the
# critical path): never its log (up to BATCHDESK_LOG_MAX_BYTES, a thousand of them in a big run),
# nor its job (the graph has the job's name). Reading another field costs a query per job.
EXECUTION_FIELDS = ("id", "job_id", "flow_run_id", "status", "attempt", "skipped_in_flow", "started_at",
                    "finished_at", "waiting_reason", "error")


@dataclass
class JobNode:
    job: str
    sequence: int
    execution: Execution | None = None

    @property
    def status(self) -> str:
        """What the run shows: SKIPPED for a failure its run counts as done (the execution keeps ERROR)."""
        if self.execution is None:
            return ""
        return Status.SKIPPED if self.execution.skipped_in_flow else self.execution.status


@dataclass
class ProcessNode:
    pk: int
    name: str
    predecessors: list[str]
    jobs: list[JobNode] = field(default_factory=list)
    layer: int = 0
    row: int = 0

    @property
    def status(self) -> str:
        shown = {job.status for job in self.jobs}
        if not shown or shown == {""}:
            return ""
        for status in (Status.ERROR, Status.RUNNING, Status.HELD):
            if status in shown:
                return status
        if shown <= {Status.COMPLETED, Status.SKIPPED}:
            return Status.SKIPPED if shown == {Status.SKIPPED} else Status.COMPLETED
        return Status.WAITING

    @property
    def x(self) -> int:
        return MARGIN + self.layer * (NODE_WIDTH + GAP_X)

    @property
    def y(self) -> int:
        return MARGIN + self.row * (NODE_HEIGHT + GAP_Y)


@dataclass
class Graph:
    processes: list[ProcessNode]

    @property
    def width(self) -> int:
        return 2 * MARGIN + (max((p.layer for p in self.processes), default=0) + 1) * (NODE_WIDTH + GAP_X) - GAP_X

    @property
    def height(self) -> int:
        return 2 * MARGIN + (max((p.row for p in self.processes), default=0) + 1) * (NODE_HEIGHT + GAP_Y) - GAP_Y

    def edges(self) -> list[tuple[int, int, int, int]]:
        """(x1, y1, x2, y2) from each predecessor's right side to its successor's left side."""
        by_name = {p.name: p for p in self.processes}
        return [(by_name[name].x + NODE_WIDTH, by_name[name].y + NODE_HEIGHT // 2, p.x, p.y + NODE_HEIGHT // 2)
                for p in self.processes for name in p.predecessors if name in by_name]


def flow_graph(flow: Flow, run: FlowRun | None = None) -> Graph:
    """The flow's definition as a graph; with `run`, each job carries its latest execution in it."""
    processes = {p.pk: ProcessNode(p.pk, p.name, []) for p in Process.objects.filter(flow=flow).order_by("name")}
    for process, predecessor in Process.predecessors.through.objects.filter(
            from_process__flow=flow).values_list("from_process_id", "to_process__name"):
        processes[process].predecessors.append(predecessor)
    latest = {}
    if run is not None:
        from apps.flows.services import latest_executions  # the one reading of "latest" in a run

        latest = {e.job_id: e for e in latest_executions(run).only(*EXECUTION_FIELDS)}
    for job in JobDefinition.objects.filter(process__flow=flow).order_by("sequence", "name").values(
            "pk", "name", "sequence", "process_id"):
        processes[job["process_id"]].jobs.append(JobNode(job["name"], job["sequence"], latest.get(job["pk"])))
    graph = Graph(sorted(processes.values(), key=lambda p: p.name))
    _lay_out(graph)
    return graph


def _lay_out(graph: Graph) -> None:
    """Layer = the longest chain of predecessors before a process; rows in name order within a layer."""
    by_name = {p.name: p for p in graph.processes}
    depth: dict[str, int] = {}

    def layer_of(name: str, seen: frozenset = frozenset()) -> int:
        if name not in depth:
            if name in seen:  # a cycle (refused when written; drawn flat rather than looping here)
                return 0
            before = [layer_of(p, seen | {name}) + 1 for p in by_name[name].predecessors if p in by_name]
            depth[name] = max(before, default=0)
        return depth[name]

    rows: dict[int, int] = {}
    for process in graph.processes:
        process.layer = layer_of(process.name)
        process.row = rows.get(process.layer, 0)
        rows[process.layer] = process.row + 1


def critical_path(graph: Graph) -> list[JobNode]:
    """The chain of jobs that set the run's end, from its first job to its last: start from the job
    whose latest execution ended last (or still runs), then step back each time to what it waited for
    that ended last (the job before it in its process, else a job of a predecessor process)."""
    by_name = {p.name: p for p in graph.processes}
    ended = [(p, j) for p in graph.processes for j in p.jobs if j.execution and j.execution.started_at]
    if not ended:
        return []
    far_future = ended[0][1].execution.started_at.replace(year=9999)

    def end_of(job: JobNode):
        return job.execution.finished_at or far_future

    process, job = max(ended, key=lambda pair: end_of(pair[1]))
    chain = [job]
    while True:
        before = [(process, j) for j in process.jobs if j.sequence < job.sequence]
        if before:
            top = max(j.sequence for _, j in before)
            waited = [(process, j) for _, j in before if j.sequence == top]
        else:
            waited = [(by_name[name], j) for name in process.predecessors if name in by_name
                      for j in by_name[name].jobs]
        waited = [(p, j) for p, j in waited if j.execution and j.execution.finished_at]
        if not waited:
            return chain[::-1]
        process, job = max(waited, key=lambda pair: end_of(pair[1]))
        chain.append(job)
