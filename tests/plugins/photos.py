"""Real photographs for the detector tests: Debian's `darknet` package data.

scripts/install_services.sh installs the package (``apt-get install darknet``); its
``/usr/share/darknet/data`` holds the photos YOLO's authors test with (GPL-3+/MIT/WTFPL).
"""

from __future__ import annotations

from pathlib import Path

import cv2

from forgesyte.plugins.base import Frame

PHOTOS = Path("/usr/share/darknet/data")


def photo(name: str) -> Frame:
    """The named darknet photo (e.g. ``dog``), BGR; a clear error when it is not installed."""
    path = PHOTOS / f"{name}.jpg"
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(
            f"{path} is missing: run scripts/install_services.sh (apt-get install darknet)"
        )
    return image
