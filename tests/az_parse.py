"""az_parse.py DOC.json... - parse every Azure CLI command of the
onboarding documents with the real `az` (Debian's azure-cli), offline and
without a login.

Each `sh` code block of each document (xtcmkctl ... --json) is split into
commands; every `az ...` (also inside `$(...)`) runs in this process
through azure.cli.core, in a network namespace of its own when `unshare`
is there.  "Please run 'az login'" means the arguments parsed; anything
else the parser says ("unrecognized arguments", "the following arguments
are required", "invalid choice") is a failure.  A command group the
installed az cannot load (Debian's 2.45 keyvault module lacks
azure.keyvault.key_vault_id) is reported as not checked, never as passed.

Run with /usr/bin/python3 (the azure-cli package's interpreter).  Prints
one line per distinct command and "N parsed, N failed, N unchecked";
exits 1 on a failure.
"""
import io
import json
import logging
import os
import re
import shlex
import sys


class Capture(logging.Handler):
    """The messages az logs (it reports errors through logging)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.msgs = []

    def emit(self, record):
        self.msgs.append(record.getMessage())


def commands(code):
    """The az commands (argv lists without "az") of one sh block."""
    code = code.replace("\\\n", " ")
    out = []
    for line in code.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        subs = re.findall(r"\$\((az [^()]*)\)", line)
        rest = re.sub(r"\$\([^()]*\)", "SUBST", line)
        cmds = subs + ([rest] if rest.startswith("az ") else [])
        for c in cmds:
            argv = shlex.split(c)
            out.append(argv[1:])
    return out


def files_of(doc):
    """Files a document tells the user to save, by name."""
    f = {}
    if "template" in doc:
        name = "cosmos-cmk.json" if doc.get("kind") == "cosmosdb" else \
            "storage-cmk.json"
        f[name] = doc["template"]
    if "body" in doc:
        f["anf-cmk.json"] = doc["body"]
    return f


def run(cli, cap, argv):
    """(rc, what az said) for one command."""
    cap.msgs = []
    err, saved = io.StringIO(), sys.stderr
    sys.stderr = err
    try:
        rc = cli.invoke(list(argv), out_file=io.StringIO())
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # az failing to load its own module
        cap.msgs.append("%s: %s" % (type(e).__name__, e))
        rc = 2
    finally:
        sys.stderr = saved
    return rc, " | ".join(dict.fromkeys(cap.msgs)) or err.getvalue().strip()


def main(paths):
    from azure.cli.core import get_default_cli

    cap = Capture()
    logging.getLogger().addHandler(cap)
    parsed = failed = unchecked = 0
    for p in paths:
        with open(p) as fh:
            doc = json.load(fh)
        # A document's files, then its commands: documents share names.
        for name, content in files_of(doc).items():
            with open(name, "w") as fh:
                json.dump(content, fh)
        seen = []
        for sec in doc.get("sections", []):
            for item in sec.get("body", []):
                if item.get("lang") != "sh" or "code" not in item:
                    continue
                for argv in commands(item["code"]):
                    if argv not in seen:
                        seen.append(argv)
        src = doc.get("document", "?") + " " + doc.get("kind",
            doc.get("customer", ""))
        for argv in seen:
            rc, text = run(get_default_cli(), cap, argv)
            shown = "az " + " ".join(argv)
            if rc == 0 or "Please run 'az login'" in text:
                parsed += 1
                print("ok        %s (%s)" % (shown, src))
            elif "No module named" in text or \
                    "failed with an unexpected error" in text:
                # Debian's az 2.45: keyvault lacks a module, network
                # crashes before parsing (even on a bogus argument).
                unchecked += 1
                print("UNCHECKED %s (%s): this az cannot load the "
                      "command: %s" % (shown, src, text[:160]))
            else:
                failed += 1
                print("FAIL      %s (%s): %s" % (shown, src, text))
    print("%d parsed, %d failed, %d unchecked" % (parsed, failed, unchecked))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
