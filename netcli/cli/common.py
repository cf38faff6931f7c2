"""What the `netcli` commands share: printing (names escaped), the --phase spelling, and the
process group under mpiexec/srun."""
from __future__ import annotations

import os

import click


def echo(message="", err=False, nl=True):
    """click.echo for everything the CLI prints: names from files come with their control
    characters escaped (netcli.text.safe_text), never as terminal escape sequences."""
    from ..text import safe_text
    click.echo(safe_text(message), err=err, nl=nl)


def upper_phase(ctx, param, value):
    return value.upper() if value else value


def process_group(ctx, reduction="exact"):
    """The job's process group under mpiexec/srun (None alone); without --threads or
    $NETCLI_THREADS, the cores of a host are divided among its processes."""
    from ..distributed import group
    g = group(reduction)
    if g is not None and ctx.obj.get("threads") is None and not os.environ.get("NETCLI_THREADS"):
        from ..exec.threads import set_threads, usable_cores
        set_threads(max(1, min(usable_cores(), (os.cpu_count() or 1) // g.local_size)))
    return g
