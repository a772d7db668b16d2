"""``--gallery DIR``, shared by the commands that take it."""

from __future__ import annotations

from pathlib import Path


def folder_problem(folder: Path | None) -> str | None:
    """What is wrong with ``--gallery DIR`` before anything is read from it, or None."""
    return f"{folder}: not a folder" if folder is not None and not folder.is_dir() else None


def gallery_options(folder: Path | None) -> dict:
    """``{"gallery": [...]}`` for a job or watch of its own gallery, ``{}`` without one.
    Raises ``core.errors.GalleryError`` with one line a user can act on. The faces are found
    and embedded in this process (the command needs no farm for it)."""
    if folder is None:
        return {}
    from core.errors import GalleryError
    from core.settings import get_settings
    from services.gallery import gallery_option
    from workers.enrolment import PhotoEmbedder

    if problem := folder_problem(folder):
        raise GalleryError(problem)
    return {"gallery": gallery_option(folder, PhotoEmbedder.from_settings(get_settings()))}
