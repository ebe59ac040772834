"""Root pytest plugin list (pytest only honours pytest_plugins in the root conftest)."""

pytest_plugins = ["tests.fake_openai"]
