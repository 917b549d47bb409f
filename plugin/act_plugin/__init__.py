"""label-studio-act plugin: the Label Studio side of ACT (wiring, bulk annotation, review, sync)."""
