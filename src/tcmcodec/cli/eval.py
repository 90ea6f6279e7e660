"""``tcm eval``: rate-distortion evaluation of our models and classical codecs on a dataset.

Writes to ``--out``: one ``<codec>.json`` per codec (CompressAI results format plus
``quality``, ``settings`` and ``per_image``), ``<codec>.rows.jsonl`` (per-image rows, written
as they finish), ``bdrate.md`` (also printed) and ``rd.png``. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcmcodec.errors import TcmError

HELP = "rate-distortion evaluation against JPEG, WebP, AVIF, JPEG XL, HEIC, JPEG 2000 (BD-rates, plot)"

_EPILOG = """\
codecs: jpeg, webp, avif, jxl, heic, jpeg2000, tcm:MODEL, tcm:checkpoint=PATH
  (tcm:MODEL+refine=10: encode with 10 steps of latent refinement, ~20x slower)
qualities: CODEC=Q1,Q2,...;CODEC=... e.g. 'jpeg=10,30,50;webp=20,60;tcm=1,3,6'
  (jpeg2000 takes target bpp values, e.g. 'jpeg2000=0.25,0.5,1'; codecs not named keep
  their default sweep; a bare list 'Q1,Q2' is allowed when one codec is evaluated)
example: tcm eval /data/kodak --codecs tcm:tcm-mse,jpeg,webp,avif --out results/kodak \\
         --reference vtm.json --reference bpg_444_x265_ycbcr.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("dataset", metavar="DATASET_DIR", help="folder of images (or one image file)")
    parser.add_argument(
        "--codecs",
        default="jpeg,webp,avif,jxl,heic,jpeg2000",
        help="comma-separated codecs (default: %(default)s)",
    )
    parser.add_argument("--qualities", default=None, help="per-codec quality sweeps, see below")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="FILE.json",
        help="extra curve in CompressAI's results format (plotted dashed, in the BD table); repeatable",
    )
    parser.add_argument(
        "--anchor",
        default=None,
        help="BD-rate anchor: a codec of --codecs or a reference name/file stem (default: jpeg if evaluated)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default: 1)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (sorted by name)")
    parser.add_argument(
        "--min-overlap",
        type=float,
        default=None,
        metavar="FRACTION",
        help="BD-rate overlap rule: below this fraction of the union quality range, no number (default: 0.2)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished rows from an earlier run in --out with the same settings",
    )
    parser.add_argument("--title", default=None, help="title of rd.png and bdrate.md")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _find_anchor(anchor: str | None, codecs, curves, references):
    """The anchor Curve, or None; ``anchor`` matched against codec names/aliases, curve names, file stems."""
    from tcmcodec.evaluate.codecs import ALIASES

    if anchor is None:
        for c in curves:
            if c.extra.get("codec") == "jpeg":
                return c
        return curves[0] if curves else None
    key = anchor.strip().lower()
    key = ALIASES.get(key, key)
    for c in curves:
        if (c.extra.get("codec") or "").lower() == key or c.name.lower() == key:
            return c
    for c in references:
        if c.name.lower() == key or Path(c.source).stem.lower() == key or c.source == anchor:
            return c
    return None


def run(args: argparse.Namespace) -> int:
    from tcmcodec.evaluate import bdrate, plots, runner
    from tcmcodec.evaluate.codecs import get_codec, parse_codec_list, parse_qualities

    specs = parse_codec_list(args.codecs)
    if not specs:
        raise TcmError("--codecs is empty")
    codecs = [get_codec(s) for s in specs]
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise TcmError(f"--codecs lists a codec twice: {args.codecs}")
    qualities = parse_qualities(args.qualities, names)
    if args.workers < 1:
        raise TcmError("--workers must be at least 1")
    min_overlap = bdrate.MIN_OVERLAP if args.min_overlap is None else args.min_overlap
    if not 0.0 <= min_overlap <= 1.0:
        raise TcmError("--min-overlap must be between 0 and 1")
    references = [bdrate.Curve.from_file(p, kind="reference") for p in args.reference]
    if args.anchor is not None:
        from tcmcodec.evaluate.codecs import ALIASES

        key = ALIASES.get(args.anchor.strip().lower(), args.anchor.strip().lower())
        known = {n.lower() for n in names} | {c.label.lower() for c in codecs}
        known |= {r.name.lower() for r in references} | {Path(r.source).stem.lower() for r in references}
        if key not in known and args.anchor not in args.reference:
            raise TcmError(f"--anchor {args.anchor!r} is neither in --codecs nor a --reference")
    images = runner.list_images(args.dataset, args.limit)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise TcmError(f"--out is not a folder: {out}")

    print(f"evaluating {len(codecs)} codec(s) on {len(images)} image(s) from {args.dataset} -> {out}", file=sys.stderr)
    result = runner.run_evaluation(
        images,
        codecs,
        out,
        qualities=qualities,
        workers=args.workers,
        progress=not args.no_progress,
        resume=args.resume,
        dataset=str(args.dataset),
    )

    curves = []
    for name, data in result.results.items():
        if data["results"]["bpp"]:
            curves.append(bdrate.Curve.from_results(data, source=str(result.files[name])))
    all_curves = curves + references
    if not all_curves:
        raise TcmError("no codec produced results" + (f" (skipped: {', '.join(result.skipped)})" if result.skipped else ""))

    anchor = _find_anchor(args.anchor, codecs, curves, references)
    notes = []
    if anchor is None:
        anchor = all_curves[0]
        notes.append(f"anchor {args.anchor or 'jpeg'} has no results; using {anchor.name} instead")
    for name, reason in result.skipped.items():
        notes.append(f"skipped {name}: {reason}")

    rows = bdrate.bd_table(all_curves, anchor, min_overlap)
    table = bdrate.format_markdown(rows, anchor.name, min_overlap, title=args.title)
    table += f"\nDataset: `{args.dataset}`, {len(images)} image(s).\n"
    if notes:
        table += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (out / "bdrate.md").write_text(table)
    plots.plot_rd(all_curves, out / "rd.png", title=args.title)
    print(table)
    print(f"wrote {', '.join(str(p.name) for p in result.files.values())}, bdrate.md, rd.png in {out}", file=sys.stderr)
    return 0
