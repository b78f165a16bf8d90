"""The registry: option conversion, unknown passes, registration rules, plugins, pass_from_function."""

from __future__ import annotations

from pathlib import Path

import pytest
from pass_infra_kit import Plain, WithOptions, add_model, op_types, registry

from graphopt import Model, PassResult, import_model, pass_from_function
from graphopt.errors import PluginError, UnknownPassError, UsageError
from graphopt.pass_infra.manager import PassManager
from graphopt.pass_infra.pipeline import parse_pipeline
from graphopt.pass_infra.registry import PassRegistry

BUILTINS = ["convert-layout", "convert-opset", "convert-precision", "eliminate-common-subexpressions",
            "eliminate-dead-channels",
            "eliminate-dead-code",
            "fold-constants", "fuse-affine", "fuse-batchnorm", "fuse-conv-branches", "fuse-horizontal",
            "fuse-matmul-add",
            "fuse-normalization", "fuse-ort-contrib", "fuse-pad", "fuse-space-to-depth",
            "inline-functions", "optimize-transposes",
            "plan-memory", "prune-failing-branches", "simplify-chains", "topological-sort"]


def test_builtin_passes_register_through_the_entry_point_group() -> None:
    """A fresh registry knows exactly the fourteen built-ins, sorted by name, loaded like any plugin."""
    assert list(PassRegistry().all()) == BUILTINS


def test_create_converts_options_to_the_field_types() -> None:
    """Strings from the pipeline become int, bool, float and str by each field's default."""
    created = registry(WithOptions).create("with-options",
                                           {"limit": "12", "flag": "yes", "ratio": "0.25", "label": "abc"})
    assert created == WithOptions(limit=12, flag=True, ratio=0.25, label="abc")
    assert (type(created.limit), type(created.flag), type(created.ratio)) == (int, bool, float)


def test_create_without_options_uses_the_defaults() -> None:
    """No options: the plain constructor."""
    assert registry(WithOptions).create("with-options") == WithOptions()


@pytest.mark.parametrize("text,value", [("1", True), ("true", True), ("YES", True), ("On", True),
                                        ("0", False), ("false", False), ("no", False), ("off", False)])
def test_bool_options_accept_the_usual_spellings(text: str, value: bool) -> None:
    """1/0, true/false, yes/no, on/off, case-insensitive."""
    assert registry(WithOptions).create("with-options", {"flag": text}).flag is value


def test_dashes_in_option_names_map_to_underscores() -> None:
    """fold-constants{growth-allowance=12} sets growth_allowance."""
    assert registry().create("fold-constants", {"growth-allowance": "12"}).growth_allowance == 12


@pytest.mark.parametrize("key,text,kind", [("limit", "1.5", "int"), ("limit", "many", "int"),
                                           ("flag", "maybe", "bool"), ("ratio", "half", "float")])
def test_bad_option_value_is_a_usage_error_naming_option_pass_and_type(key: str, text: str,
                                                                       kind: str) -> None:
    """The message says which option of which pass and what type was expected."""
    with pytest.raises(UsageError) as info:
        registry(WithOptions).create("with-options", {key: text})
    assert str(info.value) == f"option {key}={text!r} of pass 'with-options' is not a valid {kind}"


def test_unknown_option_is_a_usage_error_listing_the_options() -> None:
    """The options a pass has are listed, sorted."""
    with pytest.raises(UsageError) as info:
        registry(WithOptions).create("with-options", {"nope": "1"})
    assert str(info.value) == "pass 'with-options' has no option 'nope' (options: flag, label, limit, ratio)"


def test_private_fields_are_not_options() -> None:
    """A dataclass field with init=False (fold-constants' _inferred cache) is not settable."""
    with pytest.raises(UsageError) as info:
        registry().create("fold-constants", {"_inferred": "1"})
    assert str(info.value) == ("pass 'fold-constants' has no option '_inferred' "
                               "(options: growth_allowance, max_output_bytes, region_bytes_per_node, shapes, "
                               "size_limit)")


