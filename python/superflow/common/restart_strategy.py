"""Restart strategies (``pyflink.common.RestartStrategies``): what a job does after a
failure. Without one, a job with checkpoints restarts up to 10 times with exponential
delay, and a job without fails."""

from typing import Tuple, Union

from superflow.common.time import Duration, to_millis


def _ms(value: Union[int, Duration]) -> int:
    return to_millis(value, "a restart strategy")


class RestartStrategyConfiguration:
    def __init__(self, spec: Tuple):
        self._spec = spec

    def __repr__(self) -> str:
        return f"RestartStrategy{self._spec}"


class RestartStrategies:
    @staticmethod
    def no_restart() -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(("none",))

    @staticmethod
    def fixed_delay_restart(restart_attempts: int, delay_between_attempts: Union[int, Duration]
                            ) -> RestartStrategyConfiguration:
        if not isinstance(restart_attempts, int) or restart_attempts < 0:
            raise ValueError(f"restart attempts must be >= 0, got {restart_attempts!r}")
        return RestartStrategyConfiguration(
            ("fixed_delay", restart_attempts, _ms(delay_between_attempts)))

    @staticmethod
    def failure_rate_restart(failure_rate: int, failure_interval: Union[int, Duration],
                             delay_interval: Union[int, Duration]
                             ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            ("failure_rate", failure_rate, _ms(failure_interval), _ms(delay_interval)))

    @staticmethod
    def exponential_delay_restart(initial_backoff: Union[int, Duration],
                                  max_backoff: Union[int, Duration],
                                  backoff_multiplier: float,
                                  reset_backoff_threshold: Union[int, Duration],
                                  jitter_factor: float = 0.0,
                                  attempts: int = 2 ** 31 - 1
                                  ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            ("exponential_delay", attempts, _ms(initial_backoff), _ms(max_backoff),
             float(backoff_multiplier), _ms(reset_backoff_threshold)))
