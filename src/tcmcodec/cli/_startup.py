"""Start-up time of the ``tcm`` command: CompressAI without its point-cloud dependencies.

``import compressai`` imports all of its packages, among them point-cloud datasets and
transforms that import PyTorch Geometric, a transform registry that imports torchvision, and
pandas: with torch itself, about 6 s before a ``tcm encode`` that codes a photo in 1 s
(``benchmarks/cli_startup.py``). tcmcodec uses none of the three, and CompressAI's image code
(entropy models, rANS coder, layers, ``CompressionModel``) does not call them. So inside the
``tcm`` command's own process (never when tcmcodec is imported as a library),
:func:`import_compressai` imports CompressAI with those packages answered by placeholder
modules that hold exactly the names CompressAI takes from them at import time
(:data:`PLACEHOLDERS`): classes that refuse to be instantiated and a decorator factory that
returns what it decorates. Any other name is an ``AttributeError`` naming the way out.

If a CompressAI release needs more than the placeholders give, its import fails, the
placeholders are withdrawn and CompressAI is imported as usual: a new release can cost
start-up time but never a command. ``TCM_FULL_IMPORTS=1`` skips all of this.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types

#: modules CompressAI imports but tcmcodec never uses -> the names CompressAI takes from them
#: when it is imported (capitalised: classes it subclasses; others: decorator factories)
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "torch_geometric": (),
    "torch_geometric.data": ("Data",),
    "torch_geometric.data.datapipes": ("functional_transform",),
    "torch_geometric.transforms": ("BaseTransform", "Center"),
    "torchvision": (),
    "torchvision.transforms": (),
    "pandas": (),
}
#: set to 1 to import CompressAI with all of its dependencies (for debugging)
FULL_IMPORTS_ENV = "TCM_FULL_IMPORTS"


class _Placeholder:
    """Stands for a class (e.g. PyTorch Geometric's ``BaseTransform``) that CompressAI subclasses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{type(self).__qualname__}: {_not_loaded(type(self).__module__)}")


def _decorator_factory(*args: object, **kwargs: object):
    """Stands for a decorator factory (PyTorch Geometric's ``functional_transform(name)``)."""
    return lambda obj: obj


def _not_loaded(module: str) -> str:
    return (f"{module} is not loaded by the tcm command (tcmcodec does not use it); set "
            f"{FULL_IMPORTS_ENV}=1 to load it")


class _PlaceholderModule(types.ModuleType):
    """A stand-in module holding the placeholders :data:`PLACEHOLDERS` lists for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name, _not_loaded(name))
        self.__path__: list[str] = []  # a package, so that listed submodules import
        for attr in PLACEHOLDERS[name]:
            value = type(attr, (_Placeholder,), {"__module__": name}) if attr[:1].isupper() else _decorator_factory
            setattr(self, attr, value)

    def __getattr__(self, attr: str) -> object:
        raise AttributeError(f"{self.__name__}.{attr}: {_not_loaded(self.__name__)}")


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of the modules in :data:`PLACEHOLDERS` with placeholder modules."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname in PLACEHOLDERS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _PlaceholderModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _forget(packages: set[str]) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in packages]:
        del sys.modules[name]


def import_compressai() -> bool:
    """Import CompressAI with the modules of :data:`PLACEHOLDERS` as placeholders.

    Returns True when the placeholders are in use; False (CompressAI imported as usual, or
    already imported before) when ``TCM_FULL_IMPORTS=1``, when CompressAI or one of those
    modules was imported already, or when CompressAI needed more than the placeholders.
    """
    if os.environ.get(FULL_IMPORTS_ENV, "") not in ("", "0"):
        return False
    if "compressai" in sys.modules or any(name in sys.modules for name in PLACEHOLDERS):
        return False
    finder = _PlaceholderFinder()
    sys.meta_path.insert(0, finder)
    try:
        import compressai  # noqa: F401

        return True
    except Exception:  # a CompressAI that needs more than placeholders: import it as usual
        pass
    finally:
        sys.meta_path.remove(finder)
    _forget({"compressai"} | {name.split(".")[0] for name in PLACEHOLDERS})
    import compressai  # noqa: F401,F811

    return False
