"""The training engine: the loop, checkpoints, distributed set-up, validation, logging.

Modules are imported where needed (``from restorekit.engine.trainer import Trainer``) so that
importing any one of them stays cheap.
"""
