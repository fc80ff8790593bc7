"""Where a published figure came from: the commit, the machine, its load and the command.

The code is the library's (ctxagent/provenance.py), so the eval harness and the benchmarks
stamp their results alike without the library loading a script by path; the benchmark
scripts import it from here.
"""

from ctxagent.provenance import (  # noqa: F401
    REPO,
    RESULT_DIRS,
    DirtyTree,
    commit,
    finish,
    in_checkout,
    load,
    machine,
    markdown_line,
    shared_note,
    stamp,
    was_shared,
    wilson,
)
