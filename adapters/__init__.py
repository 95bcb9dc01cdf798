"""recmeta's edges: everything that touches a system outside the process.

Installed as ``recmeta.adapters`` (the core never imports it):

- :mod:`~recmeta.adapters.sql`: read interactions and features from the application's own
  tables (reflected, mapped, one query per batch of users), named as
  :mod:`~recmeta.adapters.source` describes;
- :mod:`~recmeta.adapters.tables` and :mod:`~recmeta.adapters.migrate`: recmeta's own tables
  and their Alembic history (:mod:`recmeta.migrations`);
- :mod:`~recmeta.adapters.scoring`: the nightly job, with :mod:`~recmeta.adapters.batch`
  (one batch, and the policy for imperfect data), :mod:`~recmeta.adapters.summary` (its
  progress and summary) and :mod:`~recmeta.adapters.runs` (runs, checkpoints, upserts);
- :mod:`~recmeta.adapters.training`, :mod:`~recmeta.adapters.registry`: train from the
  database, register models; :mod:`~recmeta.adapters.recommend`: one user, now;
- :mod:`~recmeta.adapters.demo`: the demo on SQLite.
"""
