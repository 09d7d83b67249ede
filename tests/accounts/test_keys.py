"""The key ring: rotation without logouts, retirement, JWKS, production refusing to start without keys."""

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x25519
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import keys as key_files
from accounts import tokens
from accounts.keys import keys_dir_add, private_key_pem
from accounts.tokens import key_ring, key_ring_reset
from tests.conftest import login
from tests.helpers import me

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def keys_dir(settings, tmp_path, monkeypatch):
    # A running process looks at the directory every few seconds; here, at every request.
    monkeypatch.setattr("accounts.tokens.KEYS_DIR_RECHECK_SECONDS", 0)
    settings.JWT_PRIVATE_KEYS = ""
    settings.JWT_KEYS_DIR = tmp_path / "keys"
    call_command("jwt_keys", "rotate", stdout=open(os.devnull, "w"))
    return settings.JWT_KEYS_DIR


def body_login(user):
    return login(APIClient(), user, tokenDelivery="body").json()


def kids(path):
    return sorted(p.stem for p in Path(path).glob("*.pem"))


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_retired(keys_dir, user):
    old_kid = kids(keys_dir)[0]
    old = body_login(user)

    call_command("jwt_keys", "rotate", stdout=open(os.devnull, "w"))
    # Later than any process could still sign with the old key after the rotation.
    with time_machine.travel(timezone.now() + timedelta(seconds=10)):
        new = body_login(user)
        assert jwt.get_unverified_header(new["accessToken"])["kid"] != old_kid
        assert me(old["accessToken"]).status_code == 200
        assert me(new["accessToken"]).status_code == 200
        assert len(APIClient().get("/.well-known/jwks.json").json()["keys"]) == 2

        with pytest.raises(CommandError, match="1 live session"):  # old's refresh token: signed by old_kid
            call_command("jwt_keys", "retire", old_kid)
        assert me(old["accessToken"]).status_code == 200
        out = io.StringIO()
        call_command("jwt_keys", "retire", old_kid, "--force", stdout=out)
        assert "1 session(s) that may hold its refresh tokens end" in out.getvalue()
        assert me(old["accessToken"]).json()["code"] == "token_not_valid"
        refused = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {old['refreshToken']}")
        assert refused.json()["code"] == "token_not_valid"
        assert me(new["accessToken"]).status_code == 200
        assert [k["kid"] for k in APIClient().get("/.well-known/jwks.json").json()["keys"]] == kids(keys_dir)


def test_the_signing_key_cannot_be_retired(keys_dir):
    with pytest.raises(CommandError, match="signing key"):
        call_command("jwt_keys", "retire", kids(keys_dir)[0])


def test_retiring_an_unknown_kid_is_an_error(keys_dir):
    with pytest.raises(CommandError, match="No key"):
        call_command("jwt_keys", "retire", "nope")


def test_jwt_keys_list_shows_which_key_signs(keys_dir):
    from io import StringIO

    out = StringIO()
    call_command("jwt_keys", "list", stdout=out)
    assert f"{kids(keys_dir)[0]}  signing" in out.getvalue()


