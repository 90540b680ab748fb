"""The `postbud` command line: app.py mounts one module per command group; common.py is what they share."""


def main() -> None:
    from postbud.cli.app import app

    app()
