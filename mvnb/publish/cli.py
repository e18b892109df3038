"""``mvnb publish NOTEBOOK --site DIR``: the command line of :func:`mvnb.publish.publish`.

``add_parser(subparsers)`` adds the subcommand to mvnb's argparse parser; the handler
prints what was redacted, notes and the post's path (last, so scripts can take it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]

EPILOG = """\
cell tags: remove-cell, remove-input, remove-output, hide-input, hide-output, hide-cell,
remove-stderr, prompt-tip, prompt-info, prompt-warning, prompt-danger, preview-image,
liquid (also with underscores). Front matter comes from metadata.mvnb.publish or the first
Markdown cell ("# Title", "> description").
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``publish`` to ``parser.add_subparsers()``; returns the new parser."""
    parser = subparsers.add_parser(
        "publish", help="publish a notebook as a Jekyll (Chirpy) post",
        description="Write a notebook as _posts/YYYY-MM-DD-slug.md and its images as "
                    "assets/img/posts/slug/ in a Jekyll site.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="the .ipynb file")
    parser.add_argument("--site", required=True, metavar="DIR",
                        help="the Jekyll site folder (created when missing)")
    parser.add_argument("--date", metavar="YYYY-MM-DD",
                        help="post date, not in the future (default: now, or the date of "
                             "the earlier publish)")
    parser.add_argument("--execute", action="store_true",
                        help="run the notebook first (nbclient), then publish the result")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="with --execute: the longest a cell may run (default 600)")
    parser.add_argument("--redact", action="append", default=[], metavar="PATH=NAME",
                        help="also show PATH as NAME, e.g. "
                             "~/src/freebsd=<path-to-freebsd-source> (repeatable)")
    parser.add_argument("--check", action="store_true",
                        help="fail, writing nothing, if the post still shows a local path")
    parser.add_argument("--image-links", choices=("auto", "chirpy", "liquid"), default="auto",
                        help="chirpy: media_subpath + file names; liquid: relative_url "
                             "(other themes); auto: chirpy when the site uses it")
    parser.add_argument("--progress", choices=("last", "none"), default="last",
                        help="progress bars: keep their final line, or drop them")
    parser.add_argument("--no-provenance", action="store_true",
                        help="leave out the footer with the versions the notebook ran with")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Publish as ``args`` says; errors are mvnb errors, reported by mvnb's main."""
    from .api import publish

    result = publish(
        args.notebook, args.site, date=args.date, execute=args.execute,
        redact=tuple(args.redact), check=args.check, image_links=args.image_links,
        progress=args.progress, provenance_footer=not args.no_provenance,
        timeout=args.timeout)
    print(result)
    sys.stdout.flush()
    return 0
