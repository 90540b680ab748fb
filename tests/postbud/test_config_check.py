"""`config check` loads everything `run` will load and reports every problem at once with file:line;
`run` refuses the same configurations with one line per problem instead of a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postbud.cli.app import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

RECIPIENTS = """\
[org.12345678]
default_channel = "email"

[org.12345678.recipients.reception]
name = "Reception"
email = "reception@example.dk"
"""


def write(tmp_path: Path, extra: str = "", *, org: str = 'default_route = ["reception"]',
          mailbox: str = "") -> Path:
    """A config with one organisation and a drop folder; `extra` goes before the organisation."""
    (tmp_path / "drop").mkdir(exist_ok=True)
    path = tmp_path / "postbud.toml"
    path.write_text(textwrap.dedent("""\
        [database]
        url = "sqlite:///var/postbud.db"
        [http]
        listen = "127.0.0.1:0"
        """) + textwrap.dedent(extra) + textwrap.dedent(f"""\
        [[organisations]]
        cvr = "12345678"
        name = "Test ApS"
        {org}
        [[organisations.mailboxes]]
        name = "drop"
        type = "folder"
        path = "drop"
        {mailbox}
        """), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def check(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["-c", str(path), "config", "check"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POSTBUD_DATABASE_URL", "POSTBUD_KEYRING", "POSTBUD_TEST_API_TOKEN", "POSTBUD_TEST_SMTP"):
        monkeypatch.delenv(name, raising=False)


def test_a_good_config_passes(tmp_path: Path) -> None:
    (tmp_path / "recipients.toml").write_text(RECIPIENTS)
    code, stderr = check(write(tmp_path, '[recipients]\nfile = "recipients.toml"\n'))
    assert (code, stderr) == (0, "")


def test_a_missing_rules_directory_fails_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[rules]\ndirectory = "no-such-rules"\n')
    code, stderr = check(path)
    assert code == 1
    assert f"{path}:{line_of(path, 'no-such-rules')}: rules.directory: " in stderr
    assert "no-such-rules is not a folder" in stderr


def test_rules_that_do_not_load_fail_with_their_file_line_and_column(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.toml").write_text('[[rule]]\nname = "x"\nroute = ["finance"]\nsender.bogus = "y"\n')
    code, stderr = check(write(tmp_path, '[rules]\ndirectory = "rules"\n'))
    assert code == 1
    assert f"{rules / 'a.toml'}:4:" in stderr


@pytest.mark.parametrize("section", [
    '[api]\nenabled = true\n[api.tokens]\n"12345678" = [{ env = "POSTBUD_TEST_API_TOKEN" }]\n',
    '[delivery]\nsmtp_password = { env = "POSTBUD_TEST_SMTP" }\n',
])
def test_an_unset_secret_the_daemon_needs_fails(tmp_path: Path, section: str) -> None:
    path = write(tmp_path, section)
    code, stderr = check(path)
    assert code == 1
    variable = "POSTBUD_TEST_API_TOKEN" if "api" in section else "POSTBUD_TEST_SMTP"
    assert f"{path}:{line_of(path, variable)}: " in stderr
    assert f"environment variable {variable} is not set" in stderr


def test_a_short_api_token_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTBUD_TEST_API_TOKEN", "short")
    code, stderr = check(write(tmp_path, '[api]\nenabled = true\n[api.tokens]\n'
                               '"12345678" = [{ env = "POSTBUD_TEST_API_TOKEN" }]\n'))
    assert code == 1 and "too short" in stderr


def test_a_broken_or_missing_recipients_file_fails(tmp_path: Path) -> None:
    path = write(tmp_path, '[recipients]\nfile = "recipients.toml"\n')
    code, stderr = check(path)
    assert code == 1 and f"{path}:{line_of(path, 'recipients.toml')}: recipients.file: " in stderr

    broken = tmp_path / "recipients.toml"
    broken.write_text(RECIPIENTS + 'colour = "blue"\n')
    code, stderr = check(path)
    assert code == 1 and f"{broken}:7: " in stderr


def test_a_default_route_to_an_unknown_recipient_fails(tmp_path: Path) -> None:
    (tmp_path / "recipients.toml").write_text(RECIPIENTS)
    path = write(tmp_path, '[recipients]\nfile = "recipients.toml"\n', org='default_route = ["frontdesk"]')
    code, stderr = check(path)
    assert code == 1
    assert f"{path}:{line_of(path, 'frontdesk')}: organisations[0].default_route: frontdesk not in" in stderr
    assert "(known: reception)" in stderr


def test_a_mailbox_secret_that_is_not_set_fails(tmp_path: Path) -> None:
    path = write(tmp_path, mailbox='token = { env = "POSTBUD_TEST_SMTP" }')
    code, stderr = check(path)
    assert code == 1 and "POSTBUD_TEST_SMTP is not set" in stderr


def test_an_unknown_key_in_a_main_section_does_not_hide_the_mailbox_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\n", mailbox="setle_seconds = 1")
    path.write_text(path.read_text().replace('[http]\nlisten = "127.0.0.1:0"\n[http]\n',
                                             '[http]\nlisten = "127.0.0.1:0"\nport = 1\n'))
    code, stderr = check(path)
    assert code == 1
    assert f"{path}:{line_of(path, 'port = 1')}: http.port: unknown key" in stderr
    assert f"{path}:{line_of(path, 'setle_seconds')}: organisations[0].mailboxes[0].setle_seconds: unknown key" \
        in stderr


def test_the_example_config_passes() -> None:
    code, stderr = check(ROOT / "config.example.toml")
    assert (code, stderr) == (0, "")


@pytest.mark.parametrize("section", [
    '[rules]\ndirectory = "no-such-rules"\n',
    '[api]\nenabled = true\n[api.tokens]\n"12345678" = [{ env = "POSTBUD_TEST_API_TOKEN" }]\n',
])
def test_run_refuses_with_one_line_per_problem_not_a_traceback(tmp_path: Path, section: str) -> None:
    result = runner.invoke(app, ["-c", str(write(tmp_path, section)), "run", "--once"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "refused" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # the problem, then what to do
    assert not (tmp_path / "var" / "postbud.db").exists()  # nothing started


def test_a_missing_certificate_of_a_mailbox_fails(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text() + textwrap.dedent("""\
        [[organisations.mailboxes]]
        name = "digital-post"
        type = "ngdp"
        system_id = "0690685f-a865-4bfe-b2a7-3383ecd90dcf"
        api_token = "not-a-secret-ref-but-checked-elsewhere"
        client_cert = "certs/system.pem"
        client_key = "certs/system-key.pem"
        """))
    code, stderr = check(path)
    assert code == 1
    assert f"{path}:{line_of(path, 'certs/system.pem')}: organisations[0].mailboxes[1].client_cert: " in stderr
    assert "system-key.pem does not exist" in stderr
