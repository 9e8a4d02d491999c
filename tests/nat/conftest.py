import pytest

from .lab import Lab, why_not


@pytest.fixture
def lab():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        errors = lab.close()
        assert not errors and not lab.leftovers(), f"namespaces left behind: {errors or lab.leftovers()}"
