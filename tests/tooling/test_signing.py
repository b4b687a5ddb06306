"""What cosign is asked to do, and the provenance rule, on the host (tests/build/test_signing.py
signs and verifies for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service_images import errors, registry, signing, verification

DIGEST = "sha256:" + "a" * 64
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("reference", "plain_http"),
    [
        ("127.0.0.1:5000/example-app@" + DIGEST, True),
        ("localhost:5000/example-app@" + DIGEST, True),
        ("[::1]:5000/example-app@" + DIGEST, True),
        ("ghcr.io/owner/example-app@" + DIGEST, False),
        ("10.0.0.1:5000/example-app@" + DIGEST, False),
    ],
)
def test_only_loopback_registries_are_plain_http(reference: str, plain_http: bool) -> None:
    assert bool(signing.registry_args(reference)) is plain_http


def test_a_key_pair_without_the_log(tmp_path: Path) -> None:
    key = tmp_path / "cosign.pub"
    key.write_text("key")
    signer = signing.Signer(key=key, tlog=False)
    signer.check(verifying=True)
    assert signer.signing_args() == ["--key", str(key), "--tlog-upload=false", "--yes"]
    assert signer.verifying_args() == ["--key", str(key), "--insecure-ignore-tlog=true"]


def test_keyless_verification_names_identity_and_issuer() -> None:
    signer = signing.Signer.from_options(certificate_identity_regexp="^https://github.com/o/r/")
    signer.check(verifying=True)
    assert signer.verifying_args() == [
        "--certificate-identity-regexp",
        "^https://github.com/o/r/",
        "--certificate-oidc-issuer",
        signing.GITHUB_OIDC_ISSUER,
        "--insecure-ignore-tlog=false",
    ]
    assert signing.Signer().signing_args() == ["--tlog-upload=true", "--yes"]


@pytest.mark.parametrize(
    "signer",
    [
        signing.Signer(),  # verifying: trusts nobody
        signing.Signer(tlog=False),  # keyless needs the log
        signing.Signer(key=Path("cosign.pub"), identity="someone"),
    ],
)
def test_a_signer_that_cannot_be_is_refused(signer: signing.Signer) -> None:
    with pytest.raises(errors.BadOption):
        signer.check(verifying=True)


def test_a_tag_is_not_signed_or_verified_without_its_digest() -> None:
    with pytest.raises(errors.BadOption, match="not REPO@sha256"):
        signing.digest_reference("127.0.0.1:5000/example-app:ci")
    with pytest.raises(errors.Tampered):
        verification.resolve("127.0.0.1:5000/example-app@" + DIGEST, "sha256:" + "b" * 64)


def provenance(revision: str, source: str | None = None) -> dict[str, Any]:
    vcs: dict[str, str] = {"revision": revision}
    if source:
        vcs["source"] = source
    return {"metadata": {verification.BUILDKIT_METADATA: {"vcs": vcs}}}


LABELS = {
    verification.REVISION_LABEL: REVISION,
    verification.SOURCE_LABEL: "https://github.com/Owner/example-app",
}


@pytest.mark.parametrize(
    ("documents", "verdict"),
    [
        ([], "not checked"),
        ([provenance(REVISION)], "built from commit"),
        ([provenance(REVISION, "https://github.com/owner/example-app.git")], "of https"),
        ([provenance("f" * 40)], errors.ProvenanceMismatch),
        ([provenance(REVISION, "https://github.com/else/where")], errors.ProvenanceMismatch),
        ([{"metadata": {}}], errors.ProvenanceMismatch),
    ],
)
def test_provenance_names_the_labels_commit_and_repository(
    monkeypatch: pytest.MonkeyPatch,
    documents: list[dict[str, Any]],
    verdict: str | type[errors.ToolError],
) -> None:
    # The registry's answer, as registry.provenance() parses it (the real one: tests/build).
    monkeypatch.setattr(registry, "provenance", lambda reference: documents)
    if isinstance(verdict, str):
        assert verdict in verification.check_provenance("r@" + DIGEST, LABELS)
    else:
        with pytest.raises(verdict):
            verification.check_provenance("r@" + DIGEST, LABELS)
