#!/usr/bin/env bash
# Writes the heatgate(1) man page (roff, to stdout) from the binary's own --help texts: the
# top-level help, then each subcommand's (recursively, for groups such as `ledger`), each in its
# own subsection. FILES and the configuration keys come from the package's files, so the page
# matches what is installed.
#
# Usage: packaging/gen-man.sh BINARY VERSION [CONFFILE]
# Exits 0 with a page that says so when the binary has no swift-argument-parser help yet (the
# early stub); set HEATGATE_REQUIRE_HELP=1 to make that an error instead.
set -euo pipefail

bin=${1:?usage: gen-man.sh BINARY VERSION [CONFFILE]}
version=${2:?usage: gen-man.sh BINARY VERSION [CONFFILE]}
conffile=${3:-$(dirname "$0")/debian/portfolio-heat-gate.env}
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# ArgumentParser wraps help to the terminal width; fix it so the page does not depend on who
# built it.
export COLUMNS=80

help_of() { timeout 10 "$bin" "$@" --help 2>&1 || true; }

# Roff-escape a verbatim block: backslashes, leading dots/quotes, and minus signs.
roff_verbatim() {
    sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\([.']\)/\\\\\&\1/"
}

# Subcommand names from a help text's SUBCOMMANDS: section (first word of each entry line,
# indented by two spaces; wrapped abstracts are indented further).
subcommands_of() {
    awk '/^SUBCOMMANDS:/ {on=1; next}
         on && /^[^ ]/ {on=0}
         on && /^  [a-z0-9][a-z0-9-]*( |$)/ {print $1}' | grep -vx help || true
}

top=$(help_of)
has_help=0
grep -q '^USAGE:' <<<"$top" && has_help=1
if [ $has_help -eq 0 ]; then
    msg="gen-man: WARNING: '$bin --help' shows no swift-argument-parser help yet; the man page has no command reference"
    if [ "${HEATGATE_REQUIRE_HELP:-0}" = 1 ]; then echo "${msg/WARNING/ERROR}" >&2; exit 1; fi
    echo "$msg" >&2
fi

cat <<EOF
.TH HEATGATE 1 "$date" "heatgate $version" "User Commands"
.SH NAME
heatgate \\- portfolio heat gate: daemon and command-line tool
.SH SYNOPSIS
.B heatgate
.I subcommand
.RI [ options ]
.br
.B heatgate run \\-\\-config /etc/quantum/portfolio\\-heat\\-gate.env
.SH DESCRIPTION
HeatGate sits between the exit\\-proposal producer and the executor of a trading stack.
For every exit proposal it computes the portfolio's heat and calibrates the proposal:
in a calm (cold) book a full close becomes a partial close; in a hot book it goes through.
Decisions are committed to an LMDB store before they are published over ZeroMQ.
.PP
On a Debian system the daemon runs as the systemd unit
.BR quantum\\-portfolio\\-heat\\-gate.service ;
.B systemctl reload
re\\-reads the configuration file (SIGHUP).
EOF

emit_section() { # $1: title, $2: help text
    printf '.SS "%s"\n.nf\n' "$1"
    roff_verbatim <<<"$2"
    printf '.fi\n'
}

if [ $has_help -eq 1 ]; then
    echo ".SH COMMANDS"
    emit_section "heatgate" "$top"
    walk() { # $@: the command path below heatgate
        local text sub
        text=$(help_of "$@")
        emit_section "heatgate $*" "$text"
        if [ $# -lt 3 ]; then
            for sub in $(subcommands_of <<<"$text"); do walk "$@" "$sub"; done
        fi
    }
    for sub in $(subcommands_of <<<"$top"); do walk "$sub"; done
else
    cat <<'EOF'
.SH COMMANDS
This build of
.B heatgate
does not describe its subcommands yet; run
.B heatgate \-\-help
for what it offers.
EOF
fi

cat <<'EOF'
.SH CONFIGURATION
The configuration is read from the file named by
.BR \-\-config ,
then from the process environment, then from command\-line flags, later winning.
The file holds KEY=VALUE lines and # comments. Keys (the packaged file documents each one,
its default and its allowed values):
.PP
.RS
.nf
EOF
grep -E '^#? ?[A-Z][A-Z0-9_]+=' "$conffile" | sed -E 's/^# ?//; s/=.*//' | awk '!seen[$0]++' | roff_verbatim
cat <<'EOF'
.fi
.RE
.SH FILES
.TP
.I /etc/quantum/portfolio\-heat\-gate.env
The configuration (a conffile).
.TP
.I /var/lib/quantum\-portfolio\-heat\-gate/
The LMDB store; owner quantum\-heatgate, group quantum, mode 0750. Members of the group
.B quantum
may read it.
.TP
.I /run/quantum\-portfolio\-heat\-gate/control.sock
The control socket of the running daemon.
.TP
.I /lib/systemd/system/quantum\-portfolio\-heat\-gate.service
The systemd unit.
.TP
.I /usr/share/quantum\-portfolio\-heat\-gate/heatgate\-alerts.yml
Prometheus alerting rules.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.I /usr/share/doc/quantum\-portfolio\-heat\-gate/README.Debian
EOF
