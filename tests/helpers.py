"""Small helpers shared by tests (import as `from tests.helpers import ...`)."""

from __future__ import annotations

from act_plugin.local_ls import free_port

__all__ = ["TEXT_CHOICES_CONFIG", "free_port"]

#: Text classification with three choices, as in the captured Label Studio fixtures.
TEXT_CHOICES_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="neutral"/>
  </Choices>
</View>"""
