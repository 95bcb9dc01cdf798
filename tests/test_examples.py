"""Every example runs, and says something that could be wrong."""

import importlib.util
import pathlib

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


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


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's first Python block, as a new user would paste it (one epoch, for time)."""
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "MetaRecommender(random_state=0)" in code
    code = code.replace("MetaRecommender(random_state=0)",
                        "MetaRecommender(random_state=0, max_epochs=1)")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    adapted, history_X = scope["adapted"], scope["history_X"]
    assert set(adapted.recommend(n=10).user_id) == set(history_X.user_id)
    np.testing.assert_allclose(scope["model"].predict(history_X.head(), history_X,
                                                      scope["history_y"]),
                               adapted.predict(history_X.head()), rtol=1e-5, atol=1e-6)
    assert (tmp_path / "model").is_dir()
