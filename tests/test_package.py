"""Package-level checks: import, version, error hierarchy, config helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

import workbench
from workbench.config import from_dict, require_choice, require_int, require_positive
from workbench.errors import ConfigError, WorkbenchError, WorkloadError


def test_version_and_errors():
    assert workbench.__version__ == "0.1.0"
    assert issubclass(WorkloadError, WorkbenchError)
    err = WorkloadError("negative tokens", file="x.csv", field="prompt_tokens", row=3)
    assert str(err) == "negative tokens (file x.csv, field 'prompt_tokens', row 3)"


def test_config_helpers():
    @dataclass(frozen=True)
    class C:
        a: int = 1

    assert from_dict(C, {"a": 2}).a == 2
    with pytest.raises(ConfigError, match="valid fields: a"):
        from_dict(C, {"b": 2})
    with pytest.raises(ConfigError, match="x must be a finite number > 0"):
        require_positive("x", -1)
    with pytest.raises(ConfigError, match="choose one of: a, b"):
        require_choice("policy", "c", ["b", "a"])
    with pytest.raises(ConfigError, match=r"^unknown router 'x'; choose one of: a, b$"):
        require_choice("router", "x", ("a", "b"))
    with pytest.raises(ConfigError, match=r"^pool 'a'\.router: unknown router 'x'; choose one of: a, b$"):
        require_choice("pool 'a'.router", "x", ("a", "b"), what="router")
    require_choice("pool 'a'.router", "a", ("a", "b"), what="router")


@pytest.mark.parametrize(
    "value, low, expected", [(3, 1, 3), (np.int64(3), 1, 3), (0, 0, 0), (np.uint8(7), 5, 7)]
)
def test_require_int_accepts_integers(value, low, expected):
    out = require_int("n", value, low=low)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, "3", None, 0, -1, np.int32(0)])
def test_require_int_rejects_with_one_message(value):
    with pytest.raises(ConfigError, match=rf"^n_gpus must be an integer >= 1, got {re.escape(repr(value))}$"):
        require_int("n_gpus", value)


def test_readme_first_session_runs(capsys):
    """The README's Python example runs as written and prints what it promises."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "rate_rps" in out and "ttft_p99_s" in out and "j_per_output_token" in out
    assert "the minimum-cost fleet is" in " ".join(out.split())