def jwt_keys(*args) -> tuple[str, str]:
    """``manage.py jwt_keys *args``: what it printed, and what it warned."""
    out, err = io.StringIO(), io.StringIO()
    call_command("jwt_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def signing_kid(user) -> str:
    return jwt.get_unverified_header(body_login(user)["accessToken"])["kid"]


def published_kids() -> list[str]:
    return sorted(key["kid"] for key in APIClient().get("/.well-known/jwks.json").json()["keys"])


def test_an_added_key_is_published_at_once_and_signs_only_once_promoted(keys_dir, user):
    (old_kid,) = kids(keys_dir)
    old = body_login(user)

    added, _ = jwt_keys("add")
    (new_kid,) = set(kids(keys_dir)) - {old_kid}
    safe_from = timezone.now() + timedelta(seconds=tokens.KEYS_DIR_RECHECK_SECONDS + 300)
    assert f"Added {new_kid}" in added and f"jwt_keys promote {new_kid}" in added
    assert f"from {safe_from:%Y-%m-%d %H:%M}" in added  # once JWKS caches (max-age=300) have expired
    assert published_kids() == sorted([old_kid, new_kid])
    assert signing_kid(user) == old_kid
    listed, _ = jwt_keys("list")
    assert f"{old_kid}  signing" in listed
    assert (
        f"{new_kid}  verification" in listed and "only verifies, never signed: safe to promote from" in listed
    )

    with time_machine.travel(safe_from + timedelta(seconds=1)):
        promoted, warned = jwt_keys("promote", new_kid)
        assert f"{new_kid} is the signing key" in promoted and f"{old_kid} only verifies" in promoted
        assert warned == ""
        assert signing_kid(user) == new_kid
        assert me(old["accessToken"]).status_code == 200  # the old key still verifies
        listed, _ = jwt_keys("list")
    assert f"{new_kid}  signing" in listed and f"{old_kid}  verification" in listed
    assert "never signed" not in listed


def test_promoting_an_added_key_before_jwks_caches_expire_says_until_when_they_may_refuse(keys_dir, user):
    (old_kid,) = kids(keys_dir)
    jwt_keys("add")
    (new_kid,) = set(kids(keys_dir)) - {old_kid}

    _, warned = jwt_keys("promote", new_kid)

    assert "may refuse its tokens until" in warned
    assert signing_kid(user) == new_kid  # promoted all the same: as `rotate` would have


@pytest.mark.parametrize("kid", ["nope", "0" * 32])
def test_promoting_a_kid_that_is_not_in_the_ring_is_refused(keys_dir, user, kid):
    (signing,) = kids(keys_dir)
    with pytest.raises(CommandError, match="No key"):
        jwt_keys("promote", kid)
    assert signing_kid(user) == signing and kids(keys_dir) == [signing]


def test_retiring_the_key_an_added_key_replaced_counts_the_sessions_it_signed_until_the_promotion(
    keys_dir, user
):
    (old_kid,) = kids(keys_dir)
    jwt_keys("add")
    (new_kid,) = set(kids(keys_dir)) - {old_kid}
    an_hour_ago = (timezone.now() - timedelta(hours=1)).timestamp()
    for name in (f"{new_kid}.pem", f"{new_kid}.pending"):  # added an hour ago, promoted only now
        os.utime(keys_dir / name, (an_hour_ago, an_hour_ago))
    body_login(user)  # signed by the old key, long after the new one was added
    jwt_keys("promote", new_kid)

    with pytest.raises(CommandError, match="1 live session"):
        jwt_keys("retire", old_kid)


def test_an_added_key_that_never_signed_is_retired_without_ending_any_session(keys_dir, user):
    signed_in = body_login(user)
    jwt_keys("add")
    (added,) = set(kids(keys_dir)) - {signing_kid(user)}

    retired, _ = jwt_keys("retire", added)

    assert "never signed" in retired
    assert kids(keys_dir) == [signing_kid(user)] and not list(keys_dir.glob(f"{added}.*"))
    assert me(signed_in["accessToken"]).status_code == 200


def test_a_key_may_be_retired_jwt_refresh_ttl_after_it_stopped_signing_as_the_readme_and_help_say(
    keys_dir, user, settings, capsys
):
    """Refresh tokens are re-signed by the signing key at each refresh and live JWT_REFRESH_TTL:
    the last one the old key signed is dead that long after it stopped, however long its session
    (JWT_SESSION_MAX) may still run."""
    (old_kid,) = kids(keys_dir)
    body_login(user)
    jwt_keys("rotate")
    with pytest.raises(CommandError, match="JWT_REFRESH_TTL"):
        jwt_keys("retire", old_kid)
    assert settings.JWT_SESSION_MAX > settings.JWT_REFRESH_TTL

    with time_machine.travel(timezone.now() + settings.JWT_REFRESH_TTL + timedelta(seconds=1)):
        jwt_keys("retire", old_kid)  # no live session holds its tokens any more: no --force needed

    readme = (PROJECT_ROOT / "README.md").read_text()
    rotation = readme.split("- **Key rotation without logouts**", 1)[1].split("\n- **Sessions**", 1)[0]
    assert "JWT_REFRESH_TTL" in rotation and "JWT_SESSION_MAX" not in rotation
    capsys.readouterr()
    with pytest.raises(SystemExit):
        call_command("jwt_keys", "retire", "--help")
    assert "JWT_REFRESH_TTL" in capsys.readouterr().out


@pytest.mark.parametrize("action", [["list"], ["rotate"], ["retire", "whatever"]])
def test_a_file_in_the_keys_folder_that_is_not_a_key_is_named_not_a_traceback(keys_dir, action):
    (keys_dir / "notes.pem").write_text("not a key")
    with pytest.raises(CommandError, match=r"notes\.pem is not a PEM private key"):
        call_command("jwt_keys", *action)
    assert len(kids(keys_dir)) == 2  # rotate added nothing: the folder is the operator's to fix first


@pytest.mark.parametrize(
    "stray",
    [
        pytest.param(lambda path: path.write_text("-----BEGIN PRIVATE KEY-----\nMIIE"), id="half-copied"),
        pytest.param(lambda path: path.mkdir(), id="a-directory"),
        pytest.param(lambda path: path.symlink_to(path.with_name("gone")), id="a-dangling-link"),
        pytest.param(lambda path: path.write_bytes(private_key_pem(_ec_key())), id="a-tls-key"),
        pytest.param(
            lambda path: path.write_bytes(private_key_pem(ed448.Ed448PrivateKey.generate())), id="ed448"
        ),
        pytest.param(
            lambda path: path.write_bytes(private_key_pem(x25519.X25519PrivateKey.generate())), id="x25519"
        ),
    ],
)
def test_a_stray_file_in_the_keys_folder_is_left_out_and_said_not_fatal(keys_dir, user, caplog, stray):
    signed_in = body_login(user)
    stray(keys_dir / "stray.pem")

    # Every request and sign-in goes on, in this process and in one starting now (a worker
    # gunicorn replaces: if it refused to start, gunicorn would stop the whole server).
    assert me(signed_in["accessToken"]).status_code == 200
    key_ring_reset()
    assert me(signed_in["accessToken"]).status_code == 200
    assert body_login(user)["accessToken"]
    assert "JWT_KEYS_DIR: left out what is not a usable key" in caplog.text and "stray.pem" in caplog.text


def _ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def test_a_key_of_another_type_is_named_by_jwt_keys_and_does_not_hold_up_a_rotation(keys_dir):
    key_ring()
    (keys_dir / "tls.pem").write_bytes(private_key_pem(_ec_key()))

    with pytest.raises(CommandError, match=r"tls\.pem is a ECPrivateKey: JWT keys are RSA or Ed25519"):
        call_command("jwt_keys", "list")
    rotated = keys_dir_add(keys_dir, algorithm="RS256")  # another host rotates meanwhile
    assert key_ring().signing.kid == rotated


def test_a_key_file_removed_while_another_file_is_broken_is_no_longer_trusted(keys_dir, user):
    old = body_login(user)
    old_kid = kids(keys_dir)[0]
    call_command("jwt_keys", "rotate", stdout=open(os.devnull, "w"))
    (keys_dir / "stray.pem").write_text("not a key")

    (keys_dir / f"{old_kid}.pem").unlink()  # a compromised key, taken out by hand

    assert me(old["accessToken"]).json()["code"] == "token_not_valid"


def test_an_unreadable_signing_key_keeps_a_running_process_on_its_keys_and_stops_a_new_one(
    keys_dir, user, caplog
):
    signed_in = body_login(user)
    (keys_dir / "current.new").write_bytes(b"\xff\xfe not text")
    (keys_dir / "current.new").replace(keys_dir / "current")  # as an editor or a copy saves it

    assert me(signed_in["accessToken"]).status_code == 200
    assert "JWT keys not reloaded" in caplog.text
    key_ring_reset()
    with pytest.raises(ImproperlyConfigured, match="current cannot be read"):
        key_ring()


def test_a_signing_key_withdrawn_by_hand_while_current_is_broken_fails_closed(keys_dir, user):
    signed_in = body_login(user)
    compromised = kids(keys_dir)[0]
    (keys_dir / f"{compromised}.pem").unlink()  # withdrawn; its replacement is a broken copy
    (keys_dir / "replacement.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIIE")
    (keys_dir / "current").write_text("replacement\n")

    # Nothing is signed or accepted with the withdrawn key: 503, not its tokens, not new ones.
    assert (me(signed_in["accessToken"]).status_code, me(signed_in["accessToken"]).json()["code"]) == (
        503,
        "auth_unavailable",
    )
    refused = login(APIClient(), user, tokenDelivery="body")
    assert (refused.status_code, refused.json()["code"]) == (503, "auth_unavailable")
    status = APIClient().get("/.well-known/jwks.json")
    assert status.status_code == 503

    # Fixed by the operator: a new key signs, the withdrawn one stays out.
    (keys_dir / "replacement.pem").unlink()
    (keys_dir / "current").unlink()
    call_command("jwt_keys", "rotate", stdout=open(os.devnull, "w"))
    assert me(body_login(user)["accessToken"]).status_code == 200
    assert me(signed_in["accessToken"]).json()["code"] == "token_not_valid"


def test_a_keys_folder_that_disappears_fails_closed_until_it_is_back(keys_dir, user):
    signed_in = body_login(user)
    aside = keys_dir.with_name("keys-aside")
    keys_dir.rename(aside)  # an unmounted volume, a mistaken rm -r

    assert me(signed_in["accessToken"]).json()["code"] == "auth_unavailable"
    aside.rename(keys_dir)
    assert me(signed_in["accessToken"]).status_code == 200


def test_a_change_landing_while_the_folder_is_read_is_picked_up_at_the_next_look(keys_dir, monkeypatch):
    real_scan = tokens.keys_dir_scan
    rotated = []

    def scan_then_another_host_rotates(path):
        contents = real_scan(path)
        if not rotated:
            rotated.append(keys_dir_add(keys_dir, algorithm="RS256"))
        return contents

    os.utime(keys_dir, (0, 0))  # the next look reads the folder again
    monkeypatch.setattr(tokens, "keys_dir_scan", scan_then_another_host_rotates)
    key_ring()
    monkeypatch.setattr(tokens, "keys_dir_scan", real_scan)

    assert key_ring().signing.kid == rotated[0]  # seen, not taken for already read


def test_a_process_starting_while_another_host_rotates_starts(keys_dir, monkeypatch):
    real_read = key_files._current_read
    rotated = []

    def another_host_rotates_then_read(path):
        if not rotated:
            rotated.append(keys_dir_add(keys_dir, algorithm="RS256"))
        return real_read(path)

    monkeypatch.setattr(key_files, "_current_read", another_host_rotates_then_read)
    key_ring_reset()
    assert key_ring().signing.kid == rotated[0]


def test_a_folder_that_cannot_be_loaded_is_tried_again_when_it_changes_not_at_every_look(
    keys_dir, user, caplog
):
    key_ring()
    (keys_dir / "current.new").write_bytes(b"\xff\xfe not text")
    (keys_dir / "current.new").replace(keys_dir / "current")
    for _ in range(5):
        key_ring()
    assert caplog.text.count("JWT keys not reloaded") == 1


def test_a_rotation_never_shows_a_half_written_key_file(keys_dir, monkeypatch):
    seen = []
    real_write = Path.write_bytes

    def write_then_look(path, data):
        written = real_write(path, data)
        seen.append(kids(keys_dir))  # what a replica re-reading the folder now would load
        return written

    monkeypatch.setattr(Path, "write_bytes", write_then_look)
    before = kids(keys_dir)
    new_kid = keys_dir_add(keys_dir, algorithm="RS256")
    assert seen == [before] and sorted([*before, new_kid]) == kids(keys_dir)
    assert not [p for p in keys_dir.iterdir() if p.name.endswith(".tmp")]


def test_key_files_are_private(keys_dir):
    assert all(p.stat().st_mode & 0o077 == 0 for p in keys_dir.glob("*.pem"))


def test_jwks_serves_only_public_keys_and_is_cacheable(db):
    response = APIClient().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("public, max-age=")
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_jwks_verifies_a_token_like_a_gateway_would(bearer_client, user):
    import jwt

    token = bearer_client(user).tokens["accessToken"]
    jwks = jwt.PyJWKSet.from_dict(APIClient().get("/.well-known/jwks.json").json())
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], issuer="qdrant-portal", audience="qdrant-portal"
    )
    assert claims["sub"] == str(user.pk)


