"""The one-session config of issue #13 is the full design with only the cuts its header names.

configs/experiment-v10-100min.yaml says it is configs/experiment-tasks36-v10-lr5e-5.yaml cut to 24 tasks,
16 steps, HumanEval 64, SecurityEval 50, one seed and no variants. If either file drifts (a loss option,
a tree option, a sampling setting), its table would no longer be a smaller copy of the full one.
"""

from __future__ import annotations

from pathlib import Path

from treeplay.run_config import load_config, load_train_tasks

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "configs" / "experiment-tasks36-v10-lr5e-5.yaml"
CUT = REPO / "configs" / "experiment-v10-100min.yaml"


def test_the_one_session_config_differs_from_the_full_design_only_in_its_named_cuts() -> None:
    full = load_config(FULL).model_dump()
    cut = load_config(CUT).model_dump()
    # the cuts, written from the config's header
    assert cut["name"] == "experiment-v10-100min"
    assert cut["seeds"] == [0] and full["seeds"] == [0, 1, 2]
    assert (cut["train_tasks"]["limit"], full["train_tasks"]["limit"]) == (24, 36)
    assert (cut["train"]["max_steps"], full["train"]["max_steps"]) == (16, 24)  # 24 * 24 / 36
    assert cut["eval"]["limits"] == {"humaneval": 64, "securityeval": 50} and full["eval"]["limits"] == {}
    assert cut["variants"] == {} and sorted(full["variants"]) == ["tsp-2rounds", "tsp-dpo", "tsp-oracle-nodes",
                                                                    "tsp-sibling"]
    # everything else is the full design's
    for key in ("name", "seeds", "variants"):
        del full[key], cut[key]
    del full["train_tasks"]["limit"], cut["train_tasks"]["limit"]
    del full["train"]["max_steps"], cut["train"]["max_steps"]
    del full["eval"]["limits"], cut["eval"]["limits"]
    assert cut == full


def test_the_one_session_config_trains_on_the_first_24_of_the_full_designs_36_tasks(shared_data: Path) -> None:
    full = load_config(FULL).model_copy(update={"data_root": str(shared_data)})
    cut = load_config(CUT).model_copy(update={"data_root": str(shared_data)})
    full_ids = [task.id for task in load_train_tasks(full)]
    cut_tasks = load_train_tasks(cut)
    assert len(full_ids) == 36
    assert [task.id for task in cut_tasks] == full_ids[:24]
    # all nine Python CWEs of SafeCoder train stay in (the header says so)
    assert len({cwe for task in cut_tasks for cwe in task.cwe}) == 9
