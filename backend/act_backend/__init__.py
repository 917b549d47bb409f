"""label-studio-act ML backend: LLM annotator + critic served to Label Studio."""

__version__ = "0.1.0"
