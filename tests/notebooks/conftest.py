import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/notebooks" in str(item.path):
            item.add_marker(pytest.mark.vm)
            item.add_marker(pytest.mark.timeout(400))
