"""System names: a protocol with round options after slashes (swarmrank.eval.systems)."""

from __future__ import annotations

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.systems import parse_system


def test_a_system_name_sets_schedule_aggregation_and_style():
    assert parse_system("peer-rank") == ("peer-rank", {})
    assert parse_system("peer-rank/fortytwo") == ("peer-rank", {"schedule": "fortytwo"})
    assert parse_system("peer-rank/adaptive/reference") == ("peer-rank", {"schedule": "adaptive",
                                                                          "judge_style": "reference"})
    assert parse_system("peer-rank/legacy") == ("peer-rank", {"aggregation": "bradley-terry",
                                                              "interested_judges": "never"})


@pytest.mark.parametrize("name,message", [
    ("peer-rank/nope", "unknown option 'nope' in 'peer-rank/nope'"),
    ("peer-rank/cluster/fortytwo", "sets schedule twice"),
    ("peer-rank/legacy/evidence", "sets aggregation twice"),
    ("nope", "unknown protocol 'nope'"),
])
def test_a_bad_system_name_is_one_line(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_system(name)
