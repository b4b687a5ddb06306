from __future__ import annotations

import platform

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.ml.capabilities import ml_libraries
from app.ml.forecast import Backend
from app.schemas import CapabilitiesResponse, LibraryInfo

router = APIRouter(prefix="/capabilities", tags=["capabilities"])


@router.get("")
async def capabilities(settings: SettingsDep) -> CapabilitiesResponse:
    """The ML libraries in this image (their versions with EXPOSE_VERSIONS); nothing heavy is
    imported."""
    libraries = ml_libraries()
    versions = settings.EXPOSE_VERSIONS
    return CapabilitiesResponse(
        image_variant=settings.IMAGE_VARIANT,
        python=platform.python_version() if versions else None,
        libraries={
            name: LibraryInfo(available=lib.available, version=lib.version if versions else None)
            for name, lib in libraries.items()
        },
        forecast_backends=[b.value for b in Backend if libraries[b.value].available],
    )
