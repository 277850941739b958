"""``python -m experiments.{main,compare,sweep,report}`` in a clone of the repository.

The commands live in :mod:`normzoo.cli`; installed, they are the console
scripts ``normzoo-train``, ``normzoo-compare``, ``normzoo-sweep`` and
``normzoo-report``.
"""
