"""The demo's letter by physical post: once per sandbox folder, a letter addressed to the demo recipient
who chose post (`archive`, "Arkivet") is dropped into each organisation's drop folder; the example
rules route it there by its attention line, and the post channel has the sandbox's print-and-mail fake
print it, so `make run` leaves its PDF under `var/sandbox/post/`."""

from __future__ import annotations

from pathlib import Path

from core.config import Config
from core.domain import Attention, Party
from sandbox.demo_held import demo_letter, drop_folders, write_letter

MARKER = "demo-post-written"
RECIPIENT = "archive"
SENDER = Party(id="10213231", id_type="CVR", name="Erhvervsstyrelsen")
TITLE = "Registrering af ændrede vedtægter"
TEXT = ("Erhvervsstyrelsen har registreret selskabets ændrede vedtægter. Vedlagt er den registrerede udgave "
        "til selskabets arkiv. Att.: Arkivet")


def drop_post_letter(config: Config, sandbox_folder: Path) -> int:
    """Write the letter for the post recipient into each organisation's drop folder, once (a marker
    file remembers it, as the drop folder deletes what it collected). Returns how many."""
    if (sandbox_folder / MARKER).exists():
        return 0
    written = 0
    for org, folder in drop_folders(config):
        message = demo_letter(org, "post", SENDER, TITLE, TEXT, attention=Attention(person_name="Arkivet"))
        write_letter(folder, "demo-post.xml", message)
        written += 1
    sandbox_folder.mkdir(parents=True, exist_ok=True)
    (sandbox_folder / MARKER).write_text("the demo's letter by post was dropped once\n", encoding="utf-8")
    return written
