"""Importers of other projects' files into restorekit's own formats.

Kept apart from ``restorekit.config`` because an importer must know the other project's
vocabulary *and* ours — architectures, metrics, datasets — while ``config`` sits below all of
them in the import flow. ``compat`` may import everything below ``tasks``; only the CLI imports
``compat``. One subpackage per foreign project: :mod:`restorekit.compat.basicsr`.
"""
