"""Stand-ins for PyFlink names whose capability Superflow does not have yet. A PyFlink
program that imports one still starts; the first use (a call, an instance, a class
attribute) raises ``NotImplementedError`` naming what is missing, instead of an
``ImportError`` at the top of the file."""

from typing import Any, Dict


class _UnsupportedMeta(type):
    _superflow_missing: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(cls._superflow_missing)

    def __getattr__(cls, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise NotImplementedError(cls._superflow_missing)


def unsupported(name: str, module: str, missing: str) -> type:
    """A class named ``name`` (PyFlink's ``module.name``) that raises, when used, that
    Superflow lacks ``missing``."""
    namespace: Dict[str, Any] = {
        "_superflow_missing": f"{module}.{name}: Superflow does not have {missing} yet",
        "__module__": f"superflow.{module}",
        "__doc__": f"Not available yet: Superflow does not have {missing}.",
    }
    return _UnsupportedMeta(name, (), namespace)
