"""The public API of keras-tl: `__all__` lists, reachability, docstrings, version.

Fast checks, no training: every module declares what it exports, everything
exported exists, nothing public is stranded in a module users cannot reach,
the top-level names document their arguments and show an example, and the
package version matches the one `setup.py` publishes.
"""

import importlib
import inspect
import json
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import keras_tl

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The 0.3 module paths of rooms renamed in 0.4 warn on import by design;
# `keras_tl` itself only imports them on first attribute access.
SKIPPED_MODULES = {"keras_tl.adapt", "keras_tl.optimize", "keras_tl.select",
                   "keras_tl.datasets", "keras_tl.datasets_text", "keras_tl.pretrained"}

# Packages users import by their full dotted path rather than through
# `keras_tl`: the bundled samples, fixtures and the demo.
DIRECT_IMPORT_PACKAGES = ("keras_tl.examples",)


def _raise(name):
    raise ImportError(f"cannot import {name} while walking keras_tl")


def _module_names():
    names = ["keras_tl"]
    walk = pkgutil.walk_packages(keras_tl.__path__, prefix="keras_tl.", onerror=_raise)
    for info in walk:
        if info.name not in SKIPPED_MODULES:
            names.append(info.name)
    return sorted(names)


MODULE_NAMES = _module_names()


def _is_private(module_name):
    return any(part.startswith("_") for part in module_name.split("."))


def _is_api_object(obj):
    """A class or function defined inside keras-tl."""
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(
        obj, "__module__", ""
    ).startswith("keras_tl")


def _key(obj):
    return f"{obj.__module__}:{obj.__qualname__}"


def _console_script_modules():
    """Modules named by the `console_scripts` entry points of setup.py."""
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"=\s*(keras_tl(?:\.\w+)*):\w+", text)))


def test_walk_finds_the_package_tree():
    # A broken walk (wrong path, swallowed import error) would make every
    # other check in this file vacuous.
    assert len(MODULE_NAMES) > 40
    for name in ("keras_tl.export", "keras_tl.recipes.fine_tuning", "keras_tl.text.data"):
        assert name in MODULE_NAMES


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_module_declares_all(module_name):
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    exported = list(module.__all__)
    assert all(isinstance(name, str) for name in exported), module_name
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ has duplicates"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names undefined attributes: {missing}"


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_public_definitions_are_listed_in_all(module_name):
    # A class or function a module defines under a public name is exported.
    module = importlib.import_module(module_name)
    unlisted = [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and _is_api_object(obj)
        and obj.__module__ == module_name
        and name not in module.__all__
    ]
    assert not unlisted, f"{module_name} defines public names missing from __all__: {unlisted}"


def test_top_level_all_resolves():
    unresolved = [name for name in keras_tl.__all__ if not hasattr(keras_tl, name)]
    assert not unresolved, unresolved
    assert len(keras_tl.__all__) == len(set(keras_tl.__all__))
    assert "__version__" in keras_tl.__all__


def test_top_level_all_lists_every_import():
    # Every submodule and name `keras_tl/__init__.py` loads on first use is
    # exported, and every exported name is one of them.
    lazy = set(keras_tl._LAZY)
    assert lazy, "no lazily loaded names in keras_tl/__init__.py"
    assert lazy == set(keras_tl.__all__) - {"__version__"}, sorted(
        lazy ^ (set(keras_tl.__all__) - {"__version__"}))


@pytest.mark.slow
def test_import_is_instant_and_saved_models_load_after_it(tmp_path):
    # `import keras_tl` loads neither Keras nor TensorFlow; once Keras is
    # imported (after it), keras-tl's layers are registered for loading.
    script = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "import keras_tl\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))\n"
        "import keras\n"
        "print(keras.saving.get_registered_object('keras_tl>ImagePreprocessing').__name__)\n"
    )
    import subprocess

    from keras_tl._utils.processes import python_command

    done = subprocess.run(python_command(code=script), capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "ImagePreprocessing"]


_REACHABLE_SCRIPT = r"""
import importlib
import inspect
import json
import sys

import keras_tl

# The names load on first use: read them all, as a user's code would.
for name in keras_tl.__all__:
    getattr(keras_tl, name)


def resolve(name):
    obj = keras_tl
    for part in name.split(".")[1:]:
        if part.startswith("_") or not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj if inspect.ismodule(obj) and obj.__name__ == name else None


candidates = [name for name in sys.modules if name.startswith("keras_tl")]
reachable = [name for name in candidates if resolve(name) is not None]
for name in sys.argv[1:]:
    importlib.import_module(name)
    reachable.append(name)

keys = set()
for name in reachable:
    module = sys.modules[name]
    for attr in getattr(module, "__all__", ()):
        obj = getattr(module, attr, None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            keys.add(f"{obj.__module__}:{obj.__qualname__}")
print(json.dumps({"modules": sorted(set(reachable)), "objects": sorted(keys)}))
"""


@pytest.fixture(scope="module")
def reachable_api():
    """What a user reaches after `import keras_tl` (in a fresh interpreter).

    Modules reachable as an attribute path from `keras_tl` (public parts
    only), plus the modules users import directly: the console-script modules
    of setup.py and the `keras_tl.examples` modules. Returns the modules and
    the `module:qualname` keys of every class and function their `__all__`
    exports.
    """
    direct = list(_console_script_modules())
    for package_name in DIRECT_IMPORT_PACKAGES:
        direct += [name for name in MODULE_NAMES if name.startswith(package_name + ".")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _REACHABLE_SCRIPT, *direct],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_console_script_modules_are_found():
    assert _console_script_modules() == ["keras_tl.cli"]