def test_options_to_a_pass_that_is_not_a_dataclass_are_a_usage_error() -> None:
    """Only dataclass fields are options."""
    with pytest.raises(UsageError, match="^pass 'plain' takes no options$"):
        registry(Plain).create("plain", {"x": "1"})


def test_unknown_pass_lists_the_known_passes() -> None:
    """UnknownPassError names the pass, every known pass and the command that lists them."""
    with pytest.raises(UnknownPassError) as info:
        registry(WithOptions).get("squash-everything")
    assert str(info.value) == ("unknown pass 'squash-everything' (known passes: convert-layout, "
                               "convert-opset, convert-precision, "
                               "eliminate-common-subexpressions, eliminate-dead-channels, "
                               "eliminate-dead-code, fold-constants, "
                               "fuse-affine, fuse-batchnorm, fuse-conv-branches, fuse-horizontal, "
                               "fuse-matmul-add, "
                               "fuse-normalization, "
                               "fuse-ort-contrib, fuse-pad, fuse-space-to-depth, inline-functions, "
                               "optimize-transposes, "
                               "plan-memory, "
                               "prune-failing-branches, simplify-chains, topological-sort, with-options; "
                               "see 'graphopt list-passes')")
    assert isinstance(info.value, UsageError)


def test_a_misspelled_pass_name_offers_the_closest_one() -> None:
    with pytest.raises(UnknownPassError) as info:
        registry(WithOptions).get("fold-constant")
    assert str(info.value) == "unknown pass 'fold-constant'; did you mean 'fold-constants'? " \
                              "(see 'graphopt list-passes')"


def test_register_refuses_a_class_without_a_name() -> None:
    """The error shows how to fix it."""
    class Nameless:
        def run(self, model: object) -> PassResult:
            return PassResult(False)

    with pytest.raises(PluginError, match=r"has no 'name' class attribute \(e.g. name = 'my-pass'\)"):
        PassRegistry().register(Nameless)


def test_register_refuses_a_class_without_run() -> None:
    """A pass must have run(model)."""
    class NoRun:
        name = "no-run"

    with pytest.raises(PluginError, match="^pass 'no-run' .*NoRun.* has no run\\(model\\) method$"):
        PassRegistry().register(NoRun)


def test_register_refuses_two_different_classes_with_one_name() -> None:
    """A name collision names both classes; re-registering the same class is a no-op."""
    reg = registry(WithOptions)
    assert reg.register(WithOptions) is WithOptions

    class Impostor(WithOptions):
        pass

    with pytest.raises(PluginError, match="two passes are named 'with-options'"):
        reg.register(Impostor)


