"""Python child processes that run keras-tl's code, never the working folder's.

`python -m module` and `python -c code` put the current folder first on
`sys.path`: a `tensorflow.py` or `keras_tl.py` lying where the user runs a
command would be imported in place of the real one. The children started
here run with `-I` (isolated mode: no current folder, no `PYTHON*`
variables, no user site folder) and get the parent's import path back,
minus the current folder, from a small bootstrap, so they import exactly
what the parent imports.
"""

import json
import os
import sys

__all__ = ["python_command"]

_BOOTSTRAP = (
    "import json, runpy, sys; "
    "path, kind, target = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]; "
    "sys.path[:] = path; "
    "sys.argv[:] = [target if kind == '-m' else '-c'] + sys.argv[4:]; "
    "runpy.run_module(target, run_name='__main__', alter_sys=True) if kind == '-m' "
    "else exec(compile(target, '<string>', 'exec'), {'__name__': '__main__'})"
)


def _import_path():
    """The parent's `sys.path` without the current folder (`""` or its
    absolute path) or entries that no longer exist."""
    here = os.path.realpath(os.getcwd())
    path = []
    for entry in sys.path:
        if not entry or os.path.realpath(entry) == here:
            continue
        path.append(entry)
    return path


def python_command(*, module=None, code=None, args=()):
    """The command line of a Python child that runs `module` or `code`
    isolated from the current folder.

    Args:
        module: a module to run as `python -m` would.
        code: source code to run as `python -c` would (exactly one of the two).
        args: the child's `sys.argv[1:]`.

    Returns:
        A list for `subprocess.run`.

    Example:

    >>> python_command(module="keras_tl.cli", args=["--version"])[1]
    '-I'
    """
    if (module is None) == (code is None):
        raise ValueError("Pass module or code, not both.")
    kind, target = ("-m", module) if module is not None else ("-c", code)
    return [sys.executable, "-I", "-c", _BOOTSTRAP, json.dumps(_import_path()), kind,
            target, *[str(arg) for arg in args]]
