"""The console in headless Chromium (Selenium) on `make run`'s daemon and sandbox: sign in, place a held
letter from the dropdown and see it delivered encrypted, search and resend, download, read a chart; a
wrong password, an expired session and a CSRF-less post are refused; the onboarding demo recipient walks
the whole checklist on the confirmation page with an uploaded key. Skips when chromium is absent."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postbud.test_readme_examples import PORTS, ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
DOCS = ROOT / "docs"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="chromium and chromedriver are not installed")]


class Demo:
    def __init__(self, folder: Path, base: str, passwords: dict[str, str]) -> None:
        self.folder, self.base, self.passwords = folder, base, passwords

    def mails(self) -> list[email.message.Message]:
        return [email.message_from_bytes(p.read_bytes()) for p in sorted((self.folder / "var/sandbox/mail").glob("*.eml"))]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make run`: the example config's daemon with the sandbox and the console, until its queue has work."""
    if not (ROOT / ".venv" / "bin" / "postbud").exists():
        pytest.skip("no .venv with the postbud command (make venv)")
    folder = tmp_path_factory.mktemp("demo")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    ports = {name: free_port() for name in PORTS}
    for name, default in PORTS.items():
        text = text.replace(str(default), str(ports[name]))
    (folder / "config.example.toml").write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "rules", folder / "rules", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    log = (folder / "daemon.log").open("w")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/postbud"), "-c", "config.example.toml", "run"], cwd=folder,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{ports['http']}/console"
    try:
        passwords: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(passwords) < 2:
            time.sleep(0.5)
            passwords = dict(re.findall(r"^  (demo-\w+)\s+(\S+)\s+\(", (folder / "daemon.log").read_text(), re.M))
            assert proc.poll() is None, (folder / "daemon.log").read_text()[-3000:]
        assert len(passwords) == 2, (folder / "daemon.log").read_text()[-3000:]
        # the passwords are on the terminal only: no file of the demo holds them
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "daemon.log":
                assert not any(p.encode() in path.read_bytes() for p in passwords.values()), path
        yield Demo(folder, base, passwords)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def browser(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900",
                "--disable-gpu"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.implicitly_wait(2)
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def wait(until: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = until()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def result_rows(driver: Any) -> list[tuple[str, str]]:
    """The search results as (row text, letter link); empty while the page is being replaced."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return [(row.text, row.find_element(By.TAG_NAME, "a").get_attribute("href"))
                for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
    except StaleElementReferenceException:
        return []


def row_texts(driver: Any, table: str) -> list[str]:
    """A table's rows as text, read at once; empty while a form's answer replaces the page."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return [row.text for row in driver.find_elements(By.CSS_SELECTOR, f"{table} tbody tr")]
    except StaleElementReferenceException:
        return []


def heading(driver: Any) -> str:
    """The page's h1 as text; empty while a form's answer replaces the page."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.TAG_NAME, "h1").text)
    except StaleElementReferenceException:
        return ""


def sign_in(driver: Any, demo: Demo, user: str, password: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{demo.base}/signin")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password or demo.passwords[user])
    driver.find_element(By.ID, "signin").click()
    if password is None:
        wait(lambda: "/signin" not in driver.current_url)


def screenshot(driver: Any, name: str) -> None:
    """The README's pictures: refreshed into docs/ when POSTBUD_SCREENSHOTS=1, else only taken."""
    folder = DOCS if os.environ.get("POSTBUD_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp())
    folder.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(folder / name))


def test_a_wrong_password_is_refused(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, demo, "demo-reception", "not the password at all")
    assert "Forkert brugernavn eller adgangskode" in browser.find_element(By.ID, "flash").text
    assert browser.get_cookie("postbud_console") is None


def test_sign_in_through_the_sandbox_identity_provider(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{demo.base}/signin")
    browser.find_element(By.ID, "signin-oidc").click()  # "Log ind med Sandbox-login"
    browser.find_element(By.ID, "person-rasmus").click()  # at the provider: Rasmus, demo-reception
    wait(lambda: browser.current_url.endswith("/console/queue"))
    assert "demo-reception" in browser.find_element(By.CLASS_NAME, "who").text
    browser.delete_all_cookies()
    browser.get(f"{demo.base}/signin")
    browser.find_element(By.ID, "signin-oidc").click()
    browser.find_element(By.ID, "person-ukendt").click()  # no account: refused, and told why
    assert "ukendt@eksempel.invalid" in wait(lambda: browser.find_element(By.ID, "flash").text)
    assert browser.get_cookie("postbud_console") is None


def test_place_a_held_letter_from_the_dropdown_and_it_is_delivered_encrypted(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, demo, "demo-reception")
    wait(lambda: browser.current_url.endswith("/console/queue"))
    rows = wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr") or browser.refresh())
    assert len(rows) == 3 and "legal notification" in rows[0].text
    screenshot(browser, "console-queue.png")
    before = len(demo.mails())
    rows[0].find_element(By.TAG_NAME, "a").click()
    letter_url = browser.current_url
    letter_id = letter_url.rsplit("/", 1)[1]
    assert browser.find_element(By.ID, "letter-text").text
    Select(browser.find_element(By.ID, "recipient")).select_by_value("legal")
    browser.find_element(By.ID, "place").click()
    # the next held letter opens
    wait(lambda: "/console/queue/" in browser.current_url and letter_id not in browser.current_url)
    assert "placed=legal" in browser.current_url
    # THEN it is delivered, encrypted, to the sandbox's mail server
    mails = wait(lambda: len(demo.mails()) > before and demo.mails())
    # every letter is encrypted; the only plain mail is the onboarding demo's invitation (no letter in it)
    plain = [m for m in mails if m.get_content_type() not in ("application/pkcs7-mime", "multipart/encrypted")]
    assert all(m["To"] == "nyansat@eksempel.invalid" and "Confirm that" in m["Subject"] for m in plain)
    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/trace/{letter_id}")
    wait(lambda: browser.find_element(By.ID, "status").text == "delivered" or browser.refresh())
    assert "legal" in browser.find_element(By.ID, "deliveries").text
    assert "console:demo-reception" in browser.find_element(By.ID, "timeline").text


def test_search_resend_and_download(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/trace")
    browser.find_element(By.ID, "text").send_keys("moms")
    browser.find_element(By.ID, "search-button").click()
    # The unfiltered page lists letters too: read the rows only once the search's page has loaded, and
    # read each row's text and link at once (a reload between finding and reading makes them stale).
    wait(lambda: "text=moms" in browser.current_url)

    def searched_with_a_delivered_letter() -> list[tuple[str, str]] | None:
        rows = result_rows(browser)
        return rows if any("delivered" in text for text, _ in rows) else browser.refresh()

    results = wait(searched_with_a_delivered_letter)
    assert all("moms" in text.lower() for text, _ in results)
    browser.get(next(link for text, link in results if "delivered" in text))
    letter_id = browser.current_url.rsplit("/", 1)[1]
    browser.find_element(By.ID, "resend").click()
    assert "sat til genafsendelse" in browser.find_element(By.ID, "flash").text
    assert "resent" in browser.find_element(By.ID, "timeline").text
    browser.find_element(By.ID, "download").click()
    archive = wait(lambda: next(iter(browser.downloads.glob(f"postbud-{letter_id}.zip")), None))
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist()
    browser.refresh()
    assert "downloaded" in browser.find_element(By.ID, "timeline").text


def test_read_a_chart(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/stats?by=day")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart svg g.bar rect")
    today = browser.find_elements(By.CSS_SELECTOR, "#figures tbody tr")[0].find_elements(By.TAG_NAME, "td")
    assert int(today[1].text) > 0  # collected today, beside the chart
    screenshot(browser, "console-statistics.png")


def test_an_expired_session_and_a_csrf_less_post_are_refused(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, demo, "demo-reception")
    cookie = browser.get_cookie("postbud_console")["value"]
    # a post without the form's token, with the browser's own cookie
    refused = httpx.post(f"{demo.base}/signout", cookies={"postbud_console": cookie}, data={})
    assert refused.status_code == 403
    # the session ends (signed out everywhere from another place): the browser is sent to sign in again
    browser.get(f"{demo.base}/queue")
    page = browser.page_source
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    httpx.post(f"{demo.base}/signout/everywhere", cookies={"postbud_console": cookie}, data={"csrf": token.group(1)})
    browser.get(f"{demo.base}/queue")
    assert browser.current_url.endswith("/console/signin?expired=1")
    assert "udløbet" in browser.find_element(By.ID, "flash").text


def _smime_identity(folder: Path, address: str) -> tuple[Path, Path]:
    """A self-made S/MIME certificate and key for `address` (what a recipient would bring)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "nyansat.pem", folder / "nyansat-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_demo_recipient_walks_the_onboarding_checklist_with_an_uploaded_key(
        browser: Any, demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> None:
    from selenium.webdriver.common.by import By

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    # GIVEN make run's onboarding demo: its invitation is in the mail folder and its link on the terminal
    link = wait(lambda: re.search(r"^  (http://\S+/recipients/confirm/[0-9a-f]+)$",
                                  (demo.folder / "daemon.log").read_text(), re.M)).group(1)
    invitation = next(m for m in demo.mails() if m["To"] == "nyansat@eksempel.invalid")
    assert invitation.get_content_type() == "text/plain" and link in invitation.get_payload(decode=True).decode()
    folder = tmp_path_factory.mktemp("nyansat")
    cert, key = _smime_identity(folder, "nyansat@eksempel.invalid")
    (folder / "not-a-key.txt").write_text("hello")
    # WHEN she confirms her address on the page
    browser.delete_all_cookies()
    browser.get(link)
    assert "Eksempel Holding ApS" in browser.find_element(By.ID, "lead").text
    browser.find_element(By.ID, "confirm").click()
    # THEN she is asked for a key; a file that is not one is refused with one line
    browser.find_element(By.ID, "key").send_keys(str(folder / "not-a-key.txt"))
    browser.find_element(By.ID, "upload").click()
    assert browser.find_element(By.ID, "refusal").text
    before = len(demo.mails())
    browser.find_element(By.ID, "key").send_keys(str(cert))
    browser.find_element(By.ID, "upload").click()
    # AND her certificate brings an encrypted test letter, whose code she types
    code_field = browser.find_element(By.ID, "code")
    letter = wait(lambda: next((p for p in sorted((demo.folder / "var/sandbox/mail").glob("*.eml"))[before:]
                                if b"nyansat@eksempel.invalid" in p.read_bytes()), None))
    assert email.message_from_bytes(letter.read_bytes()).get_content_type() == "application/pkcs7-mime"
    opened = subprocess.run([openssl, "cms", "-decrypt", "-in", str(letter), "-recip", str(cert), "-inkey", str(key)],
                            capture_output=True, timeout=60, check=False)
    assert opened.returncode == 0, opened.stderr
    code = re.search(rb"Din kode er:\s+([A-Z0-9]{4}-[A-Z0-9]{4})", opened.stdout)
    assert code is not None
    screenshot(browser, "onboarding-code.png")
    code_field.send_keys(code.group(1).decode())
    browser.find_element(By.ID, "send-code").click()
    # the click's answer replaces the page: its old heading may still be read once, then go stale
    assert wait(lambda: heading(browser) == "Godkendt", seconds=15)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#checklist li.done")) == 5
    # AND the administrator sees her approved
    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/recipients")
    row = browser.find_element(By.CSS_SELECTOR, "#recipients tr#recipient-nyansat")
    assert row.get_attribute("data-step") == "approved"


def test_an_administrator_adds_a_recipient_the_daemon_takes_up(browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    # GIVEN `make run`: the demo recipient who chose post got the letter addressed to it printed
    assert wait(lambda: list((demo.folder / "var/sandbox/post").glob("*.pdf")))
    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/recipients")
    assert "Vestergade 1" in browser.find_element(By.ID, "recipient-archive").text
    # WHEN the administrator adds a recipient on the page
    browser.find_element(By.ID, "r-id").send_keys("kantine")
    browser.find_element(By.ID, "r-name").send_keys("Kantinen")
    browser.find_element(By.ID, "r-email").send_keys("kantine@eksempel.invalid")
    browser.find_element(By.ID, "save-recipient").click()
    # THEN the page and the recipients file have them, and the running daemon takes the file up
    assert "kantine" in browser.find_element(By.ID, "flash").text
    assert "Kantinen" in browser.find_element(By.ID, "recipient-kantine").text
    text = (demo.folder / "var/sandbox/recipients.toml").read_text(encoding="utf-8")
    assert text.startswith("# Written by the sandbox") and "[org.12345678.recipients.kantine]" in text
    wait(lambda: "recipients file reloaded" in (demo.folder / "daemon.log").read_text(encoding="utf-8"))


def test_trusted_locations_the_demo_admits_loopback_and_an_administrator_authorises_a_network(
        browser: Any, demo: Demo) -> None:
    from selenium.webdriver.common.by import By

    # the demo organisation has trusted locations on with its loopback authorised: the sign-in above worked
    sign_in(browser, demo, "demo-admin")
    browser.get(f"{demo.base}/users")
    browser.find_element(By.ID, "locations-link").click()
    assert "127.0.0.0/8" in browser.find_element(By.ID, "networks").text
    assert browser.find_element(By.ID, "address").text == "127.0.0.1"
    browser.find_element(By.ID, "network").send_keys("198.51.100.0/24")
    browser.find_element(By.ID, "add-network").click()
    # the old page has the table too: wait for the answer's row rather than read rows that may go stale
    row = wait(lambda: next((r for r in row_texts(browser, "#networks") if "198.51.100.0/24" in r), None))
    assert "demo-admin" in row and "127.0.0.1" in row
    browser.get(f"{demo.base}/audit")
    assert "location_authorised" in browser.find_element(By.ID, "audit").text
