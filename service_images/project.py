"""Whose images these are: the one file to change to adopt the suite for another service.

Everything the suite names after the project derives from here: the image name and its tags, the
labels (`io.<NAME>.*`), BuildKit's cache mount ids, temporary directories, the SBOM's property
names, and the Dockerfiles' title label and service COPY line (`invoke dockerfiles` renders them;
run it, and `invoke readme`, after a change). README, "Using this for your own service", says what
else an adopter replaces: the service itself, its requirements, its tests.
"""

from __future__ import annotations

NAME = "python-ai-service"
"""The image's name: `NAME:ci`, `NAME:full`, `REGISTRY/NAME@sha256:...`."""
SERVICE_DIR = "python-ai-service"
"""The service's directory at the repository's top: its package `app/` goes to /app/app."""
LABELS = f"io.{NAME}"
"""The namespace of the labels the suite puts on what it creates."""
