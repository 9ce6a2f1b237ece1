#!/usr/bin/python3
"""heatgate-redis-adapter(1) from the adapter's own --help (argparse), plus ENVIRONMENT and FILES.

Usage: gen-man-adapter.py SRC_DIR VERSION  (SRC_DIR: clients/python/src); writes roff to stdout.
The date is SOURCE_DATE_EPOCH's, so that the page is reproducible.
"""
import contextlib
import datetime
import io
import os
import sys

src, version = sys.argv[1], sys.argv[2]
sys.path.insert(0, src)
os.environ["COLUMNS"] = "78"  # argparse wraps its help to this width
from heatgate import redis_adapter  # noqa: E402

out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    redis_adapter.parse_args(["--help"])
help_text = out.getvalue()
if "usage: heatgate-redis-adapter" not in help_text:
    sys.exit("gen-man-adapter: unexpected --help output")


def roff(text: str) -> str:
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line.replace("-", "\\-"))
    return "\n".join(lines)


usage, _, rest = help_text.partition("\n\n")
description, _, options = rest.partition("\n\n")
date = datetime.datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", "0")), datetime.timezone.utc)
doc = redis_adapter.__doc__.strip().split("\n\n")[0]
print(f'''.TH HEATGATE\\-REDIS\\-ADAPTER 1 "{date:%Y-%m-%d}" "{version}" "User Commands"
.SH NAME
heatgate\\-redis\\-adapter \\- feed HeatGate from the stack's Redis keys
.SH SYNOPSIS
.nf
{roff(usage.removeprefix("usage: "))}
.fi
.SH DESCRIPTION
{roff(" ".join(description.split()))}
.PP
{roff(" ".join(doc.split(":", 1)[1].split()))}
.SH OPTIONS
.nf
{roff(options.strip())}
.fi
.SH ENVIRONMENT
Every option also reads
.BI HEATGATE_ADAPTER_ NAME
(the option's name upper case, \\(aq\\-\\(aq as \\(aq_\\(aq); an option given on the command line wins.
.SH FILES
.TP
.I /etc/quantum/heatgate\\-redis\\-adapter.env
The environment of the unit
.BR quantum\\-heatgate\\-redis\\-adapter.service ,
every setting commented out with its default. The unit is not enabled by the package:
.B systemctl enable \\-\\-now quantum\\-heatgate\\-redis\\-adapter
.SH SEE ALSO
.BR heatgate (1),
.I /usr/share/doc/quantum\\-portfolio\\-heat\\-gate/README.Debian
''', end="")
