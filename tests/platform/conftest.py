"""Platform tests that place calls share the agents tests' channel-layer clean-up."""

from tests.agents.conftest import _close_channel_layer_pools  # noqa: F401 - autouse fixture
