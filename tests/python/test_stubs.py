"""The shipped type stubs describe the built module: same names, same parameters."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import secureai.restore
from secureai.restore import _native

PACKAGE_DIR = Path(secureai.restore.__file__).parent
STUB = PACKAGE_DIR / "_native.pyi"


def stub_parameters(function: ast.FunctionDef) -> list[tuple[str, bool]]:
    """(name, has a default) for each parameter, without self/cls."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    pairs = [(arg.arg, has) for arg, has in zip(positional, defaults)]
    pairs += [(arg.arg, d is not None) for arg, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [pair for pair in pairs if pair[0] not in {"self", "cls"}]


def runtime_parameters(obj: object) -> list[tuple[str, bool]]:
    signature = inspect.signature(obj)  # type: ignore[arg-type]
    return [
        (name, parameter.default is not inspect.Parameter.empty)
        for name, parameter in signature.parameters.items()
        if name not in {"self", "cls"}
    ]


def public_names(namespace: object) -> set[str]:
    return {name for name in vars(namespace) if not name.startswith("_")}


def test_stub_and_py_typed_ship_in_the_package() -> None:
    assert STUB.is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_stub_names_and_signatures_match_the_module() -> None:
    tree = ast.parse(STUB.read_text())
    stub_functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    stub_classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    stub_values = {
        n.target.id
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }

    assert set(stub_functions) | set(stub_classes) == public_names(_native)
    assert stub_values == {"__version__"} and isinstance(_native.__version__, str)

    for name, function in stub_functions.items():
        assert stub_parameters(function) == runtime_parameters(getattr(_native, name)), name

    for class_name, node in stub_classes.items():
        cls = getattr(_native, class_name)
        methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
        assert set(methods) - {"__new__"} == public_names(cls), class_name
        for method_name, method in methods.items():
            if method_name == "__new__" and sys.version_info < (3, 10):
                # Before 3.10 the limited API gives classes no text signature to inspect.
                continue
            runtime = cls if method_name == "__new__" else getattr(cls, method_name)
            assert stub_parameters(method) == runtime_parameters(runtime), (
                f"{class_name}.{method_name}"
            )


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_stubtest_agrees() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "secureai.restore._native"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_the_package_type_checks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "secureai.restore"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
