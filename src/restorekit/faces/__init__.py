"""Face detection (MTCNN, RetinaFace), five-point alignment to the FFHQ template, and paste-back.

Nothing heavy is imported here: ``restorekit.faces.detect``, ``.align``, ``.mtcnn`` and
``.retinaface`` are imported where they are used, so ``import restorekit`` stays light.
"""
