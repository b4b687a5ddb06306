"""Signed, attested images verify, and each way an image can fail verification has its exit code.

The CI image is pushed to the loopback registry (no build) and signed with a throwaway cosign key
pair, without the transparency log (none is reachable here); `invoke verify` runs as a user runs
it. Each broken case is a real registry state, not a mock: a signature by another key, a digest
nobody signed, a tag moved to another image after signing, an SBOM attestation that is not the
image's lock. Everything lives in the session's registry, removed with it; `registry.push` leaves
no tag on the engine.

    pytest tests/build/test_signing.py      # dockerd, docker-registry, cosign; ~30 s
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from commandline import assert_one_line_error, invoke

from service_images import engine, errors, registry, sbom, signing, verification
from service_images.variants import DEFAULT_BASE_IMAGE, get_variant

VARIANT = get_variant("ci")
NO_TLOG = "--no-tlog"  # no Rekor here: key pairs, signed and verified without the log


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    def signer(self, *, verifying: bool = False) -> signing.Signer:
        return signing.Signer(key=self.public if verifying else self.private, tlog=False)


def key_pair(where: Path) -> KeyPair:
    where.mkdir()
    subprocess.run(
        ["cosign", "generate-key-pair"], cwd=where, check=True, capture_output=True, timeout=60
    )
    return KeyPair(where / "cosign.key", where / "cosign.pub")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyPair, KeyPair]]:
    """Ours and somebody else's, both with an empty password (COSIGN_PASSWORD for the module)."""
    if shutil.which("cosign") is None:
        pytest.skip("no cosign: scripts/bootstrap.sh installs it")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSIGN_PASSWORD", "")
        root = tmp_path_factory.mktemp("cosign")
        yield key_pair(root / "ours"), key_pair(root / "theirs")


@dataclass(frozen=True)
class Pushed:
    ci: registry.PushResult
    """The CI image, signed with our key, its SBOM attested."""
    unsigned: registry.PushResult
    """Another image (the base) that nobody signed."""
    bom: Path
    run_id: str


@pytest.fixture(scope="module")
def pushed(
    local_registry: str, keys: tuple[KeyPair, KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    sdk = engine.client()
    if not engine.image_exists(sdk, VARIANT.tag):
        pytest.skip(f"no {VARIANT.tag}: invoke build-ci")
    run_id = secrets.token_hex(4)
    ci = registry.push(VARIANT, local_registry, tag=f"signed-{run_id}")
    unsigned = registry.push(
        VARIANT, local_registry, image=DEFAULT_BASE_IMAGE, tag=f"unsigned-{run_id}"
    )
    bom = sbom.write(
        sbom.image_bom(sdk, VARIANT, VARIANT.tag), tmp_path_factory.mktemp("sbom") / "ci.cdx.json"
    )
    ours, _ = keys
    verification.sign_and_attest(ci.digest_reference, ours.signer(), bom)
    return Pushed(ci, unsigned, bom, run_id)


def verify(reference: str, key: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return invoke("verify", reference, "--key", str(key), NO_TLOG, *more)


def test_a_signed_and_attested_image_verifies(
    pushed: Pushed, keys: tuple[KeyPair, KeyPair]
) -> None:
    ours, _ = keys
    done = verify(pushed.ci.digest_reference, ours.public)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signature: 1 by" in done.stdout
    assert f"exactly {VARIANT.lock.name}" in done.stdout
    # docker push from the containerd store carries BuildKit's provenance: it was checked.
    assert "built from commit" in done.stdout, done.stdout


def test_a_signature_by_another_key_is_the_wrong_signer(
    pushed: Pushed, keys: tuple[KeyPair, KeyPair]
) -> None:
    _, theirs = keys
    done = verify(pushed.ci.digest_reference, theirs.public)
    assert_one_line_error(done, errors.WrongSigner.exit_code, "signed, but not by", "theirs")


def test_an_unsigned_digest_is_unsigned(pushed: Pushed, keys: tuple[KeyPair, KeyPair]) -> None:
    ours, _ = keys
    done = verify(pushed.unsigned.digest_reference, ours.public)
    assert_one_line_error(done, errors.Unsigned.exit_code, "has no signature")


def test_a_tag_moved_after_signing_is_tampered(
    pushed: Pushed, keys: tuple[KeyPair, KeyPair], local_registry: str
) -> None:
    ours, _ = keys
    tag = f"moved-{pushed.run_id}"
    signed_digest = pushed.ci.digest_reference.rpartition("@")[2]
    moved = registry.push(VARIANT, local_registry, tag=tag)
    assert verify(moved.reference, ours.public, "--digest", signed_digest).returncode == 0
    registry.push(VARIANT, local_registry, image=DEFAULT_BASE_IMAGE, tag=tag)  # the tag moves
    done = verify(moved.reference, ours.public, "--digest", signed_digest)
    assert_one_line_error(done, errors.Tampered.exit_code, tag, "the tag was moved")
    # A tag alone is refused: it is not what anyone signed.
    assert_one_line_error(verify(moved.reference, ours.public), errors.BadOption.exit_code)


def test_an_sbom_attestation_that_is_not_the_lock_is_an_sbom_mismatch(
    pushed: Pushed, keys: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    """Our own key attests a hand-altered SBOM (a component removed) onto a digest of the same
    image: the CI image's platform manifest, whose labels name the ci variant too."""
    ours, _ = keys
    (platform,) = pushed.ci.images
    document = json.loads(pushed.bom.read_text(encoding="utf-8"))
    removed = next(c for c in document["components"] if c["name"] == "fastapi")
    document["components"].remove(removed)
    altered = sbom.write(document, tmp_path / "altered.cdx.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSIGN_PASSWORD", "")
        signing.sign(platform.digest_reference, ours.signer())
        signing.attest_sbom(platform.digest_reference, altered, ours.signer())
    done = verify(platform.digest_reference, ours.public)
    assert_one_line_error(
        done, errors.SbomMismatch.exit_code, f"fastapi: locked {removed['version']}, not installed"
    )
    # The same document was refused before signing: `invoke sign` attests only the lock.
    with pytest.raises(errors.SbomMismatch):
        verification.sign_and_attest(platform.digest_reference, ours.signer(), altered)


def test_signing_needs_a_digest(keys: tuple[KeyPair, KeyPair], local_registry: str) -> None:
    ours, _ = keys
    done = invoke(
        "sign", "--image", f"{local_registry}/python-ai-service:ci", "--key", str(ours.private)
    )
    assert_one_line_error(done, errors.BadOption.exit_code, "not REPO@sha256:")