@pytest.mark.slow
def test_nothing_public_is_unreachable(reachable_api):
    reachable = set(reachable_api["objects"])
    top_level = {_key(getattr(keras_tl, name)) for name in keras_tl.__all__
                 if _is_api_object(getattr(keras_tl, name))}
    assert top_level <= reachable
    stranded = []
    for module_name in MODULE_NAMES:
        if _is_private(module_name):
            continue  # e.g. keras_tl._utils: helpers, not public API
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if _is_api_object(obj) and _key(obj) not in reachable:
                stranded.append(f"{module_name}.{name}")
    assert not stranded, (
        "public names neither exported from keras_tl nor listed in the __all__ "
        f"of a module reachable from it: {stranded}"
    )


def _top_level_api():
    return [name for name in keras_tl.__all__ if _is_api_object(getattr(keras_tl, name))]


def _docstrings(obj):
    docs = [obj.__doc__ or ""]
    if inspect.isclass(obj) and "__init__" in vars(obj):
        docs.append(vars(obj)["__init__"].__doc__ or "")
    return docs


def _has_parameters(obj):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return True
    return bool(signature.parameters)


@pytest.mark.parametrize("name", _top_level_api())
def test_top_level_docstring_has_args_and_example(name):
    obj = getattr(keras_tl, name)
    docs = _docstrings(obj)
    assert any(doc.strip() for doc in docs), f"keras_tl.{name} has no docstring"
    # A callable without parameters has no arguments to document.
    if _has_parameters(obj):
        assert any("Args:" in doc for doc in docs), f"keras_tl.{name}: no 'Args:' section"
    assert any("Example" in doc for doc in docs), f"keras_tl.{name}: no example"


def test_top_level_api_is_not_empty():
    assert len(_top_level_api()) > 40


def test_version_is_written_once_and_in_the_changelog():
    """`keras_tl/version.py` holds the version; `setup.py` reads it rather
    than repeating it, and the CHANGELOG's newest entry names it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "setup.py"), encoding="utf-8") as file:
        setup_text = file.read()
    assert not re.search(r"""\bversion\s*=\s*["']""", setup_text), "setup.py repeats the version"
    assert "keras_tl/version.py" in setup_text
    assert isinstance(keras_tl.__version__, str)
    with open(os.path.join(root, "CHANGELOG.md"), encoding="utf-8") as file:
        newest = re.search(r"^## \[?([0-9][^\]\s]*)", file.read(), re.MULTILINE)
    assert newest and newest.group(1) == keras_tl.__version__



def _pip_lines(text):
    return re.findall(r"!pip install[^\n\"]*\"[^\"]+\"", text)


def test_colab_install_line_is_one_line_everywhere():
    """The README and every tutorial notebook install keras-tl with the same
    line, and the extras it names exist in `setup.py`."""
    import ast

    import nbformat

    readme = _pip_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(readme) == 1, readme
    line = readme[0]
    assert "<" not in line, f"placeholder left in the README's install line: {line}"
    notebooks = sorted((ROOT / "tutorials").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = nbformat.read(path, as_version=4).cells
        found = [hit for cell in cells if cell.cell_type == "code" for hit in _pip_lines(cell.source)]
        assert found == [line], f"{path.name}: {found} != {[line]}"

    extras = re.search(r"keras-tl\[([^\]]*)\]", line)
    names = [name.strip() for name in extras.group(1).split(",")] if extras else []
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    declared = next(ast.literal_eval(kw.value) for kw in call.keywords if kw.arg == "extras_require")
    for name in names:
        assert name in declared, f"the install line names extra {name!r}, setup.py has {sorted(declared)}"


@pytest.mark.slow
def test_moved_rooms_keep_their_old_import_paths():
    code = (
        "import importlib, warnings\n"
        "import keras_tl\n"
        "moved = {'adapt': 'domain_adaptation', 'optimize': 'compression',\n"
        "         'select': 'selection', 'datasets': 'examples.datasets',\n"
        "         'datasets_text': 'examples.text_datasets',\n"
        "         'pretrained': 'examples.pretrained'}\n"
        "for old, new in moved.items():\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module('keras_tl.' + old)\n"
        "        target = importlib.import_module('keras_tl.' + new)\n"
        "        same = all(getattr(module, n) is getattr(target, n) for n in target.__all__)\n"
        "    assert same, old\n"
        "    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [\n"
        "        f'keras_tl.{old} moved to keras_tl.{new}'], old\n"
        "    assert getattr(keras_tl, old) is module\n"
        "exec('from keras_tl.select import *')\n"
        "assert callable(log_me)\n"
        "for old, new in {'fine_tune': 'fine_tuning', 'distill': 'distillation',\n"
        "                 'feature_extraction': 'frozen_backbone',\n"
        "                 'text_classifier': 'text_classification',\n"
        "                 'adapt': 'domain_adaptation'}.items():\n"
        "    module = importlib.import_module('keras_tl.recipes.' + old)\n"
        "    target = importlib.import_module('keras_tl.recipes.' + new)\n"
        "    assert getattr(module, target.__all__[-1]) is getattr(target, target.__all__[-1])\n"
        "    if old != 'adapt':  # the recipe functions stay functions\n"
        "        assert callable(getattr(keras_tl.recipes, old))\n"
        "assert keras_tl.recipes.fine_tune is keras_tl.fine_tune\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
