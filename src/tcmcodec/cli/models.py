"""``tcm models``: the registered models and presets."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list")


def run(args: argparse.Namespace) -> int:
    from tcmcodec import zoo
    from tcmcodec.config import PRESETS

    entries = [e.to_json() for e in zoo.list_entries()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        flag = "*" if e["default"] else " "
        state = "" if e["available"] else "  [weights not installed]"
        print(f"{flag} {e['name']:<14} metric {e['metric']:<7} qualities {e['qualities']} "
              f"(default {e['default_quality']}){state}")
        print(f"    {e['description']}")
    print("Presets for --checkpoint / tcm train (tcm-s/m/l: the authors' sizes):")
    column = max(map(len, PRESETS))
    for name, config in PRESETS.items():
        rates = f"{config.rate_levels} rates" if config.variable_rate else "fixed rate"
        encoder = f"  (g_a N={config.analysis_half_width})" if config.analysis_half_width != config.N else ""
        print(f"  {name:<{column}} N={config.N:<4} M={config.M:<4} {rates}{encoder}")
    return 0