def _serve(env_overrides: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", JWT_KEYS_DIR=str(tmp_path / "empty"), **env_overrides
    )
    return subprocess.run(
        [sys.executable, "-c", "from config.wsgi import application"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "starts"),
    [
        ({"DJANGO_DEBUG": "0"}, False),
        ({"DJANGO_DEBUG": "0", "JWT_PRIVATE_KEYS": "-----BEGIN PRIVATE KEY-----\nnot a key"}, False),
        ({"DJANGO_DEBUG": "0", "JWT_ALGORITHM": "HS256", "JWT_SECRET": "short"}, False),
        ({"DJANGO_DEBUG": "0", "JWT_ALGORITHM": "HS256", "JWT_SECRET": "x" * 40}, True),
        ({"DJANGO_DEBUG": "1"}, True),
    ],
    ids=["production-without-keys", "broken-pem", "short-secret", "hs256-secret", "development-generates"],
)
def test_the_server_refuses_to_start_without_usable_keys(tmp_path, env, starts):
    result = _serve(env, tmp_path)
    assert (result.returncode == 0) is starts, result.stderr[-2000:]
    if not starts:
        assert "ImproperlyConfigured" in result.stderr
    if env == {"DJANGO_DEBUG": "1"}:
        assert len(list((tmp_path / "empty").glob("*.pem"))) == 1


