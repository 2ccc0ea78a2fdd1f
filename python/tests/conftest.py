"""Shared helpers: every test builds a fresh environment."""

import pytest

from superflow.datastream import StreamExecutionEnvironment


@pytest.fixture
def env():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


@pytest.fixture
def env2():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(2)
    return e
