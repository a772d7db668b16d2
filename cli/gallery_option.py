"""``--gallery DIR``, shared by the commands that take it."""

from __future__ import annotations

from pathlib import Path


def gallery_options(folder: Path | None) -> dict:
    """``{"gallery": [...]}`` for a job or watch of its own gallery, ``{}`` without one.
    Raises ``tasks.gallery.GalleryError`` with one line a user can act on."""
    if folder is None:
        return {}
    from tasks.gallery import GalleryError, gallery_option

    if not folder.is_dir():
        raise GalleryError(f"{folder}: not a folder")
    return {"gallery": gallery_option(folder)}
