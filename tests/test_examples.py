"""Every example runs, and says something that could be wrong."""

import importlib.util
import pathlib

import numpy as np
import torch

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sklearn_pipeline_example():
    result = _load("sklearn_pipeline").main(n_users=150, max_epochs=2)
    assert result["best_params"]["model__inner_steps"] in (1, 5)
    assert 0.3 < result["new_user_rmse"] < 1.6
    top = result["top"]
    assert list(top.columns) == ["user_id", "item_id", "score", "rank"]
    assert top.groupby("user_id").size().eq(5).all()


def test_cold_start_example(capsys):
    threads = torch.get_num_threads()
    try:
        top = _load("cold_start_app").main(max_epochs=1)
    finally:
        torch.set_num_threads(threads)
    assert len(top) == 10
    assert not {12, 40, 7, 99, 150} & {row["item_id"] for row in top}
    scores = [row["score"] for row in top]
    assert np.all(np.diff(scores) <= 0)
    assert "answered in" in capsys.readouterr().out
