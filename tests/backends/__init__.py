"""Backend tests (a package, so that its conftest.py does not take the name ``conftest`` that
test modules import tests/conftest.py by)."""
