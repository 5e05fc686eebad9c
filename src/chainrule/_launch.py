"""How this process was launched: alone, or as one of N ranks of ``mpiexec -n N`` (no NumPy here).

``chainrule/__init__.py`` imports this module before anything loads NumPy, so that a rank of a
multi-process launch starts with one BLAS thread (N ranks with all-core BLAS pools would fight
over the cores). The thread count is read by OpenBLAS/MKL when NumPy loads them, which is why it
has to be set here and not later; ``--threads`` changes it afterwards through threadpoolctl.
The user's own ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OMP_NUM_THREADS`` win.
"""

from __future__ import annotations

import os
import sys

#: environment variables through which launchers announce the number of ranks:
#: MPICH's hydra (and Intel MPI, Slurm's PMI), Open MPI
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

#: True when the user set a BLAS thread variable before chainrule was imported
USER_THREADS = any(v in os.environ for v in THREAD_VARIABLES)


def launched_ranks() -> int:
    """N when started by ``mpiexec -n N`` (or a launcher that says so), else 1."""
    for var in SIZE_VARIABLES:
        value = os.environ.get(var, "")
        if value.isdigit():
            return max(1, int(value))
    return 1


def launched_rank() -> int:
    """This process's rank r (0 .. N-1) in a launch of N ranks, 0 when alone."""
    for var in RANK_VARIABLES:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def one_blas_thread_per_rank() -> None:
    """Under a launch of N > 1 ranks, default the BLAS thread pools to one thread."""
    if launched_ranks() > 1 and not USER_THREADS:
        for var in THREAD_VARIABLES:
            os.environ[var] = "1"


def abort_if_distributed(code: int) -> None:
    """Under MPI with several ranks, end every rank now (``MPI_Abort``) with exit ``code``.

    A rank that leaves on its own (an error, a second Ctrl-C) would leave the others waiting in
    a collective forever, and itself waiting in ``MPI_Finalize``: aborting ends the whole job
    at once, mpiexec reporting which rank called it.
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    if mpi.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


one_blas_thread_per_rank()
