"""The confirmation page's HTML: the checklist and each step's form, in Danish and the console's look
(inline: the page must look right whether or not the console is enabled; it carries no script)."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

from delivery.onboarding import Step

_PAGE = """<!doctype html><html lang="da"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · postbud</title>
<style>body{{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2733;background:#f6f8fa}}
header{{background:#fff;border-bottom:1px solid #d8dee6;padding:.5rem 1rem;font-weight:700;color:#0b5cad}}
main{{max-width:34rem;margin:2rem auto;padding:1rem;background:#fff;border:1px solid #d8dee6;border-radius:6px}}
h1{{font-size:1.4rem;margin:.3rem 0 1rem}}button{{background:#0b5cad;color:#fff;border:0;border-radius:4px;
padding:.6rem 1rem;font-size:1rem;cursor:pointer}}button.plain{{background:#fff;color:#0b5cad;border:1px solid #0b5cad}}
form{{margin:1rem 0}}label{{display:block;margin:.3rem 0}}input[type=text]{{font-size:1.1rem;padding:.4rem;width:12rem}}
ol.steps{{padding-left:1.4rem;color:#5b6b7c}}ol.steps li.done{{color:#1a7f37}}ol.steps li.done::marker{{content:"✓ "}}
ol.steps li.current{{color:#1d2733;font-weight:600}}.bad{{color:#b42318;font-weight:600}}
.secret{{font:1.3rem/1.6 ui-monospace,monospace;background:#fff8e1;border:1px solid #e6c200;padding:.5rem;border-radius:4px}}
</style></head>
<body><header>postbud</header><main><h1>{title}</h1>{steps}<p id="lead">{text}</p>{body}</main></body></html>"""

_CHECKLIST = (
    (Step.INVITED, "Invitation modtaget"),
    (Step.ADDRESS_CONFIRMED, "Adresse bekræftet"),
    (Step.KEY_PROVIDED, "Nøgle givet og kontrolleret"),
    (Step.TEST_LETTER_SENT, "Krypteret testbrev sendt"),
    (Step.APPROVED, "Kode bekræftet – godkendt"),
)
_ORDER = [s for s, _ in _CHECKLIST]


def page(title: str, text: str, body: str = "", *, step: Step | None = None, status: int = 200) -> HTMLResponse:
    """One page; `body` is trusted HTML built here, `title` and `text` are escaped."""
    return HTMLResponse(_PAGE.format(title=html.escape(title), text=html.escape(text), body=body,
                                     steps=checklist(step) if step is not None else ""),
                        status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                                     "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"})


def checklist(step: Step) -> str:
    reached = _ORDER.index(step) if step in _ORDER else -1
    items = []
    for i, (name, label) in enumerate(_CHECKLIST):
        state = "done" if i <= reached else "current" if i == reached + 1 else "todo"
        items.append(f'<li class="{state}" data-step="{name.value}">{html.escape(label)}</li>')
    return f'<ol class="steps" id="checklist">{"".join(items)}</ol>'


def refusal(reason: str) -> str:
    return f'<p class="bad" id="refusal">{html.escape(reason)}</p>'


def confirm_form() -> str:
    return ('<form method="post"><input type="hidden" name="action" value="confirm">'
            '<button id="confirm" type="submit">Bekræft</button></form>')


def key_forms(*, may_issue: bool) -> str:
    upload = ('<form method="post" enctype="multipart/form-data"><input type="hidden" name="action" value="upload">'
              '<label for="key">Dit S/MIME-certifikat (PEM eller DER) eller din offentlige OpenPGP-nøgle</label>'
              '<input id="key" name="key" type="file" accept=".pem,.crt,.cer,.der,.asc,.gpg,.pgp,.pub" required> '
              '<button id="upload" type="submit">Send nøglen</button></form>')
    if not may_issue:
        return upload
    return upload + ('<p>Har du ikke et certifikat, kan din organisation udstede et til dig. Du får filen pr. '
                     'mail; adgangskoden til den vises kun her, én gang.</p>'
                     '<form method="post"><input type="hidden" name="action" value="issue">'
                     '<button class="plain" id="issue" type="submit">Udsted et certifikat til mig</button></form>')


def code_form() -> str:
    return ('<form method="post"><input type="hidden" name="action" value="code">'
            '<label for="code">Koden fra testbrevet</label>'
            '<input id="code" name="code" type="text" autocomplete="one-time-code" required> '
            '<button id="send-code" type="submit">Bekræft koden</button></form>' + resend_form())


def resend_form() -> str:
    return ('<form method="post"><input type="hidden" name="action" value="resend">'
            '<button class="plain" id="resend" type="submit">Send et nyt testbrev</button></form>')


def passphrase_box(passphrase: str) -> str:
    return ('<p>Adgangskoden til certifikatfilen (vises kun denne ene gang; skriv den ned, før du går videre):</p>'
            f'<p class="secret" id="passphrase">{html.escape(passphrase)}</p>')


def other_key(forms: str) -> str:
    return f'<details id="other-key"><summary>Brug en anden nøgle, eller få et nyt certifikat</summary>{forms}</details>'