def test_two_plugin_files_with_the_same_class_and_pass_name_clash(tmp_path: Path) -> None:
    """Regression: identity was the class *name*, so a second plugin file with the same class and pass
    name silently replaced the first. Now the clash is an error naming both files."""
    reg = PassRegistry()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "plugin.py").write_text(PLUGIN_SOURCE.format(name="rename-graph")
                                                     .replace("@register_pass\n", ""))
    classes = []
    for folder in ("a", "b"):
        import importlib.util
        import sys
        spec = importlib.util.spec_from_file_location(f"clash_{folder}", tmp_path / folder / "plugin.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[f"clash_{folder}"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        classes.append(module.RenameGraph)
    reg.register(classes[0])
    with pytest.raises(PluginError) as info:
        reg.register(classes[1])
    message = str(info.value)
    assert "two passes are named 'rename-graph'" in message
    assert str((tmp_path / "a" / "plugin.py").resolve()) in message
    assert str((tmp_path / "b" / "plugin.py").resolve()) in message
    assert reg.get("rename-graph") is classes[0]


def test_loading_the_same_plugin_file_twice_is_allowed(tmp_path: Path,
                                                       default_registry: PassRegistry) -> None:
    """The same file loaded again (two --plugin flags, a notebook re-run) is the same source: no clash."""
    path = tmp_path / "plugin.py"
    path.write_text(PLUGIN_SOURCE.format(name="rename-twice"))
    default_registry.load_plugin(str(path))
    default_registry.load_plugin(str(path))
    assert default_registry.get("rename-twice").__name__ == "RenameGraph"


def test_scope_forgets_what_was_registered_inside_it(tmp_path: Path) -> None:
    """The public way for tests to isolate the registry (instead of editing its private dict)."""
    reg = PassRegistry()
    with reg.scope(only=["fuse-pad"]) as inside:
        assert list(inside.all()) == ["fuse-pad"]
        inside.register(WithOptions)
    assert "with-options" not in reg.all() and "fold-constants" in reg.all()


PLUGIN_SOURCE = '''
from dataclasses import dataclass
from typing import ClassVar

from graphopt import PassResult, register_pass


@register_pass
@dataclass
class RenameGraph:
    """Renames the main graph (a visible, harmless change)."""

    name: ClassVar[str] = "{name}"
    to: str = "renamed"

    def run(self, model):
        model.graph.name = self.to
        return PassResult(True, {{"renamed": 1}})
'''


def test_load_plugin_from_a_py_file(tmp_path: Path, default_registry: PassRegistry) -> None:
    """--plugin path/to/file.py registers the file's passes in the default registry."""
    path = tmp_path / "rename_plugin.py"
    path.write_text(PLUGIN_SOURCE.format(name="rename-graph-file"))
    default_registry.load_plugin(str(path))
    created = default_registry.create("rename-graph-file", {"to": "g2"})
    model = import_model(add_model())
    assert created.run(model) == PassResult(True, {"renamed": 1})
    assert model.graph.name == "g2"


def test_load_plugin_from_an_importable_module(tmp_path: Path, default_registry: PassRegistry,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--plugin module.name imports the module, whose decorators register its passes."""
    (tmp_path / "graphopt_test_plugin_mod.py").write_text(PLUGIN_SOURCE.format(name="rename-graph-mod"))
    monkeypatch.syspath_prepend(str(tmp_path))
    default_registry.load_plugin("graphopt_test_plugin_mod")
    assert default_registry.get("rename-graph-mod").__name__ == "RenameGraph"


def test_missing_plugin_file_is_a_plugin_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as such."""
    missing = str(tmp_path / "nope.py")
    with pytest.raises(PluginError) as info:
        PassRegistry().load_plugin(missing)
    assert str(info.value) == f"plugin file {missing!r} not found"


def test_plugin_raising_on_import_is_a_plugin_error_with_the_cause(tmp_path: Path,
                                                                    default_registry: PassRegistry) -> None:
    """The exception type and message of the broken plugin are in the error."""
    path = tmp_path / "broken_plugin.py"
    path.write_text("x = 1 / 0\n")
    with pytest.raises(PluginError) as info:
        default_registry.load_plugin(str(path))
    assert str(info.value) == f"plugin {str(path)!r} failed to load: ZeroDivisionError: division by zero"


def test_unimportable_plugin_module_is_a_plugin_error() -> None:
    """A module name that does not import is reported with the import error."""
    name = "graphopt_test_plugin_that_does_not_exist"
    with pytest.raises(PluginError) as info:
        PassRegistry().load_plugin(name)
    assert str(info.value) == (f"plugin {name!r} failed to load: "
                               f"ModuleNotFoundError: No module named {name!r}")


def test_pass_from_function_makes_a_registered_pass_class(default_registry: PassRegistry) -> None:
    """The decorated function becomes a class named like it, with the given pass name and docstring."""
    @pass_from_function("rename-to-fn")
    def rename(model: Model) -> PassResult:
        """Rename the graph to 'fn'."""
        model.graph.name = "fn"
        return PassResult(True, {"renamed": 1})

    assert isinstance(rename, type)
    assert (rename.__name__, rename.name, rename.__doc__) == ("rename", "rename-to-fn",
                                                              "Rename the graph to 'fn'.")
    assert default_registry.get("rename-to-fn") is rename
    model = import_model(add_model())
    report = PassManager(parse_pipeline("rename-to-fn")).run(model)
    assert [(r.name, r.status, r.stats) for r in report.records] == [
        ("rename-to-fn", "changed", {"renamed": 1})]
    assert model.graph.name == "fn"
    assert op_types(model) == ["Add"]