@pytest.mark.parametrize("action", [["rotate"], ["add"], ["promote", "abc"], ["retire", "abc"]])
def test_with_jwt_private_keys_set_the_folder_commands_refuse_instead_of_making_an_unused_key(
    keys_dir, settings, action
):
    """The production setup: a key made in the folder would sign nothing now, and sign
    unannounced the day JWT_PRIVATE_KEYS is removed."""
    from accounts.keys import private_key_generate

    settings.JWT_PRIVATE_KEYS = private_key_pem(
        private_key_generate(algorithm=settings.JWT_ALGORITHM)
    ).decode()
    key_ring_reset()
    before = sorted(path.name for path in keys_dir.iterdir()) if keys_dir.exists() else []

    with pytest.raises(CommandError, match="JWT_PRIVATE_KEYS is set"):
        call_command("jwt_keys", *action)

    assert (sorted(path.name for path in keys_dir.iterdir()) if keys_dir.exists() else []) == before


def test_with_jwt_private_keys_set_list_shows_the_ring_in_use(keys_dir, settings):
    from accounts.keys import key_thumbprint, private_key_generate

    signing, older = (private_key_generate(algorithm=settings.JWT_ALGORITHM) for _ in range(2))
    settings.JWT_PRIVATE_KEYS = "".join(private_key_pem(key).decode() for key in (signing, older))
    key_ring_reset()
    out = io.StringIO()

    call_command("jwt_keys", "list", stdout=out)

    assert out.getvalue().splitlines() == [
        f"{key_thumbprint(signing.public_key())}  signing       (JWT_PRIVATE_KEYS)",
        f"{key_thumbprint(older.public_key())}  verification  (JWT_PRIVATE_KEYS)",
    ]
