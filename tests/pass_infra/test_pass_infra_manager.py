"""The pass manager: records, fixed points, --disable, rollback of failing passes, on_failure='raise'."""

from __future__ import annotations

import pytest
from pass_infra_kit import (
    AlwaysChanges,
    DamagesThenRaises,
    LeavesDanglingUse,
    ReturnsNone,
    add_model,
    messy_model,
    op_types,
    registry,
    snapshot,
)

from graphopt import import_model, verify
from graphopt.errors import PassFailedError
from graphopt.pass_infra.instruments import VerifyIR
from graphopt.pass_infra.manager import PassManager, PassRecord, PipelineReport
from graphopt.pass_infra.pipeline import parse_pipeline


def _manager(text: str, *classes: type, **kwargs: object) -> PassManager:
    return PassManager(parse_pipeline(text), registry=registry(*classes), pipeline_text=text,
                       **kwargs)  # type: ignore[arg-type]


def _summary(report: PipelineReport) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in report.records]


def test_run_each_pass_in_order_and_record_what_it_did() -> None:
    """Status, stats, node counts, constant bytes and the passes that changed the model before."""
    model = import_model(messy_model())
    report = _manager("eliminate-dead-code,fold-constants,topological-sort").run(model)
    assert _summary(report) == [("eliminate-dead-code", "changed"), ("fold-constants", "changed"),
                                ("topological-sort", "unchanged")]
    dce, fold, topo = report.records
    assert dce.stats == {"dead_nodes": 1}
    assert fold.stats == {"folded": 1, "folded_Add": 1}
    assert topo.stats == {"nodes_moved": 0}
    assert [(r.nodes_before, r.nodes_after) for r in report.records] == [(4, 3), (3, 2), (2, 2)]
    assert [(r.bytes_before, r.bytes_after) for r in report.records] == [(24, 24), (24, 12), (12, 12)]
    assert [r.history for r in report.records] == [[], ["eliminate-dead-code"],
                                                   ["eliminate-dead-code", "fold-constants"]]
    assert report.warnings == [] and report.rolled_back == []
    assert op_types(model) == ["Relu", "Mul"]


def test_fixpoint_repeats_until_an_iteration_changes_nothing() -> None:
    """DCE removes the dead node, fold-constants folds (dropping the constants it consumed); round two
    finds nothing, so the fixed point ends."""
    # A pass that found nothing to do is not run again until another pass changed the model, so the
    # last fold-constants would be skipped; here round two's DCE is quiet and ends the loop first.
    model = import_model(messy_model())
    report = _manager("fixpoint(eliminate-dead-code,fold-constants){max=5}").run(model)
    assert _summary(report) == [
        ("eliminate-dead-code", "changed"), ("fold-constants", "changed"),
        ("eliminate-dead-code", "unchanged"), ("fold-constants", "unchanged"),
    ]
    assert report.records[2].stats == {}
    assert report.warnings == []
    assert op_types(model) == ["Relu", "Mul"]


def test_records_number_the_rounds_of_the_innermost_fixpoint_and_zero_outside() -> None:
    """The round a run belongs to is what a chart of the run separates; a pass after the fixed point,
    and one in a second fixed point, do not inherit the first one's count."""
    model = import_model(messy_model())
    text = "topological-sort,fixpoint(eliminate-dead-code,fold-constants),fixpoint(topological-sort)"
    report = _manager(text).run(model)
    assert [(r.name, r.status, r.round) for r in report.records] == [
        ("topological-sort", "unchanged", 0),
        ("eliminate-dead-code", "changed", 1), ("fold-constants", "changed", 1),
        ("eliminate-dead-code", "unchanged", 2), ("fold-constants", "unchanged", 2),
        ("topological-sort", "unchanged", 1)]


def test_pass_with_nothing_to_do_is_skipped_until_the_model_changes() -> None:
    """topological-sort twice in a row runs once; after a change it runs again."""
    model = import_model(messy_model())
    report = _manager("topological-sort,topological-sort,eliminate-dead-code,topological-sort").run(model)
    assert _summary(report) == [("topological-sort", "unchanged"), ("eliminate-dead-code", "changed"),
                                ("topological-sort", "unchanged")]


def test_warn_when_a_fixpoint_does_not_converge() -> None:
    """A pass that always claims a change stops at max and leaves one warning."""
    report = _manager("fixpoint(always-changes){max=3}", AlwaysChanges).run(import_model(add_model()))
    assert _summary(report) == [("always-changes", "changed")] * 3
    assert report.warnings == ["fixpoint(always-changes){max=3} did not converge within 3 iterations"]


def test_disabled_pass_is_recorded_and_not_run() -> None:
    """--disable keeps the pass in the report as 'disabled' and the model as it was."""
    model = import_model(messy_model())
    before = snapshot(model)
    report = _manager("eliminate-dead-code", disabled=frozenset({"eliminate-dead-code"})).run(model)
    assert _summary(report) == [("eliminate-dead-code", "disabled")]
    assert report.records[0].stats == {}
    assert snapshot(model) == before


def test_roll_back_a_pass_that_raises_and_go_on() -> None:
    """The damage is undone, the failure is recorded, the next pass still runs on the intact model."""
    model = import_model(messy_model())
    before = snapshot(model)
    report = _manager("damages-then-raises,topological-sort", DamagesThenRaises).run(model)
    failed, topo = report.records
    assert (failed.status, failed.failure) == ("rolled-back", "raised RuntimeError: boom")
    assert (failed.nodes_before, failed.nodes_after) == (4, 4)
    assert report.rolled_back == [failed]
    assert (topo.status, topo.history) == ("unchanged", [])
    assert snapshot(model) == before
    assert op_types(model) == ["Relu", "Neg", "Add", "Mul"]
    verify(model)


