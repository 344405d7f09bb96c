"""The one result type every face detector returns (MTCNN, RetinaFace).

Kept in its own tiny module so detectors, alignment and paste-back can share it without
importing each other (or torch): a ``Face`` is plain numpy, in the input image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detected face, in pixel coordinates of the image it was detected on.

    ``box``: float32 ``[4]`` as (x1, y1, x2, y2). ``score``: the detector's confidence in [0, 1].
    ``landmarks``: float32 ``[5, 2]`` (x, y) in the FFHQ template's order: eye on the image's
    left, eye on the image's right, nose tip, mouth corner on the left, mouth corner on the right.
    Values are cast on construction so every detector hands out the same dtypes and shapes.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye points: facexlib drops faces where it is < 5 px."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    def scaled(self, fx: float, fy: float | None = None) -> Face:
        """The same face with x coordinates times ``fx`` and y times ``fy`` (default ``fx``).

        For faces detected on a resized copy of an image: the two axes of a resize to whole
        pixels differ slightly in scale, and on a big photo that difference is a pixel or two.
        """
        fy = fx if fy is None else fy
        xy = np.array([fx, fy], dtype=np.float32)
        return Face(self.box * np.tile(xy, 2), self.score, self.landmarks * xy)
