"""The pass registry. Built-in passes and users' plugins register through the same two doors:
the ``@register_pass`` decorator and the ``graphopt.passes`` entry-point group."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable, Iterator, TypeVar

from graphopt.errors import PluginError, UnknownPassError, UsageError

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "graphopt.passes"
T = TypeVar("T")


class PassRegistry:
    """Maps kebab-case pass names to pass classes."""

    def __init__(self) -> None:
        self._passes: dict[str, type] = {}
        self._entry_points_loaded = False

    def register(self, cls: type) -> type:
        """Register ``cls`` under ``cls.name``. Registering it again, or the same class of the same file
        loaded again, is allowed; another class under a taken name is a PluginError naming both."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{cls.__qualname__} has no 'name' class attribute (e.g. name = 'my-pass')")
        if not callable(getattr(cls, "run", None)):
            raise PluginError(f"pass {name!r} ({cls.__qualname__}) has no run(model) method")
        known = self._passes.get(name)
        if known is not None and known is not cls:
            (old_file, old_class), (new_file, new_class) = _source(known), _source(cls)
            if (old_file, old_class) != (new_file, new_class):
                raise PluginError(f"two passes are named {name!r}: {old_class} from {old_file} and "
                                  f"{new_class} from {new_file}; rename one (its 'name' class attribute) "
                                  "or load only one of them")
        self._passes[name] = cls  # the same class, or the same file loaded again: the newest wins
        return cls

    @contextlib.contextmanager
    def scope(self, only: Iterable[str] | None = None) -> Iterator[PassRegistry]:
        """Passes registered inside the ``with`` block (plugins loaded by a test, a notebook cell) are
        forgotten on exit; with ``only``, just those passes stay registered inside the block."""
        self.load_entry_points()
        saved = dict(self._passes)
        if only is not None:
            keep = set(only)
            self._passes = {k: v for k, v in saved.items() if k in keep}
        try:
            yield self
        finally:
            self._passes = saved

    def load_entry_points(self) -> None:
        """Import every module advertised in the ``graphopt.passes`` entry-point group, once."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide the others
                raise PluginError(
                    f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            if isinstance(obj, type):
                self.register(obj)

    def load_plugin(self, spec: str) -> None:
        """Load a plugin from a ``.py`` file path or an importable module name."""
        try:
            if spec.endswith(".py") or os.sep in spec:
                if not os.path.isfile(spec):
                    raise PluginError(f"plugin file {spec!r} not found")
                mod_name = "graphopt_plugin_" + os.path.splitext(os.path.basename(spec))[0]
                module_spec = importlib.util.spec_from_file_location(mod_name, spec)
                assert module_spec is not None and module_spec.loader is not None
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[mod_name] = module
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {spec!r} failed to load: {type(exc).__name__}: {exc}") from exc

    def get(self, name: str) -> type:
        """The pass class registered as ``name``."""
        self.load_entry_points()
        cls = self._passes.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, list(self._passes), n=1, cutoff=0.6)
            if close:
                raise UnknownPassError(f"unknown pass {name!r}; did you mean {close[0]!r}? "
                                       "(see 'graphopt list-passes')")
            known = ", ".join(sorted(self._passes)) or "none"
            raise UnknownPassError(f"unknown pass {name!r} (known passes: {known}; "
                                   "see 'graphopt list-passes')")
        return cls

    def all(self) -> dict[str, type]:
        """Every registered pass, by name."""
        self.load_entry_points()
        return dict(sorted(self._passes.items()))

    def create(self, name: str, options: dict[str, str] | None = None) -> Any:
        """Instantiate pass ``name`` with options given as strings (converted to the fields' types)."""
        cls = self.get(name)
        options = options or {}
        if not options:
            return cls()
        if not dataclasses.is_dataclass(cls):
            raise UsageError(f"pass {name!r} takes no options")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # init=False: internal state
        kwargs = {}
        for key, text in options.items():
            key_py = key.replace("-", "_")
            if key_py not in fields:
                raise UsageError(f"pass {name!r} has no option {key!r} "
                                 f"(options: {', '.join(sorted(fields)) or 'none'})")
            kwargs[key_py] = _convert(name, key, text, fields[key_py])
        return cls(**kwargs)


def _convert(pass_name: str, key: str, text: str, field: dataclasses.Field) -> Any:
    default = field.default if field.default is not dataclasses.MISSING else None
    kind = type(default) if default is not None else str
    try:
        if kind is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes", "on")
        return kind(text)
    except ValueError:
        raise UsageError(f"option {key}={text!r} of pass {pass_name!r} is not a valid "
                         f"{kind.__name__}") from None


DEFAULT_REGISTRY = PassRegistry()


def register_pass(cls: type[T]) -> type[T]:
    """Class decorator: make a pass available by its ``name`` to pipelines and the CLI."""
    DEFAULT_REGISTRY.register(cls)
    return cls


def pass_from_function(name: str) -> Callable[[Callable], type]:
    """Decorator turning ``def f(model) -> PassResult`` into a registered pass class called ``name``."""
    def wrap(fn: Callable) -> type:
        cls = type(fn.__name__, (), {"name": name, "run": staticmethod(fn),
                                     "__doc__": fn.__doc__, "__module__": fn.__module__})
        return register_pass(cls)
    return wrap


def _source(cls: type) -> tuple[str, str]:
    """Where a pass class comes from: its file (or module name) and qualified name."""
    module = sys.modules.get(cls.__module__)
    where = getattr(module, "__file__", None) or cls.__module__
    return os.path.realpath(where) if os.path.exists(where) else where, cls.__qualname__