def test_on_failure_raise_turns_a_raising_pass_into_pass_failed_error() -> None:
    """The error names the pass and the exception, and chains the original exception."""
    manager = _manager("damages-then-raises", DamagesThenRaises, on_failure="raise")
    with pytest.raises(PassFailedError) as info:
        manager.run(import_model(add_model()))
    assert str(info.value) == "pass 'damages-then-raises' raised RuntimeError: boom"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.exit_code == 4


def test_verify_ir_rolls_back_a_pass_that_leaves_a_dangling_use() -> None:
    """VerifyIR reports the value read but no longer defined; the model is restored."""
    model = import_model(messy_model())
    before = snapshot(model)
    report = _manager("leaves-dangling-use", LeavesDanglingUse, instruments=[VerifyIR()]).run(model)
    record = report.records[0]
    assert record.status == "rolled-back"
    assert record.stats == {"removed": 1}
    assert record.failure is not None
    assert record.failure.startswith("IR verification failed: ")
    assert "Node(Mul) input 0 reads Value('r', Relu:0), not defined before it in scope" in record.failure
    assert snapshot(model) == before
    verify(model)


def test_verify_ir_with_on_failure_raise_raises_pass_failed_error() -> None:
    """The verifier's message is in the error."""
    manager = _manager("leaves-dangling-use", LeavesDanglingUse, instruments=[VerifyIR()], on_failure="raise")
    with pytest.raises(PassFailedError, match="^pass 'leaves-dangling-use' failed: IR verification failed: "):
        manager.run(import_model(messy_model()))


def test_verify_ir_runs_only_after_a_pass_that_reports_a_change() -> None:
    """Verify-each is after changing passes only: a pass hiding its change is not verified."""
    model = import_model(messy_model())
    report = _manager("leaves-dangling-use{claim_change=false}", LeavesDanglingUse,
                      instruments=[VerifyIR()]).run(model)
    assert _summary(report) == [("leaves-dangling-use", "unchanged")]


def test_pass_returning_something_else_than_pass_result_is_a_type_error() -> None:
    """A programming error in a pass is never swallowed by the rollback."""
    with pytest.raises(TypeError, match="^pass 'returns-none' returned NoneType, expected PassResult$"):
        _manager("returns-none", ReturnsNone).run(import_model(add_model()))


def test_progress_is_called_once_per_pass_run() -> None:
    """The CLI's progress hook sees every record, rolled-back ones included."""
    seen: list[PassRecord] = []
    _manager("eliminate-dead-code,damages-then-raises", DamagesThenRaises,
             progress=seen.append).run(import_model(messy_model()))
    assert [(r.name, r.status) for r in seen] == [("eliminate-dead-code", "changed"),
                                                  ("damages-then-raises", "rolled-back")]


def test_record_as_dict_has_every_field_for_json() -> None:
    """as_dict exposes the whole record."""
    record = PassRecord("p", status="changed", stats={"n": 1})
    assert record.as_dict() == {"name": "p", "step": "", "status": "changed", "seconds": 0.0,
                                "nodes_before": 0, "nodes_after": 0, "bytes_before": 0, "bytes_after": 0,
                                "stats": {"n": 1}, "failure": None, "cause": None, "checks": {},
                                "history": [], "rules": {}, "warnings": [], "round": 0,
                                "drift_budget": None}


def test_snapshot_is_reused_while_no_pass_changed_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two passes that change nothing and a third that damages the model and raises share one rollback
    copy, and the damage is still undone exactly; after that rollback a fresh copy is taken."""
    import graphopt.pass_infra.manager as manager_module

    clones: list[int] = []
    real_clone = manager_module.clone_model
    monkeypatch.setattr(manager_module, "clone_model", lambda m: clones.append(1) or real_clone(m))
    model = import_model(add_model())
    before = snapshot(model)
    report = _manager("topological-sort,eliminate-dead-code,damages-then-raises,"
                      "eliminate-dead-code{noops=false}", DamagesThenRaises).run(model)
    assert [r.status for r in report.records] == ["unchanged", "unchanged", "rolled-back", "unchanged"]
    assert len(clones) == 2  # one for the three runs up to the rollback, one after it
    assert snapshot(model) == before


def test_a_rollback_after_a_change_restores_the_changed_model_not_an_older_copy() -> None:
    """DCE changes the model; the damaging pass after it is rolled back to DCE's result."""
    model, expected = import_model(messy_model()), import_model(messy_model())
    _manager("eliminate-dead-code").run(expected)
    report = _manager("eliminate-dead-code,damages-then-raises", DamagesThenRaises).run(model)
    assert [r.status for r in report.records] == ["changed", "rolled-back"]
    assert snapshot(model) == snapshot(expected) and "Add" in op_types(model)


def test_one_manager_runs_a_second_model_as_if_it_were_the_first() -> None:
    """Regression: the idle-pass memo lived on the manager, so a pass idle on the first model was
    skipped on the second (same generation 0), and a rollback could restore the *first* model."""
    manager = PassManager(parse_pipeline("eliminate-dead-code,damages-then-raises"),
                          registry=registry(DamagesThenRaises))
    first, second = import_model(add_model()), import_model(messy_model())
    manager.run(first)
    report = manager.run(second)
    assert [(r.name, r.status) for r in report.records] == [
        ("eliminate-dead-code", "changed"), ("damages-then-raises", "rolled-back")]
    assert op_types(second) == ["Relu", "Add", "Mul"]  # the dead Neg is gone, the Add is back
    assert op_types(first) == ["Add"]
