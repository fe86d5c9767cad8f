"""Where a build's work runs: device jobs in the build's own process, in a worker process per
GPU or on Ray actors; figures in processes beside them or as Ray tasks.

:mod:`~reportgen.execute.executors` chooses and owns them for one build;
:mod:`~reportgen.execute.local` and :mod:`~reportgen.execute.ray_cluster` are the executors.  The
workers are the only code that calls into :mod:`reportgen.ml` (torch) and
:mod:`reportgen.figures` (matplotlib), and only inside their own processes.
"""

from reportgen.execute.executors import EXECUTORS, ExecutorChoice, ExecutorName, Executors

__all__ = ["EXECUTORS", "ExecutorChoice", "ExecutorName", "Executors"]
