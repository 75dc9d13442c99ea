"""Process dependencies never form a cycle (SPEC §2a): the one check, used wherever dependencies are
written (the admin's process form and the workbook's Dependencies sheet)."""

from __future__ import annotations

from typing import Hashable, Iterable

from django.core.exceptions import ValidationError


def waits_for_path(waits_for: dict[Hashable, set], start, goal) -> list | None:
    """The processes from `start` to `goal` following waits-for links (depth first), or None."""
    stack, parents = [start], {start: None}
    while stack:
        node = stack.pop()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = parents[node]
            return path[::-1]
        for following in sorted(waits_for.get(node, ())):
            if following not in parents:
                parents[following] = node
                stack.append(following)
    return None


def check_no_cycle(process, predecessors: Iterable) -> None:
    """Refuse `predecessors` for `process` when one of them already waits, through others, for it;
    the message names the processes of the cycle."""
    from apps.catalog.models import Process

    waits_for: dict[int, set[int]] = {}
    links = Process.predecessors.through.objects.filter(from_process__flow_id=process.flow_id)
    for waiting, predecessor in links.exclude(from_process_id=process.pk).values_list("from_process_id",
                                                                                   "to_process_id"):
        waits_for.setdefault(waiting, set()).add(predecessor)
    names = dict(Process.objects.filter(flow_id=process.flow_id).values_list("pk", "name"))
    for predecessor in predecessors:
        if predecessor.pk == process.pk:
            raise ValidationError(f"Process {process.name} cannot wait for itself.")
        if predecessor.flow_id != process.flow_id:
            raise ValidationError(f"{predecessor.name} is in another flow: a process waits only for processes of "
                                  f"its own flow.")
        path = waits_for_path(waits_for, predecessor.pk, process.pk)
        if path is not None:
            cycle = " → ".join([process.name, *(names.get(pk, str(pk)) for pk in path)])
            raise ValidationError(f"Dependency cycle in flow {process.flow.name}: {cycle} (each waits for the next).")
