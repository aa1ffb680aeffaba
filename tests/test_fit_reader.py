"""How benchmarks/fit_reader.py chooses the answerability threshold it ships."""

import importlib.util

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("fit_reader", ROOT / "benchmarks" / "fit_reader.py")
fit_reader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fit_reader)


def _rates(natural: tuple[float, float], realtimeqa: tuple[float, float], sample: float | None = None) -> dict:
    rates = {
        name: {"abstained_answerable": abstained, "wrong_unanswerable": wrong}
        for name, (abstained, wrong) in (("natural", natural), ("realtimeqa", realtimeqa))
    }
    if sample is not None:
        rates["sample"] = {"abstained_answerable": sample, "wrong_unanswerable": 0.5}
    return rates


def test_a_target_no_threshold_meets_does_not_choose_between_those_that_meet_the_others():
    # both meet three targets and miss the look-alikes; the higher threshold answers one look-alike fewer but
    # leaves the RealTime QA abstentions at their limit: the lower one keeps room on every target it meets
    lower = _rates(natural=(0.12, 0.70), realtimeqa=(0.06, 0.16))
    higher = _rates(natural=(0.175, 0.65), realtimeqa=(0.10, 0.14))
    assert fit_reader.preference(lower) < fit_reader.preference(higher)


def test_meeting_more_targets_comes_first_and_the_sample_guard_before_all():
    three = _rates(natural=(0.12, 0.70), realtimeqa=(0.06, 0.16))
    four = _rates(natural=(0.19, 0.34), realtimeqa=(0.09, 0.17))
    assert fit_reader.preference(four) < fit_reader.preference(three)
    refusing = _rates(natural=(0.19, 0.34), realtimeqa=(0.09, 0.17), sample=0.25)  # 4 of the 16 plain questions
    assert fit_reader.preference(three) < fit_reader.preference(refusing)


def test_a_threshold_that_refuses_nearly_everything_never_wins_on_room():
    # RealTime QA's abstentions a question over their target: three targets met either way, one each side
    missed_by_one = _rates(natural=(0.125, 0.53), realtimeqa=(0.11, 0.16))
    refusing_all = _rates(natural=(0.99, 0.0), realtimeqa=(0.97, 0.01))
    assert fit_reader.preference(missed_by_one) < fit_reader.preference(refusing_all)
