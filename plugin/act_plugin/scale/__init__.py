"""ACT beyond one machine: annotate a data set on Ray Data, review a sample, sync it back.

The stages, each a command of ``ls-act scale`` and each resumable:

- :mod:`.annotate`: input blocks (:mod:`.source`) → actors running the backend's own
  ``Predictor`` → ``annotations/part-NNNNNN.parquet`` (:mod:`.store`, the system of record);
- :mod:`.review`: the draw of ``ls-act review`` over the Parquet; only the drawn rows are
  imported into Label Studio, with their predictions, sharded into projects (:mod:`.projects`);
- :mod:`.sync`: the reviews joined with the Parquet into ``ls-act sync``'s training set.

Ray is imported only when a stage runs on it (:mod:`.cluster`); see docs/scale.md.
"""
