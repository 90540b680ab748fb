"""The `postbud` command line."""

def main() -> None:
    from postbud.cli.app import app

    app()
