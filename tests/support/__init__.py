"""Test support, one module per kind of help (no test module imports another).

- ``cli``: ``ls-act`` run in-process.
- ``backend``: settings that point the backend at the stub LLM; the app on real HTTP; ``predict``.
- ``configs``: labeling configs and task data shared by tests.
- ``fixtures``: the captured Label Studio 1.23.2 requests under ``tests/fixtures``.
- ``llm``: a scripted LLM for the stub OpenAI-compatible server.
- ``projects``: ACT predictions and reviews written into a real Label Studio.
- ``faulty_proxy``: a proxy in front of a real server that fails on demand.
"""
